"""Ranking metrics over document ids (BEIR conventions) and latency percentiles."""

from __future__ import annotations

import math
from collections.abc import Sequence


def ndcg_at_k(ranking: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    dcg = sum(relevant.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranking[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(gain / math.log2(rank + 2) for rank, gain in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at_k(ranking: Sequence[str], relevant: dict[str, int], k: int) -> float:
    positives = {doc for doc, gain in relevant.items() if gain > 0}
    return len(positives & set(ranking[:k])) / len(positives) if positives else 0.0


def mrr_at_k(ranking: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    for rank, doc in enumerate(ranking[:k], start=1):
        if relevant.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


# Passage lists mapped to their documents (repeats kept): a document's gain counts at
# its first passage only, so k passages from one document are worth what one is (what a
# reader of the top k passages learns), while the repeats still take up ranks.
# recall_at_k and mrr_at_k already behave so on such lists.


def passage_ndcg_at_k(documents: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    seen: set[str] = set()
    dcg = 0.0
    for rank, doc in enumerate(documents[:k]):
        if doc not in seen:
            seen.add(doc)
            dcg += relevant.get(doc, 0) / math.log2(rank + 2)
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(gain / math.log2(rank + 2) for rank, gain in enumerate(ideal))
    return dcg / idcg if idcg else 0.0
