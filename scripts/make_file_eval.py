"""Write the file-based evaluation set: SciFact documents as web pages (HTML, Markdown,
plain text) with repeated site boilerplate, and the test queries and qrels keyed by file.

    python scripts/make_file_eval.py ../shared/data/beir/scifact var/file-eval/scifact-pages \
        --also train
    python scripts/make_file_eval.py ../shared/data/beir/scifact OUT --queries 40 --docs 300

Deterministic: the same arguments always write the same files (see
ragline/evaluation/fileset.py). The output is data: keep it out of git.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from ragline.evaluation.beir import load_beir
from ragline.evaluation.fileset import select, write_fileset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("beir", type=Path, help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/)")
    parser.add_argument("out", type=Path, help="output folder (replaced)")
    parser.add_argument("--split", default="test")
    parser.add_argument(
        "--also", nargs="*", default=[], help="more splits' queries and qrels (e.g. train)"
    )
    parser.add_argument("--queries", type=int, default=None, help="first N queries (default all)")
    parser.add_argument("--docs", type=int, default=None, help="at most N documents (judged first)")
    args = parser.parse_args()
    dataset = select(load_beir(args.beir, args.split), args.queries, args.docs)
    if args.out.exists():
        shutil.rmtree(args.out)
    more = {split: load_beir(args.beir, split) for split in args.also}
    pages = write_fileset(dataset, args.out, args.split, more)
    print(f"wrote {pages} pages and {len(dataset.queries)} queries to {args.out}")


if __name__ == "__main__":
    main()
