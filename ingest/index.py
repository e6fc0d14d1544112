"""FAISS vector index: exact (flat) for small collections, IVF beyond a size threshold,
its lists holding float32 vectors or 8-bit scalar-quantized ones (``index.ivf_encoding``).

Vectors are L2-normalised, so inner product is cosine similarity. Ids are docstore
chunk ids (int64). The CPU index is the master copy (mutations, persistence); when
``faiss.get_num_gpus() > 0`` searches run on a GPU clone refreshed after changes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import faiss
import numpy as np

from ragline.settings import IndexSettings

FLAT = "flat"
IVF = "ivf"
# FAISS's OpenMP team for bulk work (builds, batch searches), as the process started.
BULK_THREADS = faiss.omp_get_max_threads()
# Below this many queries FAISS scans without BLAS and a bigger team only adds overhead;
# worse, its idle threads keep spinning and slow the next query embedding on a small CPU
# (measured on 2 cores: embed 9 ms after a 1-thread search, 16 ms after a 2-thread one).
SMALL_SEARCH = 20
# Vectors an IVF list is trained on (FAISS warns under 39; its k-means caps at 256): 64
# keeps a rebuild's training sample at 400 MB for a million 384-d vectors.
TRAIN_PER_LIST = 64

VectorBatches = Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]]


def use_threads_for(n_queries: int) -> None:
    """Size FAISS's OpenMP team for the next call. ``omp_set_num_threads`` sets the
    calling thread's own setting, so concurrent callers do not change each other's."""
    faiss.omp_set_num_threads(1 if n_queries < SMALL_SEARCH else BULK_THREADS)


def gpu_available(settings: IndexSettings) -> bool:
    return settings.use_gpu == "auto" and faiss.get_num_gpus() > 0


def ivf_probe_count(nlist: int, setting: int) -> int:
    """Lists searched per query: the setting, or (0) a fixed share of the lists, so
    that recall holds as collections grow (measured: bench/results/scale.md)."""
    return min(nlist, setting or max(16, -(-nlist // 20)))


def training_sample(
    batches: Iterable[tuple[np.ndarray, np.ndarray]], n: int, size: int, dim: int
) -> np.ndarray:
    """``size`` of the ``n`` vectors that ``batches`` yields, drawn uniformly (seeded)
    while they stream past: only the sample is kept."""
    wanted = np.sort(np.random.default_rng(0).choice(n, size=size, replace=False))
    taken: list[np.ndarray] = []
    offset = 0
    for _, vectors in batches:
        lo, hi = np.searchsorted(wanted, [offset, offset + len(vectors)])
        taken.append(vectors[wanted[lo:hi] - offset])
        offset += len(vectors)
    sample = np.concatenate(taken) if taken else np.zeros((0, dim), np.float32)
    return np.ascontiguousarray(sample, dtype=np.float32)


def ivf_list_count(n_vectors: int) -> int:
    # FAISS guidance: nlist ~ 4·sqrt(n), and at least ~39 training points per list.
    return max(1, min(int(4 * math.sqrt(n_vectors)), n_vectors // 39))


class VectorIndex:
    def __init__(self, index: faiss.Index, kind: str, settings: IndexSettings) -> None:
        self.index = index
        self.kind = kind
        self.settings = settings
        self._gpu_index: faiss.Index | None = None
        self._gpu_stale = True
        if kind == IVF:
            ivf = faiss.extract_index_ivf(index)
            ivf.nprobe = ivf_probe_count(ivf.nlist, settings.ivf_nprobe)

    @classmethod
    def empty(cls, dim: int, settings: IndexSettings) -> VectorIndex:
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)), FLAT, settings)

    @classmethod
    def build(
        cls, dim: int, ids: np.ndarray, vectors: np.ndarray, settings: IndexSettings
    ) -> VectorIndex:
        """A fresh index over vectors in memory (see ``build_streaming``)."""
        return cls.build_streaming(dim, len(ids), lambda: [(ids, vectors)], settings)

    @classmethod
    def build_streaming(
        cls, dim: int, n: int, batches: VectorBatches, settings: IndexSettings
    ) -> VectorIndex:
        """A fresh index over the ``n`` vectors ``batches()`` yields as (ids, vectors),
        flat or IVF by size. IVF reads them twice, a training sample and then every
        vector, so a rebuild never holds all of them (1.5 GB per million) at once."""
        use_threads_for(n)
        if n <= settings.flat_max_vectors:
            index = cls.empty(dim, settings)
            for ids, vectors in batches():
                index.add(ids, vectors)
            return index
        nlist = ivf_list_count(n)
        quantizer = faiss.IndexFlatIP(dim)
        ivf: faiss.IndexIVF
        if settings.ivf_encoding == "sq8":
            ivf = faiss.IndexIVFScalarQuantizer(
                quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
            )
        else:
            ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.train(training_sample(batches(), n, min(n, nlist * TRAIN_PER_LIST), dim))
        for ids, vectors in batches():
            ivf.add_with_ids(
                np.ascontiguousarray(vectors, dtype=np.float32),
                np.ascontiguousarray(ids, dtype=np.int64),
            )
        return cls(ivf, IVF, settings)

    @property
    def encoding(self) -> str | None:
        """How IVF lists hold vectors ("flat" or "sq8"); None for an exact index."""
        if self.kind != IVF:
            return None
        # extract_index_ivf hands back the base class: downcast to see the list encoding
        ivf = faiss.downcast_index(faiss.extract_index_ivf(self.index))
        return "sq8" if isinstance(ivf, faiss.IndexIVFScalarQuantizer) else "flat"

    def describe(self) -> str:
        """``flat`` or e.g. ``ivf-sq8 (4000 lists, 200 probed)``, for reports."""
        if self.kind != IVF:
            return self.kind
        ivf = faiss.extract_index_ivf(self.index)
        return f"ivf-{self.encoding} ({ivf.nlist} lists, {ivf.nprobe} probed)"

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def add(self, ids: np.ndarray | list[int], vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        use_threads_for(len(ids))
        self.index.add_with_ids(
            np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64)
        )
        self._gpu_stale = True

    def remove(self, ids: list[int]) -> int:
        if not ids:
            return 0
        selector = faiss.IDSelectorBatch(np.asarray(ids, dtype=np.int64))
        removed = int(self.index.remove_ids(selector))
        self._gpu_stale = True
        return removed

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each of shape (n_queries, k); missing hits have id -1.
        ``allowed`` restricts the search to those ids (a metadata filter)."""
        k = max(1, min(k, self.ntotal)) if self.ntotal else 1
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        use_threads_for(len(queries))
        if allowed is None:
            return self._searcher().search(queries, k)
        # Selectors run on the CPU index: GPU indexes do not take them for every type.
        selector = faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
        # ``selector`` stays referenced until the search returns.
        return self.index.search(queries, k, params=self._params(selector))

    def _params(self, selector: faiss.IDSelector | None) -> faiss.SearchParameters:
        """Search parameters with the index's own probe count (IVF) and ``selector``."""
        params: faiss.SearchParameters
        if self.kind == IVF:
            ivf_params = faiss.SearchParametersIVF()
            ivf_params.nprobe = faiss.extract_index_ivf(self.index).nprobe
            params = ivf_params
        else:
            params = faiss.SearchParameters()
        if selector is not None:
            params.sel = selector
        return params

    def _searcher(self) -> faiss.Index:
        if not gpu_available(self.settings):
            return self.index
        if self._gpu_stale or self._gpu_index is None:
            self._gpu_index = faiss.index_cpu_to_all_gpus(self.index)
            self._gpu_stale = False
        return self._gpu_index

    def save(self, path: Path) -> None:
        """Write via a temporary file and an atomic rename."""
        tmp = path.with_name(path.name + ".tmp")
        faiss.write_index(self.index, str(tmp))
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, settings: IndexSettings) -> VectorIndex:
        index = faiss.read_index(str(path))
        kind = IVF if isinstance(index, faiss.IndexIVF) else FLAT
        return cls(index, kind, settings)


class MappedIndex(VectorIndex):
    """An IVF checkpoint mapped from disk, with the commits since beside it.

    The mapped lists live in the page cache, shared by every process that maps the same
    file, instead of a private copy in each (1.5 GB per million float32 384-d vectors).
    FAISS maps IVF lists read-only (they are packed: no room to add, and a failed write
    aborts the process), so a commit's added vectors go into a small exact index and its
    removed ids are filtered out of the mapped lists' results. A newer checkpoint, with
    the changes folded in, replaces the whole (``Collection.catch_up``).
    """

    def __init__(self, index: faiss.Index, settings: IndexSettings, generation: int) -> None:
        super().__init__(index, IVF, settings)
        self.generation = generation  # the docstore generation of the mapped checkpoint
        self.delta = faiss.IndexIDMap2(faiss.IndexFlatIP(index.d))
        self._delta_ids: set[int] = set()
        self._removed: set[int] = set()  # ids of the mapped lists that are gone
        self._removed_selector: faiss.IDSelector | None = None

    @classmethod
    def map(cls, path: Path, settings: IndexSettings, generation: int) -> MappedIndex | None:
        """The checkpoint at ``path`` mapped, or None when it is not an IVF index (flat
        indexes are small: they are read into memory)."""
        index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        if not isinstance(index, faiss.IndexIVF):
            return None
        # Mapped lists are prefetched by 32 threads started per search by default: 3x the
        # in-memory search time measured (200k x 384, 90 of 1,788 lists: 3.96 against
        # 1.20-1.31 ms; 1.13 ms without). The page cache holds them already.
        stored = faiss.extract_index_ivf(index).invlists
        lists = faiss.downcast_InvertedLists(stored) if stored is not None else None
        if isinstance(lists, faiss.OnDiskInvertedLists):
            lists.prefetch_nthread = 0
        return cls(index, settings, generation)

    @property
    def changes(self) -> int:
        """Vectors added or removed since the checkpoint."""
        return len(self._delta_ids) + len(self._removed)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal) - len(self._removed) + int(self.delta.ntotal)

    def add(self, ids: np.ndarray | list[int], vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        ids = np.asarray(ids, dtype=np.int64)
        self.delta.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        self._delta_ids.update(ids.tolist())

    def remove(self, ids: list[int]) -> int:
        in_delta = {i for i in ids if i in self._delta_ids}
        if in_delta:
            self.delta.remove_ids(
                faiss.IDSelectorBatch(np.fromiter(in_delta, dtype=np.int64, count=len(in_delta)))
            )
            self._delta_ids -= in_delta
        # The rest are the mapped lists' (a log never removes an id twice).
        mapped = [i for i in ids if i not in self._removed and i not in in_delta]
        if mapped:
            self._removed.update(mapped)
            self._removed_selector = faiss.IDSelectorNot(
                faiss.IDSelectorBatch(np.fromiter(self._removed, dtype=np.int64))
            )
        return len(in_delta) + len(mapped)

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        k = max(1, min(k, self.ntotal)) if self.ntotal else 1
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        use_threads_for(len(queries))
        wanted = (
            faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
            if allowed is not None
            else None
        )
        # Selectors are referenced here until both searches return.
        both = (
            faiss.IDSelectorAnd(wanted, self._removed_selector)
            if wanted is not None and self._removed_selector is not None
            else None
        )
        params = self._params(both or wanted or self._removed_selector)
        scores, ids = self.index.search(queries, k, params=params)
        if self.delta.ntotal == 0:
            return scores, ids
        delta_params = faiss.SearchParameters()
        if wanted is not None:
            delta_params.sel = wanted
        more_scores, more_ids = self.delta.search(queries, k, params=delta_params)
        return _best_of(scores, ids, more_scores, more_ids, k)

    def save(self, path: Path) -> None:
        raise TypeError("a mapped index is read-only: checkpoints come from an in-memory one")


def _best_of(
    scores: np.ndarray, ids: np.ndarray, more_scores: np.ndarray, more_ids: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The k best of two result sets per query (missing hits, id -1, last)."""
    all_scores = np.concatenate([scores, more_scores], axis=1)
    all_ids = np.concatenate([ids, more_ids], axis=1)
    all_scores = np.where(all_ids >= 0, all_scores, -np.inf)
    order = np.argsort(-all_scores, axis=1, kind="stable")[:, :k]
    best_ids = np.take_along_axis(all_ids, order, axis=1)
    best_scores = np.take_along_axis(all_scores, order, axis=1)
    return np.where(best_ids >= 0, best_scores, -np.inf).astype(np.float32), best_ids
