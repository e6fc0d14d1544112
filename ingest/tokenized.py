"""Texts, or (query, passage) pairs, tokenized once: their lengths order the token-budget
batches, and each batch's padded model inputs are cut from the same encoding. (Tokenizing
again per batch, as a model's own ``preprocess`` does, cost as much as the first pass.)"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass(slots=True)
class Tokenized:
    columns: dict[str, list[list[int]]]  # unpadded, one list per text
    pad_values: dict[str, int]
    pad_left: bool

    @classmethod
    def encode(
        cls,
        tokenizer: Any,
        texts: Sequence[str],
        max_length: int,
        second: Sequence[str] | None = None,
    ) -> Tokenized:
        """``tokenizer`` (a Hugging Face fast tokenizer) over ``texts``, or over the pairs
        (texts[i], second[i]), truncated as sentence-transformers does (longest first)."""
        encoded = tokenizer(
            list(texts),
            list(second) if second is not None else None,
            truncation=True,
            max_length=max_length,
            verbose=False,
        )
        columns = {name: encoded[name] for name in MODEL_INPUTS if name in encoded}
        pad_values = {
            "input_ids": int(tokenizer.pad_token_id or 0),
            "attention_mask": 0,
            "token_type_ids": int(getattr(tokenizer, "pad_token_type_id", 0) or 0),
        }
        return cls(columns, pad_values, tokenizer.padding_side == "left")

    @property
    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.columns["input_ids"]]

    def padded(self, rows: Sequence[int]) -> dict[str, Any]:
        """The model inputs of ``rows``, padded to the longest of them: what the
        tokenizer returns with ``padding=True, return_tensors="pt"`` for those texts."""
        import torch

        ids = self.columns["input_ids"]
        width = max(len(ids[row]) for row in rows)
        out: dict[str, Any] = {}
        for name, values in self.columns.items():
            array = np.full((len(rows), width), self.pad_values[name], dtype=np.int64)
            for slot, row in enumerate(rows):
                sequence = values[row]
                if self.pad_left:
                    array[slot, width - len(sequence) :] = sequence
                else:
                    array[slot, : len(sequence)] = sequence
            out[name] = torch.from_numpy(array)
        return out
