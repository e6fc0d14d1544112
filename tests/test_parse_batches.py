"""Small files parsed several to a worker task: the same documents as one file a task,
and a file that hangs its task still fails alone (the task is retried a file at a time)."""

from __future__ import annotations

from pathlib import Path

from ragline.ingest.parallel import batches, parse_files
from ragline.settings import ParsingSettings
from tests.test_faults import _hostile_docx


def _notes(folder: Path, count: int) -> list[Path]:
    paths = []
    for n in range(count):
        path = folder / f"note-{n:02d}.{'md' if n % 2 else 'txt'}"
        head = f"# Tide table {n}" if n % 2 else f"TIDE TABLE {n}"
        path.write_text(
            f"{head}\n\nHigh water at {n} o'clock. The harbour closes at dusk.\n\n"
            f"- berth {n}\n- berth {n + 1}\n"
        )
        paths.append(path)
    return paths


def test_small_files_go_several_to_a_task_and_large_ones_alone(tmp_path: Path) -> None:
    paths = _notes(tmp_path, 16)
    big = tmp_path / "big.txt"
    big.write_text("word " * 40_000)  # 200 kB: over half of batch_bytes
    settings = ParsingSettings(workers=2, batch_bytes=262144)
    groups = batches([*paths[:8], big, *paths[8:]], settings)
    assert [big] in groups
    assert sorted(p for g in groups for p in g) == sorted([*paths, big])
    assert max(len(g) for g in groups) == 3  # 17 files / (4 tasks x 2 workers), rounded up
    assert batches(paths, ParsingSettings(batch_bytes=0)) == [[p] for p in paths]


def test_batched_parsing_gives_the_documents_of_one_file_a_task(tmp_path: Path) -> None:
    paths = _notes(tmp_path, 24)
    one_each = {d.source: d for d in parse_files(paths, ParsingSettings(batch_bytes=0))}
    batched = {d.source: d for d in parse_files(paths, ParsingSettings())}
    assert batched.keys() == one_each.keys() == {str(p.resolve()) for p in paths}
    for source, document in batched.items():
        assert document.ok, document.error
        assert document.elements == one_each[source].elements
        assert document.file_type == one_each[source].file_type


def test_a_file_that_hangs_its_batch_fails_alone(tmp_path: Path) -> None:
    """The hostile DOCX (150 kB) works for minutes under a generous memory limit: its
    task times out, the task's files are retried one a task, and only it fails."""
    notes = _notes(tmp_path, 12)
    bomb = _hostile_docx(tmp_path / "bomb.docx", 1_500_000)
    settings = ParsingSettings(workers=1, file_timeout_s=3, batch_bytes=1 << 20)
    assert any(bomb in group and len(group) > 1 for group in batches([bomb, *notes], settings))
    results = {Path(d.source).name: d for d in parse_files([bomb, *notes], settings)}
    assert results.keys() == {p.name for p in [*notes, bomb]}
    assert results["bomb.docx"].error == "timed out after 3s while parsing"
    assert all(results[p.name].ok for p in notes)
