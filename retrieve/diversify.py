"""Results diversified by document.

Five passages from one document tell a reader little more than its best one, and they
push other documents out of the top k. Selection is greedy: each step takes the
candidate with the highest score * (1 - penalty)^n, where n is the number of passages its
document already has in the results. A document's second passage therefore still comes
first when it is clearly better than every other document's best (it beats them after the
penalty); penalty 1 puts every document's first passage before any second one; 0 keeps
the plain score order.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Mapping, Sequence


def diversify(
    ranked: Sequence[tuple[int, float]],
    document_of: Mapping[int, Hashable],
    penalty: float,
    limit: int,
    rank_constant: int = 60,
) -> list[tuple[int, float]]:
    """The first ``limit`` of ``ranked`` (ids with scores, best first) in diversified
    order, with their original scores. Scores must be positive for the penalty to mean
    anything; otherwise the ranks stand in for them, as 1 / (rank_constant + rank)."""
    if penalty <= 0 or len(ranked) <= 1:
        return list(ranked[:limit])
    scores = [score for _, score in ranked]
    if min(scores) <= 0:
        scores = [1.0 / (rank_constant + rank) for rank in range(1, len(ranked) + 1)]
    keep = 1.0 - min(penalty, 1.0)
    taken: dict[Hashable, int] = {}
    # Heap of (-effective score, rank, taken-count the score was computed with): scores
    # only fall as documents fill up, so a stale entry is recomputed when it surfaces.
    heap = [(-score, rank, 0) for rank, score in enumerate(scores)]
    heapq.heapify(heap)
    chosen: list[tuple[int, float]] = []
    while heap and len(chosen) < limit:
        _, rank, seen = heapq.heappop(heap)
        document = document_of.get(ranked[rank][0], ranked[rank][0])
        count = taken.get(document, 0)
        if count != seen:
            heapq.heappush(heap, (-scores[rank] * keep**count, rank, count))
            continue
        chosen.append(ranked[rank])
        taken[document] = count + 1
    return chosen
