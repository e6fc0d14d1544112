"""A corpus of short plain-text files, made deterministically from SciFact abstracts.

    python -m bench.short_files DEST [--count N]

Each file is one abstract (title as a heading), cut to 100-3,000 characters; every
third is Markdown (``# title``), the rest plain text (title on its own line). Issue 15's
small-files case: per-file overhead, not embedding, decides the rate on such files.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from bench.common import SHARED_DATA

SCIFACT_CORPUS = SHARED_DATA / "beir" / "scifact" / "corpus.jsonl"
MIN_CHARS, MAX_CHARS = 100, 3000


def write_short_files(dest: Path, count: int = 1000, seed: int = 15) -> list[Path]:
    """Write ``count`` files under ``dest`` (created); the same files on every call."""
    dest.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    paths: list[Path] = []
    with SCIFACT_CORPUS.open(encoding="utf-8") as handle:
        for line in handle:
            if len(paths) == count:
                break
            record = json.loads(line)
            title, body = record["title"].strip(), record["text"].strip()
            if not body:
                continue
            markdown = len(paths) % 3 == 0
            head = f"# {title}\n\n" if markdown else f"{title}\n\n"
            text = (head + body)[: rng.randint(MIN_CHARS, MAX_CHARS)].rstrip()
            if len(text) < MIN_CHARS:
                continue
            path = dest / f"doc-{len(paths):04d}.{'md' if markdown else 'txt'}"
            path.write_text(text + "\n", encoding="utf-8")
            paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    paths = write_short_files(args.dest, args.count)
    print(f"{len(paths)} files in {args.dest}")


if __name__ == "__main__":
    main()
