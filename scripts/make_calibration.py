"""Writes ingest/calibration.jsonl: texts that gate every faster runtime against fp32
and calibrate int8 quantization, interleaved (the runtime uses even lines to gate, odd
ones to calibrate). Three kinds, so that what is embedded in use is covered: chunks of
samples/ (Apache-2.0, see its NOTICE) through ragline's own parsing and chunking (prose,
tables, headings), PubMedQA contexts (MIT; long prose), and PubMedQA questions (short,
query-like), from ../shared/data.

    .venv/bin/python scripts/make_calibration.py
"""

from __future__ import annotations

import json
from pathlib import Path

from ragline.ingest.chunk import Chunker
from ragline.ingest.embed import resolve_model_path
from ragline.ingest.parallel import parse_files
from ragline.ingest.tokens import HFTokenCounter
from ragline.settings import load_settings

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
CONTEXTS = 80
QUESTIONS = 64


def main() -> None:
    settings = load_settings(parsing={"workers": 1})
    files = sorted(p for p in (REPO / "samples").iterdir() if p.name != "NOTICE.md")
    counter = HFTokenCounter(resolve_model_path(settings.embedding.model))
    chunker = Chunker(settings.chunking, counter)
    texts: list[str] = []
    for document in sorted(parse_files(files, settings.parsing), key=lambda d: d.source):
        if document.ok:
            texts.extend(chunk.text for chunk in chunker.chunk(document).chunks)
    pubmedqa = json.loads((SHARED / "qa" / "pubmedqa" / "ori_pqal.json").read_text())
    items = [pubmedqa[key] for key in sorted(pubmedqa)]
    contexts = [" ".join(item["CONTEXTS"]) for item in items[:CONTEXTS]]
    questions = [item["QUESTION"] for item in items[CONTEXTS : CONTEXTS + QUESTIONS]]
    kinds = [texts, contexts, questions]
    mixed = [kind[i] for i in range(max(map(len, kinds))) for kind in kinds if i < len(kind)]
    out = REPO / "ingest" / "calibration.jsonl"
    with out.open("w") as handle:
        for text in mixed:
            handle.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
    print(f"{out}: {len(mixed)} texts ({len(texts)} sample chunks)")


if __name__ == "__main__":
    main()
