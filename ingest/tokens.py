"""Token counting and token-window splitting in the embedding model's own tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class TokenCounter(Protocol):
    def count(self, texts: list[str]) -> list[int]: ...

    def windows(self, text: str, max_tokens: int, overlap: int) -> list[str]: ...


class HFTokenCounter:
    """Counts with a Hugging Face fast tokenizer; cuts text at token offsets so the
    original characters (case, accents) are kept rather than a lossy decode."""

    def __init__(self, model_path: str | Path) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(model_path))

    def count(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        encoded = self.tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def windows(self, text: str, max_tokens: int, overlap: int) -> list[str]:
        encoded = self.tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        offsets: list[tuple[int, int]] = encoded["offset_mapping"]
        if len(offsets) <= max_tokens:
            return [text]
        step = max(1, max_tokens - overlap)
        pieces = []
        for start in range(0, len(offsets), step):
            window = offsets[start : start + max_tokens]
            pieces.append(text[window[0][0] : window[-1][1]])
            if start + max_tokens >= len(offsets):
                break
        return pieces
