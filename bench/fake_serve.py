"""`ragline serve` with a scripted generation engine, as a process of its own: what the
fault benchmark (bench/faults.py) and the memory test kill, restart and measure.
Generation is not what they test, and vLLM takes minutes to start on 2 cores.

    python -m bench.fake_serve PORT [--hash-embed]

Settings come from RAGLINE_* variables. ``--hash-embed`` swaps the embedding model's
forward pass for hashed bags of words after start-up: the 100 MiB text's ~110,000 chunks
would take the real model about 40 minutes on 2 cores, and what that run measures is
the memory of the ingestion path around it (parsing, chunking, token counts, commits).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import threading
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ragline.api.server import serve
from ragline.service.components import Components
from ragline.settings import load_settings

_WORD = re.compile(r"\w+")


class ScriptedEngine:
    """Streams ``words`` then "[1]." (fewer with a smaller ``max_tokens``): the server's
    side of an answer, for the servers that benchmarks and tests kill and measure. The
    tokenizer is itself (a chat template, a token per word); ``gate`` cleared holds
    every stream before its next word."""

    def __init__(
        self,
        words: tuple[str, ...] = ("The ", "sources ", "say "),
        *,
        max_model_len: int = 4096,
        word_delay_s: float = 0.0,
        cached_prompt_tokens: int = 0,
        timings_s: tuple[float, float, float] = (0.001, 0.001, 0.004),  # ttft, tpot, total
    ) -> None:
        from ragline.generate.types import GenerationStats, TextDelta

        self._stats, self._delta = GenerationStats, TextDelta
        self.words = words
        self.max_model_len = max_model_len
        self.word_delay_s = word_delay_s
        self.cached_prompt_tokens = cached_prompt_tokens
        self.timings_s = timings_s
        self.tokenizer = self
        self.unfinished = 0
        self.gate = threading.Event()
        self.gate.set()

    def apply_chat_template(self, conversation: Any, **_: Any) -> str:
        return "\n".join(f"<{m['role']}> {m['content']}" for m in conversation) + "\n<assistant>"

    def encode(self, text: str, **_: Any) -> list[int]:
        return [len(word) for word in text.split()]  # one token per word

    def num_unfinished_requests(self) -> int:
        return self.unfinished

    async def check_health(self) -> None:
        return None

    def check_options(self, options: Any) -> None:
        return None

    def shutdown(self) -> None:
        return None

    async def stream(
        self, token_ids: list[int], options: Any = None, request_id: str | None = None
    ) -> AsyncIterator[Any]:
        self.unfinished += 1
        try:
            tokens = len(self.words) + 1
            if options is not None and options.max_tokens:
                tokens = min(tokens, options.max_tokens)
            for word in self.words[: tokens - 1]:
                while not self.gate.is_set():
                    await asyncio.sleep(0.01)
                await asyncio.sleep(self.word_delay_s)
                yield self._delta(word, 1)
            stats = self._stats(
                len(token_ids), self.cached_prompt_tokens, tokens, *self.timings_s, "stop"
            )
            yield self._delta("[1].", 1, finished=True, stats=stats)
        finally:
            self.unfinished -= 1


@dataclass(slots=True)
class HashTokens:
    texts: list[str]
    lengths: list[int]


class HashEncoder:
    """Unit vectors from hashed words: same text, same vector; shared words, near."""

    def __init__(self, dimension: int, choice: Any) -> None:
        self.dimension = dimension
        self.choice = choice  # what /health reports: the runtime the real model settled

    def tokenize(self, texts: list[str]) -> HashTokens:
        return HashTokens(texts, [len(text) // 4 + 1 for text in texts])

    def embed(self, tokens: HashTokens, rows: list[int]) -> np.ndarray:
        out = np.zeros((len(rows), self.dimension), np.float32)
        for slot, row in enumerate(rows):
            for word in _WORD.findall(tokens.texts[row].lower()):
                out[slot, zlib.crc32(word.encode()) % self.dimension] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


def hash_embed(components: Components) -> None:
    """The embedder's forward pass swapped, after its real runtime was settled."""
    embedder = components.embedder
    embedder.__dict__["_encoder"] = HashEncoder(embedder.dimension, embedder.runtime)


def engine_factory(hashed: bool) -> Any:
    def start(components: Components) -> ScriptedEngine:
        if hashed:  # the server's queries; its job ingestion processes: prepare_ingest
            hash_embed(components)
        return ScriptedEngine()

    return start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--hash-embed", action="store_true")
    args = parser.parse_args()
    serve(
        load_settings(),
        "127.0.0.1",
        args.port,
        engine_factory=engine_factory(args.hash_embed),
        prepare_ingest=hash_embed if args.hash_embed else None,
    )


if __name__ == "__main__":
    main()
