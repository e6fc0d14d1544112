from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ragline.ingest.parse import parse_file
from ragline.settings import ParsingSettings

SETTINGS = ParsingSettings()


@pytest.mark.parametrize(
    ("name", "phrase"),
    [
        ("pdf/layout-parser-paper-fast.pdf", "LayoutParser"),
        ("pdf/DA-1p.pdf", "maleficar"),
        ("pdf/reliance.pdf", "Reliance"),
    ],
)
def test_pdfs_with_a_text_layer_yield_text(example_docs: Path, name: str, phrase: str) -> None:
    document = parse_file(example_docs / name, SETTINGS)
    assert document.ok, document.error
    text = " ".join(e.text for e in document.elements)
    assert len(text) > 500
    assert phrase.lower() in text.lower()
    assert all(e.page is not None and e.page >= 1 for e in document.elements)


def test_image_is_read_with_ocr(example_docs: Path) -> None:
    document = parse_file(example_docs / "img" / "double-column-A.jpg", SETTINGS)
    assert document.ok, document.error
    assert len(" ".join(e.text for e in document.elements)) > 1000


@pytest.mark.parametrize(
    "name",
    [
        "docx-tables.docx",
        "2023-half-year-analyses-by-segment.xlsx",
        "example-steelJIS-datasheet.html",
    ],
)
def test_tables_keep_their_html_structure(example_docs: Path, name: str) -> None:
    document = parse_file(example_docs / name, SETTINGS)
    tables = [e for e in document.elements if e.category == "Table"]
    assert tables, f"no table found in {name}"
    assert all(t.table_html and "<tr>" in t.table_html and "<td>" in t.table_html for t in tables)


def test_spreadsheet_elements_carry_sheet_and_page(example_docs: Path) -> None:
    document = parse_file(example_docs / "2023-half-year-analyses-by-segment.xlsx", SETTINGS)
    assert {e.sheet for e in document.elements} - {None}
    assert {e.page for e in document.elements} - {None}


def test_heading_path_is_tracked(example_docs: Path) -> None:
    document = parse_file(example_docs / "fake-html.html", SETTINGS)
    assert any(e.headings for e in document.elements)


def test_email_with_unparseable_attachment_keeps_its_body(example_docs: Path) -> None:
    document = parse_file(example_docs / "eml" / "mime-attach-mp3.eml", SETTINGS)
    assert document.ok, document.error


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("empty.txt", "empty file"),
        ("CantinaBand3.wav", "unsupported file type"),
        ("simple.zip", "unsupported file type"),
        ("password_protected.xlsx", "encrypted"),
        ("fake-text-all-whitespace.txt", "no text extracted"),
    ],
)
def test_bad_files_get_a_clear_reason(example_docs: Path, name: str, reason: str) -> None:
    document = parse_file(example_docs / name, SETTINGS)
    assert not document.ok
    assert document.error is not None and reason in document.error
    assert document.content_hash  # the file is still identified, for the report


def test_corrupt_pdf_is_reported_not_raised(example_docs: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.pdf"
    data = (example_docs / "pdf" / "DA-1p.pdf").read_bytes()
    broken.write_bytes(data[: len(data) // 3])
    document = parse_file(broken, SETTINGS)
    assert document.ok or document.error  # either recovered text or a reason, never an exception


def test_oversized_file_is_refused(example_docs: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    shutil.copy(example_docs / "book-war-and-peace-1p.txt", big)
    document = parse_file(big, ParsingSettings(max_file_mb=0.001))
    assert document.error is not None and "too large" in document.error


def test_password_pdf_is_reported_as_encrypted(example_docs: Path) -> None:
    document = parse_file(example_docs / "pdf" / "password.pdf", SETTINGS)
    assert document.error == "encrypted or password-protected PDF"


@pytest.mark.parametrize("name", ["stanley-cups-utf-16.csv", "single-column.csv"])
def test_awkward_csvs_still_yield_text(example_docs: Path, name: str) -> None:
    document = parse_file(example_docs / name, SETTINGS)
    assert document.ok, document.error
    assert len(" ".join(e.text for e in document.elements)) > 20
