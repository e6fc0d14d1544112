"""Ingestion throughput, with a plain sentence-transformers loop as the floor.

    python -m bench.ingest [PATH ...] [--repeats N]

Runs the full pipeline (parse → chunk → embed → write) into a throw-away collection,
then encodes the very same chunk texts with a bare ``SentenceTransformer.encode`` loop
in the same process, so embeddings/s is reported as a fraction of that peer.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.common import environment, spread, write_table
from ingest.collection import Collection
from ingest.embed import Embedder, pick_device
from ingest.pipeline import IngestPipeline, Status
from ragline.settings import PROJECT_ROOT, load_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("paths", nargs="*", default=[str(PROJECT_ROOT / "samples")])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    docs_s, chunks_s, emb_s, plain_s, ratios = [], [], [], [], []
    files = chunks = 0
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            settings = load_settings(storage={"data_dir": Path(tmp)})
            embedder = Embedder(settings.embedding)
            store = Collection.open(
                settings.storage.collections_dir, "bench", settings.index, create=True
            )
            report = IngestPipeline(settings, store, embedder=embedder).run(args.paths)
            texts = [c.text for c in store.docstore.iter_chunks()]
            store.close()

            # The peer: the same model and texts through a bare encode loop.
            model = embedder.model
            started = time.perf_counter()
            model.encode(
                texts,
                batch_size=settings.embedding.batch_size,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
            plain = len(texts) / (time.perf_counter() - started)

        files = report.count(Status.INGESTED)
        chunks = report.chunks_embedded
        docs_s.append(files / report.seconds)
        chunks_s.append(chunks / report.seconds)
        emb_s.append(chunks / report.embed_seconds)
        plain_s.append(plain)
        ratios.append(emb_s[-1] / plain)

    write_table(
        "ingest",
        "Ingestion throughput",
        [
            "corpus",
            "files ingested",
            "chunks",
            "docs/s",
            "chunks/s (end to end)",
            "embeddings/s (pipeline)",
            "embeddings/s (plain encode)",
            "pipeline / plain",
        ],
        [
            [
                ", ".join(Path(p).name for p in args.paths),
                files,
                chunks,
                spread(docs_s),
                spread(chunks_s),
                spread(emb_s),
                spread(plain_s),
                spread(ratios),
            ]
        ],
        [
            "Environment: "
            + environment(["unstructured", "sentence-transformers", "torch", "faiss-cpu"]),
            f"Model: {load_settings().embedding.model} on {pick_device('auto')}; "
            f"median (min-max) of {args.repeats} runs. End-to-end rates include parsing "
            "(unstructured), chunking and writing; embeddings/s counts encode time only.",
        ],
    )


if __name__ == "__main__":
    main()
