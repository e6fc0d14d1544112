"""Token counting and token-window splitting in the embedding model's own tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

COUNT_BATCH = 1024  # texts per tokenizer call
WINDOW_CHARS = 100_000  # a longer text is cut (at a space) before it is windowed


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
        # In slices: the tokenizer's output for a whole book at once takes GBs.
        counts: list[int] = []
        for start in range(0, len(texts), COUNT_BATCH):
            batch = texts[start : start + COUNT_BATCH]
            encoded = self.tokenizer(batch, add_special_tokens=False, verbose=False)
            counts.extend(len(ids) for ids in encoded["input_ids"])
        return counts

    def windows(self, text: str, max_tokens: int, overlap: int) -> list[str]:
        if len(text) > WINDOW_CHARS:  # tokenizing a huge span at once takes GBs
            cut = text.rfind(" ", 0, WINDOW_CHARS) + 1 or WINDOW_CHARS
            head = self.windows(text[:cut], max_tokens, overlap)
            return head + self.windows(text[cut:], max_tokens, overlap)
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
