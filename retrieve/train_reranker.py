"""Fine-tune the shipped MiniLM into a cross-encoder on BEIR SciFact's train split.

Pairs: every (query, relevant doc) as label 1; the top BM25 docs that are not judged
relevant (hard negatives) and a few random docs (easy negatives) as label 0. Binary
cross-entropy on one logit, plain torch loop. The test split is never read: it is what
``bench/rerank_scifact.py`` measures the model on.

The defaults are what fits about 10 minutes on 2 CPU cores (full train split, 3 epochs at
64 tokens). The model learns slowly from this start: the pooled [CLS] features of a
bi-encoder carry no (query, doc) interaction, so fewer steps mostly learn the class prior.
Score with the ``max_length`` it was trained at (recorded in ``ragline_reranker.json``).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.embed import resolve_model_path
from ragline.beir import BeirDataset, BeirDoc, load_beir
from retrieve.bm25 import BM25Index
from retrieve.rerank import METADATA_FILE

BASE_MODEL = "builtin:all-MiniLM-L6-v2"
HEAD_PREFIXES = ("classifier.", "bert.pooler.")


@dataclass(slots=True, frozen=True)
class TrainingPair:
    query: str
    text: str
    label: float


def doc_text(doc: BeirDoc) -> str:
    return f"{doc.title} {doc.text}".strip()


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def build_corpus_bm25(dataset: BeirDataset) -> tuple[list[str], BM25Index]:
    """BM25 over the whole corpus; index i of the returned id list is BM25 id i."""
    doc_ids = list(dataset.corpus)
    texts = [doc_text(dataset.corpus[d]) for d in doc_ids]
    return doc_ids, BM25Index(list(range(len(doc_ids))), texts)


def build_pairs(
    dataset: BeirDataset,
    *,
    negatives_per_query: int,
    random_negatives_per_query: int = 0,
    max_queries: int | None = None,
    seed: int = 0,
) -> list[TrainingPair]:
    """Positives from the qrels, hard negatives from BM25 (plus, optionally, random docs as
    easy negatives), queries in file order."""
    query_ids = list(dataset.queries)[:max_queries]
    doc_ids, bm25 = build_corpus_bm25(dataset)
    rng = random.Random(seed)
    pairs: list[TrainingPair] = []
    for qid in query_ids:
        query = dataset.queries[qid]
        relevant = {d for d, rel in dataset.qrels.get(qid, {}).items() if rel > 0}
        pairs += [
            TrainingPair(query, doc_text(dataset.corpus[d]), 1.0)
            for d in sorted(relevant)
            if d in dataset.corpus
        ]
        negatives: list[str] = []
        if negatives_per_query > 0:
            hits = bm25.search(query, negatives_per_query + len(relevant))
            negatives = [doc_ids[i] for i, _ in hits if doc_ids[i] not in relevant]
            negatives = negatives[:negatives_per_query]
        taken, wanted = relevant | set(negatives), len(negatives) + random_negatives_per_query
        while len(negatives) < wanted:
            if (doc := rng.choice(doc_ids)) not in taken:
                negatives.append(doc)
                taken.add(doc)
        pairs += [TrainingPair(query, doc_text(dataset.corpus[d]), 0.0) for d in negatives]
    return pairs


def save_model(model: Any, tokenizer: Any, folder: Path, metadata: dict[str, Any]) -> None:
    """Model + tokenizer as ``CrossEncoder(folder)`` loads them, and the training record."""
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")


def train_reranker(
    beir_root: Path,
    output_dir: Path,
    *,
    split: str = "train",
    epochs: int = 3,
    negatives_per_query: int = 4,
    random_negatives_per_query: int = 1,
    max_queries: int | None = None,
    batch_size: int = 16,
    max_length: int = 64,
    seed: int = 0,
    learning_rate: float = 1e-4,
    head_learning_rate: float = 1e-3,
    warmup_ratio: float = 0.1,
    show_progress: bool = True,
) -> Path:
    """Train and save a cross-encoder that ``sentence_transformers.CrossEncoder`` loads.

    Written to a temporary sibling folder and renamed to ``output_dir`` only when complete,
    so an interrupted run leaves whatever was at ``output_dir`` before untouched.
    """
    if split == "test":
        raise ValueError("the test split is for evaluation; train on 'train'")
    import torch
    from tqdm.auto import tqdm
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        get_linear_schedule_with_warmup,
    )
    from transformers import logging as hf_logging

    started = time.perf_counter()
    threads = cpu_cores()
    torch.set_num_threads(threads)
    random.seed(seed)
    torch.manual_seed(seed)

    dataset = load_beir(beir_root, split)
    pairs = build_pairs(
        dataset,
        negatives_per_query=negatives_per_query,
        random_negatives_per_query=random_negatives_per_query,
        max_queries=max_queries,
        seed=seed,
    )
    if not pairs:
        raise ValueError(f"no training pairs from {beir_root} ({split})")

    base = resolve_model_path(BASE_MODEL)
    tokenizer = AutoTokenizer.from_pretrained(base)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized classifier" is expected here
    try:
        model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    finally:
        hf_logging.set_verbosity(verbosity)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    model.train()

    steps_per_epoch = (len(pairs) + batch_size - 1) // batch_size
    total_steps = steps_per_epoch * epochs
    # The classification head starts from scratch on small pooled features: it gets a
    # larger step than the pretrained encoder, or it barely moves off the class prior.
    head = [p for n, p in model.named_parameters() if n.startswith(HEAD_PREFIXES)]
    body = [p for n, p in model.named_parameters() if not n.startswith(HEAD_PREFIXES)]
    groups: list[dict[str, Any]] = [
        {"params": body},
        {"params": head, "lr": head_learning_rate},
    ]
    optimizer = torch.optim.AdamW(
        groups,
        lr=learning_rate,
        weight_decay=0.01,
    )
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(total_steps * warmup_ratio), total_steps
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    order = torch.Generator().manual_seed(seed)

    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = output_dir.with_name(f".{output_dir.name}.tmp-{os.getpid()}")
    old_dir = output_dir.with_name(f".{output_dir.name}.old-{os.getpid()}")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    try:
        losses: list[float] = []
        with tqdm(total=total_steps, desc="training reranker", disable=not show_progress) as bar:
            for _ in range(epochs):
                permutation = torch.randperm(len(pairs), generator=order).tolist()
                for start in range(0, len(pairs), batch_size):
                    batch = [pairs[i] for i in permutation[start : start + batch_size]]
                    features = tokenizer(
                        [p.query for p in batch],
                        [p.text for p in batch],
                        padding=True,
                        truncation="longest_first",
                        max_length=max_length,
                        return_tensors="pt",
                    ).to(device)
                    labels = torch.tensor([p.label for p in batch], device=device)
                    logits = model(**features).logits.squeeze(-1)
                    loss = loss_fn(logits, labels)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
                    losses.append(loss.item())
                    recent = losses[-50:]
                    bar.set_postfix(loss=f"{sum(recent) / len(recent):.3f}")
                    bar.update()

        model.eval()
        tokenizer.model_max_length = max_length
        seconds = time.perf_counter() - started
        metadata = {
            "base_model": BASE_MODEL,
            "dataset": str(beir_root),
            "split": split,
            "queries": len(list(dataset.queries)[:max_queries]),
            "pairs": len(pairs),
            "positives": sum(1 for p in pairs if p.label > 0),
            "negatives": sum(1 for p in pairs if p.label == 0),
            "negatives_per_query": negatives_per_query,
            "random_negatives_per_query": random_negatives_per_query,
            "negative_source": "bm25s top-k not judged relevant, plus random docs",
            "epochs": epochs,
            "batch_size": batch_size,
            "max_length": max_length,
            "learning_rate": learning_rate,
            "head_learning_rate": head_learning_rate,
            "warmup_ratio": warmup_ratio,
            "seed": seed,
            "loss": "binary cross-entropy",
            "final_loss": sum(losses[-50:]) / len(losses[-50:]),
            "device": str(device),
            "threads": threads,
            "seconds": round(seconds, 1),
        }
        save_model(model, tokenizer, tmp_dir, metadata)

        if output_dir.exists():
            output_dir.rename(old_dir)
        tmp_dir.rename(output_dir)
        shutil.rmtree(old_dir, ignore_errors=True)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return output_dir
