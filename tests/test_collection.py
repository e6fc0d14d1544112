from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest

from ragline.ingest.collection import Collection, CollectionError, CollectionNotFound
from ragline.ingest.docstore import DocumentWrite
from ragline.ingest.index import FLAT, IVF, MappedIndex
from ragline.ingest.types import Chunk
from ragline.settings import IndexSettings

DIM = 16
CONFIG = {"embedding_model": "test", "dimension": DIM, "chunk_size": 64, "chunk_overlap": 0}


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _write(source: str, n: int, rng: np.random.Generator, tag: str = "") -> DocumentWrite:
    chunks = [
        Chunk(f"{source} {tag} chunk {i}", source, i, 4, f"{source}{tag}{i}", "text")
        for i in range(n)
    ]
    return DocumentWrite(source, f"hash-{source}-{tag}", "TXT", 10, chunks, _unit(rng, n))


def _open(tmp_path: Path, settings: IndexSettings | None = None) -> Collection:
    store = Collection.open(tmp_path, "c1", settings or IndexSettings(), create=True)
    store.ensure_config(CONFIG)
    return store


def _assert_consistent(store: Collection) -> None:
    ids = {c.chunk_id for c in store.docstore.iter_chunks()}
    assert store.index.ntotal == len(ids)
    assert store.lexical.generation == store.generation
    assert store.lexical.chunk_ids() == ids
    vectors = {
        i: v
        for batch_ids, batch in store.docstore.iter_vectors(DIM)
        for i, v in zip(batch_ids, batch, strict=True)
    }
    for chunk_id, vector in list(vectors.items())[:20]:
        _, hits = store.index.search(vector[None, :], 1)
        assert hits[0][0] == chunk_id


def test_write_search_replace_delete(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    store = _open(tmp_path)
    store.write_documents([_write("a", 5, rng), _write("b", 3, rng)])
    _assert_consistent(store)
    old_ids = {c.chunk_id for c in store.docstore.iter_chunks() if c.source == "a"}

    store.write_documents([_write("a", 2, rng, tag="v2")])  # re-ingest of a changed file
    new_a = [c for c in store.docstore.iter_chunks() if c.source == "a"]
    assert len(new_a) == 2 and all("v2" in c.text for c in new_a)
    assert not old_ids & {c.chunk_id for c in new_a}, "chunk ids are never reused"
    _assert_consistent(store)

    assert store.delete_documents(["b", "missing"]) == ["b"]
    assert store.docstore.counts() == (1, 2)
    _assert_consistent(store)


def test_index_survives_reopen_and_stale_index_is_rebuilt(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    store = _open(tmp_path)
    store.write_documents([_write("a", 4, rng)])
    store.flush()
    generation = store.generation
    # Simulate a crash after the docstore commit but before the index save.
    store.write_documents([_write("b", 3, rng)])
    store.close()
    manifest = json.loads((tmp_path / "c1" / Collection.MANIFEST).read_text())
    assert manifest["generation"] == generation

    reopened = Collection.open(tmp_path, "c1", IndexSettings())
    assert reopened.generation == generation + 1
    _assert_consistent(reopened)
    assert reopened.index.ntotal == 7


def test_a_crash_between_a_derived_commit_and_its_stamp_duplicates_nothing(
    tmp_path: Path,
) -> None:
    """The checkpoint file (or the lexical commit) landed, its generation stamp did not:
    replaying the log from the older stamp must not add the same chunks twice."""
    rng = np.random.default_rng(5)
    store = _open(tmp_path)
    store.write_documents([_write("a", 4, rng)])
    store.flush()
    stamped = store.generation
    store.write_documents([_write("b", 3, rng)])
    store.index.save(tmp_path / "c1" / f"index-{store.generation}.faiss")  # no manifest
    store.lexical._write_manifest(stamped)  # the commit of "b" landed, its stamp did not
    store.close()

    reopened = Collection.open(tmp_path, "c1", IndexSettings())
    assert reopened.lexical.generation == stamped
    assert reopened.repair()
    _assert_consistent(reopened)
    assert reopened.index.ntotal == 7
    found = reopened.lexical.search("chunk", 50)
    assert len(found) == len({cid for cid, _ in found}) == 7


def test_large_collection_switches_to_ivf(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    store = _open(tmp_path, IndexSettings(flat_max_vectors=100, ivf_nprobe=64))
    store.write_documents([_write(f"d{i}", 50, rng) for i in range(2)])
    assert store.index.kind == FLAT
    store.write_documents([_write(f"d{i}", 50, rng) for i in range(2, 4)])
    assert store.index.kind == FLAT and store.index.ntotal == 200  # caught up by replay
    store.flush()  # the checkpoint: outgrown flat search, so rebuilt as IVF
    assert store.index.kind == IVF
    assert json.loads((tmp_path / "c1" / Collection.MANIFEST).read_text())["kind"] == IVF
    _assert_consistent(store)
    store.delete_documents(["d0"])
    _assert_consistent(store)


def test_ivf_lists_in_8_bits_and_reopening_with_the_other_encoding(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    sq8 = IndexSettings(flat_max_vectors=100, ivf_nprobe=64, ivf_encoding="sq8")
    store = _open(tmp_path, sq8)
    store.write_documents([_write(f"d{i}", 50, rng) for i in range(4)])
    store.flush()
    assert store.index.encoding == "sq8" and store.index.describe().startswith("ivf-sq8 (")
    manifest = json.loads((tmp_path / "c1" / Collection.MANIFEST).read_text())
    assert manifest["encoding"] == "sq8"
    _assert_consistent(store)  # each stored vector is still its own nearest neighbour
    store.delete_documents(["d0"])
    _assert_consistent(store)
    store.close()

    # Opened with float32 lists configured: rebuilt from the stored vectors, not served
    # from the 8-bit checkpoint; the writer's next checkpoint records the new encoding.
    flat = IndexSettings(flat_max_vectors=100, ivf_nprobe=64, ivf_encoding="flat")
    reopened = Collection.open(tmp_path, "c1", flat)
    assert reopened.index.encoding == "flat" and reopened.index.ntotal == 150
    _assert_consistent(reopened)
    assert json.loads((tmp_path / "c1" / Collection.MANIFEST).read_text())["encoding"] == "flat"
    reopened.close()


def test_training_sample_streams_the_rows_a_whole_array_would_give() -> None:
    from ragline.ingest.index import training_sample

    rng = np.random.default_rng(6)
    vectors = _unit(rng, 1000)
    ids = np.arange(1000)
    whole = training_sample([(ids, vectors)], 1000, 300, DIM)
    pieces = [(ids[i : i + 128], vectors[i : i + 128]) for i in range(0, 1000, 128)]
    streamed = training_sample(pieces, 1000, 300, DIM)
    assert streamed.shape == (300, DIM) and np.array_equal(whole, streamed)
    assert len({row.tobytes() for row in streamed}) == 300  # no row twice


def test_a_commit_during_a_rebuild_is_in_the_index_once(tmp_path: Path) -> None:
    """A reader rebuilding reads the stored vectors in batches while a writer commits:
    the new chunks come from the log, not also from the read."""
    rng = np.random.default_rng(8)
    store = _open(tmp_path, IndexSettings(flat_max_vectors=100, ivf_nprobe=64))
    store.write_documents([_write(f"d{i}", 50, rng) for i in range(4)])
    late = _write("late", 5, rng)
    reads = store.docstore.iter_vectors
    committed: list[bool] = []

    def commit_while_reading(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        for batch in reads(*args, **kwargs):  # type: ignore[arg-type]
            if not committed:
                committed.append(True)
                store.write_documents([late])
            yield batch

    store.docstore.iter_vectors = commit_while_reading  # type: ignore[method-assign]
    store.rebuild_index(persist=False)
    store.docstore.iter_vectors = reads  # type: ignore[method-assign]
    assert committed
    assert store.index.ntotal == 205  # caught up from the log: the late chunks once
    _assert_consistent(store)
    for vector in late.vectors:
        _, hits = store.index.search(vector[None, :], 2)
        assert hits[0][0] != hits[0][1]


def test_config_mismatch_and_bad_names_are_refused(tmp_path: Path) -> None:
    store = _open(tmp_path)
    with pytest.raises(CollectionError, match="different settings"):
        store.ensure_config({**CONFIG, "chunk_size": 128})
    with pytest.raises(CollectionError, match="invalid collection name"):
        Collection.open(tmp_path, "../escape", IndexSettings(), create=True)
    with pytest.raises(CollectionNotFound):
        Collection.open(tmp_path, "nope", IndexSettings())


def test_drop_removes_the_collection(tmp_path: Path) -> None:
    store = _open(tmp_path)
    store.close()
    assert Collection.names(tmp_path) == ["c1"]
    Collection.drop(tmp_path, "c1")
    assert Collection.names(tmp_path) == []


def test_reader_loads_the_checkpoint_and_replays_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(3)
    store = _open(tmp_path)
    store.write_documents([_write("a", 4, rng)])
    store.flush()
    store.write_documents([_write("b", 2, rng)])  # committed, index file not yet saved
    manifest_path = tmp_path / "c1" / Collection.MANIFEST
    saved = json.loads(manifest_path.read_text())["generation"]
    assert saved < store.generation

    def no_rebuild(self: Collection, persist: bool = True) -> None:
        raise AssertionError("rebuilt instead of replaying the change log")

    monkeypatch.setattr(Collection, "rebuild_index", no_rebuild)
    writer = Collection.open(tmp_path, "c1", IndexSettings())
    with writer.writer_lock():
        reader = Collection.open(tmp_path, "c1", IndexSettings())
        assert reader.index.ntotal == 6  # the checkpoint (4) + the logged commit (2)
        assert reader.catch_up() == store.generation
    # Readers never write the checkpoint: the writer owns the files.
    assert json.loads(manifest_path.read_text())["generation"] == saved


def test_readers_follow_another_writers_commits_without_reloading(tmp_path: Path) -> None:
    """A reader's FAISS index applies a writer's adds, replacements and deletes from the
    docstore's change log (no reload of the index file), and so does the lexical index."""
    rng = np.random.default_rng(4)
    writer = _open(tmp_path)
    writer.write_documents([_write("a", 3, rng), _write("b", 2, rng)])
    writer.flush()
    reader = Collection.open(tmp_path, "c1", IndexSettings())
    assert reader.index.ntotal == 5
    loaded = reader.index

    writer.write_documents([_write("c", 4, rng)])  # add
    writer.write_documents([_write("a", 1, rng)])  # replace: 3 chunks -> 1
    writer.delete_documents(["b"])  # delete
    assert reader.catch_up() == writer.generation
    assert reader.index is loaded  # the same in-memory index, updated in place
    stored = {c.chunk_id for c in writer.docstore.iter_chunks()}
    assert reader.index.ntotal == len(stored) == 5
    found = reader.search_dense(rng.standard_normal(DIM).astype(np.float32), 10)[1][0]
    assert set(found[found >= 0].tolist()) == stored
    assert writer.lexical.generation == writer.generation
    assert reader.lexical.chunk_ids() == stored
    assert {cid for cid, _ in reader.lexical.search("chunk", 50)} == stored


def test_a_mapped_ivf_checkpoint_follows_commits_and_maps_the_next_one(tmp_path: Path) -> None:
    """index.mmap: the reader maps the writer's IVF checkpoint, keeps later commits beside
    it (same results as a reader holding the index in memory, filters included), and maps
    the next checkpoint once there is one; a mapped writer still writes checkpoints."""
    rng = np.random.default_rng(7)
    plain_settings = IndexSettings(flat_max_vectors=100, ivf_nprobe=64)  # every list probed
    mapped_settings = plain_settings.model_copy(update={"mmap": True})
    writer = _open(tmp_path, plain_settings)
    writer.write_documents([_write(f"d{i}", 50, rng) for i in range(4)])
    writer.flush()
    reader = Collection.open(tmp_path, "c1", mapped_settings)
    plain = Collection.open(tmp_path, "c1", plain_settings)
    first = reader.index
    assert isinstance(first, MappedIndex) and first.changes == 0
    lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(first.index).invlists)
    assert lists.prefetch_nthread == 0  # FAISS's default starts 32 threads per search

    def same_results() -> None:
        queries = _unit(rng, 8)
        for query in queries:
            assert (
                reader.search_dense(query, 10)[1].tolist()
                == plain.search_dense(query, 10)[1].tolist()
            )
        ids = np.fromiter((c.chunk_id for c in writer.docstore.iter_chunks()), np.int64)
        allowed = ids[::7]
        for query in queries:
            got = reader.search_dense(query, 5, allowed)[1][0]
            assert got.tolist() == plain.search_dense(query, 5, allowed)[1][0].tolist()
            assert set(got[got >= 0].tolist()) <= set(allowed.tolist())

    same_results()
    writer.write_documents([_write("new", 5, rng)])  # add
    writer.write_documents([_write("d1", 2, rng, tag="v2")])  # replace: 50 chunks -> 2
    writer.delete_documents(["d2"])  # delete
    assert reader.catch_up() == writer.generation
    assert reader.index is first and first.changes == 5 + 2 + 50 + 50
    _assert_consistent(reader)
    same_results()

    writer.close()
    writer = Collection.open(tmp_path, "c1", mapped_settings)
    with writer.writer_lock():
        writer.write_documents([_write("later", 3, rng)])
        writer.flush()  # from a copy in memory: the mapped index cannot be written
        _assert_consistent(writer)
    assert isinstance(writer.index, MappedIndex) and writer.index.changes == 0
    assert reader.catch_up() == writer.generation
    mapped = reader.index
    assert isinstance(mapped, MappedIndex) and mapped is not first
    assert mapped.generation == writer.generation and mapped.changes == 0
    _assert_consistent(reader)
    same_results()


def test_empty_collection_searches_to_nothing(tmp_path: Path) -> None:
    from ragline.retrieve.dense import dense_search

    store = Collection.open(tmp_path, "empty", IndexSettings(), create=True)
    assert dense_search(store, np.ones(DIM, dtype=np.float32), 5) == []


def test_single_queries_search_with_one_faiss_thread_batches_with_all() -> None:
    import threading

    import faiss

    from ragline.ingest.index import BULK_THREADS, SMALL_SEARCH, VectorIndex

    rng = np.random.default_rng(7)
    vectors = _unit(rng, 500)
    index = VectorIndex.build(DIM, np.arange(500), vectors, IndexSettings())
    batch = vectors[:SMALL_SEARCH]
    _, batch_ids = index.search(batch, 5)
    assert faiss.omp_get_max_threads() == BULK_THREADS
    _, one_ids = index.search(batch[3:4], 5)
    assert faiss.omp_get_max_threads() == 1
    assert one_ids[0].tolist() == batch_ids[3].tolist() and one_ids[0][0] == 3

    # The setting is the calling thread's own: another thread still gets the bulk team.
    seen: list[int] = []
    worker = threading.Thread(target=lambda: seen.append(faiss.omp_get_max_threads()))
    worker.start()
    worker.join()
    assert seen == [BULK_THREADS]
    index.search(batch, 5)  # leave this thread as it was
