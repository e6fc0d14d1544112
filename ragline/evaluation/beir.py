"""BEIR-format datasets (corpus.jsonl, queries.jsonl, qrels/<split>.tsv)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(slots=True, frozen=True)
class BeirDoc:
    doc_id: str
    title: str
    text: str


@dataclass(slots=True)
class BeirDataset:
    corpus: dict[str, BeirDoc]
    queries: dict[str, str]  # only the queries that have judgements in the split
    qrels: dict[str, dict[str, int]]  # query id -> doc id -> relevance


def load_corpus(path: Path) -> dict[str, BeirDoc]:
    corpus: dict[str, BeirDoc] = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                corpus[str(row["_id"])] = BeirDoc(
                    str(row["_id"]), row.get("title", ""), row.get("text", "")
                )
    return corpus


def load_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        next(reader, None)  # header: query-id, corpus-id, score
        for row in reader:
            if len(row) >= 3 and row[0].strip():
                qrels.setdefault(row[0].strip(), {})[row[1].strip()] = int(row[2])
    return qrels


def load_queries(path: Path, judged: dict[str, dict[str, int]]) -> dict[str, str]:
    """The queries that have judgements, in file order."""
    queries: dict[str, str] = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                if str(row["_id"]) in judged:
                    queries[str(row["_id"])] = row["text"]
    return queries


def load_beir(root: Path, split: str = "test") -> BeirDataset:
    qrels = load_qrels(root / "qrels" / f"{split}.tsv")
    return BeirDataset(
        load_corpus(root / "corpus.jsonl"), load_queries(root / "queries.jsonl", qrels), qrels
    )
