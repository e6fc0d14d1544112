from __future__ import annotations

import itertools

import pytest

from ragline.ingest.chunk import Chunker
from ragline.ingest.embed import Embedder
from ragline.ingest.tokens import HFTokenCounter
from ragline.ingest.types import Element, ParsedDocument
from ragline.settings import ChunkingSettings


@pytest.fixture(scope="module")
def tokens(embedder: Embedder) -> HFTokenCounter:
    return HFTokenCounter(embedder.model_path)


def _doc(elements: list[Element]) -> ParsedDocument:
    return ParsedDocument("/docs/a.txt", "h", 1, "TXT", elements=elements)


def _prose(n: int) -> str:
    return " ".join(
        f"Sentence number {i} talks about topic {i % 7} in some detail." for i in range(n)
    )


def test_chunks_respect_token_budget_and_overlap(tokens: HFTokenCounter) -> None:
    settings = ChunkingSettings(size=64, overlap=16, heading_prefix=False)
    chunks = Chunker(settings, tokens).run(_doc([Element(_prose(60), "NarrativeText")]))
    assert len(chunks) > 5
    assert all(c.token_count <= 64 for c in chunks)
    assert [c.position for c in chunks] == list(range(len(chunks)))
    for previous, current in itertools.pairwise(chunks):
        last_sentence = previous.text.split(". ")[-1]
        assert last_sentence in current.text, "consecutive chunks share trailing sentences"
    # Without overlap nothing is repeated.
    plain = Chunker(ChunkingSettings(size=64, overlap=0, heading_prefix=False), tokens)
    no_overlap = plain.run(_doc([Element(_prose(60), "NarrativeText")]))
    joined = " ".join(c.text for c in no_overlap)
    assert joined.count("Sentence number 10 ") == 1
    assert len(no_overlap) < len(chunks)


def test_headings_are_carried_and_close_chunks(tokens: HFTokenCounter) -> None:
    elements = [
        Element(_prose(8), "NarrativeText"),
        Element("Methods", "Title"),
        Element("We measured things. " + _prose(8), "NarrativeText", headings=("Methods",)),
    ]
    chunks = Chunker(ChunkingSettings(size=128, overlap=0), tokens).run(_doc(elements))
    assert [c.text for c in chunks] == [
        _prose(8),
        "Methods\n\nWe measured things. " + _prose(8),
    ]
    assert chunks[0].headings == () and chunks[1].headings == ("Methods",)


def test_title_runs_are_text_not_chunks(tokens: HFTokenCounter) -> None:
    """Consecutive titles (slide titles, menu lines) used to become one chunk each; their
    text is kept, in one chunk."""
    elements = [Element("Slide one", "Title"), Element("Slide two", "Title")]
    chunks = Chunker(ChunkingSettings(size=128, overlap=0), tokens).run(_doc(elements))
    assert [c.text for c in chunks] == ["Slide one Slide two"]


def test_menu_lines_join_the_content_they_precede(tokens: HFTokenCounter) -> None:
    menu = ["Home", "About us", "Products", "Contact", "Blog"]
    elements = [Element(line, "Title") for line in menu] + [
        Element("Vitamin D and bone health", "Title"),
        Element(_prose(3), "NarrativeText", headings=("Vitamin D and bone health",)),
        Element("Related posts", "Title", headings=("Vitamin D and bone health",)),
        Element(
            "Ten tips for healthy sleep",
            "ListItem",
            headings=("Vitamin D and bone health", "Related posts"),
        ),
    ]
    chunks = Chunker(ChunkingSettings(size=256, overlap=0), tokens).run(_doc(elements))
    assert len(chunks) == 1, [c.text for c in chunks]
    text = chunks[0].text
    assert text.startswith("Home About us Products Contact Blog\n\n")
    # Headings stay as context, written above the text they head.
    assert "Vitamin D and bone health\n" + _prose(3) in text
    assert "Related posts\nTen tips for healthy sleep" in text
    assert chunks[0].headings == ()  # the path the merged parts share
    assert chunks[0].token_count == tokens.count([text])[0]


def test_small_sections_merge_within_the_budget(tokens: HFTokenCounter) -> None:
    elements = []
    for i in range(30):
        heading = f"Question {i}"
        elements.append(Element(heading, "Title", headings=("FAQ",)))
        elements.append(
            Element(f"Answer {i} is short but real.", "NarrativeText", headings=("FAQ", heading))
        )
    settings = ChunkingSettings(size=64, overlap=0, min_tokens=32)
    chunks = Chunker(settings, tokens).run(_doc(elements))
    assert 3 <= len(chunks) < 30
    assert all(c.token_count <= 64 for c in chunks)
    assert all(c.token_count == tokens.count([c.text])[0] for c in chunks), "measure is exact"
    assert all(c.headings == ("FAQ",) and c.text.startswith("FAQ\n\n") for c in chunks)
    joined = "\n".join(c.text for c in chunks)
    assert all(f"Question {i}\nAnswer {i} is short but real." in joined for i in range(30))
    # min_tokens 0 restores one chunk per section.
    plain = Chunker(ChunkingSettings(size=64, overlap=0, min_tokens=0), tokens).run(_doc(elements))
    assert len(plain) == 30


def test_small_prose_never_merges_into_tables_or_other_sheets(tokens: HFTokenCounter) -> None:
    html = "<table><tr><th>Name</th><th>Qty</th></tr><tr><td>a</td><td>1</td></tr></table>"
    elements = [
        Element("Note one.", "NarrativeText", sheet="S1"),
        Element("flattened", "Table", sheet="S1", table_html=html),
        Element("Note two.", "NarrativeText", sheet="S1"),
        Element("Note three.", "NarrativeText", sheet="S2"),
    ]
    chunks = Chunker(ChunkingSettings(size=128, overlap=0), tokens).run(_doc(elements))
    assert [(c.category, c.sheet, c.text) for c in chunks] == [
        ("text", "S1", "Note one."),
        ("table", "S1", "| Name | Qty |\n| a | 1 |"),
        ("text", "S1", "Note two."),
        ("text", "S2", "Note three."),
    ]


def test_tables_split_on_rows_with_header_repeated(tokens: HFTokenCounter) -> None:
    rows = "".join(f"<tr><td>item {i}</td><td>{i * 3} units</td></tr>" for i in range(40))
    html = f"<table><tr><th>Name</th><th>Quantity</th></tr>{rows}</table>"
    table = Element("flattened", "Table", table_html=html)
    chunks = Chunker(ChunkingSettings(size=64, overlap=16, heading_prefix=False), tokens).run(
        _doc([table])
    )
    assert len(chunks) > 2
    seen_rows: list[str] = []
    for chunk in chunks:
        lines = chunk.text.splitlines()
        assert lines[0] == "| Name | Quantity |"
        assert all(line.startswith("| item ") and line.endswith(" units |") for line in lines[1:])
        assert chunk.category == "table" and chunk.table_html and "<tr>" in chunk.table_html
        assert chunk.token_count <= 64
        seen_rows.extend(lines[1:])
    assert seen_rows == [f"| item {i} | {i * 3} units |" for i in range(40)], "no row lost or split"


def test_repeated_text_in_a_document_is_dropped(tokens: HFTokenCounter) -> None:
    """Small sections now merge, so the repeat is dropped as an element, not a chunk."""
    elements = [
        Element("Confidential footer text.", "NarrativeText", headings=("A",)),
        Element("Body A.", "NarrativeText", headings=("B",)),
        Element("Confidential footer text.", "NarrativeText", headings=("A",)),
    ]
    chunker = Chunker(ChunkingSettings(size=64, overlap=0), tokens)
    result = chunker.chunk(_doc(elements))
    joined = " ".join(c.text for c in result.chunks)
    assert joined.count("Confidential footer text.") == 1 and "Body A." in joined
    assert result.repeats_dropped == 1
    # Whole repeated chunks are dropped too (merging off; short repeats pass the element
    # filter, so the same section comes back as the same chunk).
    plain = Chunker(ChunkingSettings(size=64, overlap=0, min_tokens=0), tokens)
    again = [
        Element("Body A.", "NarrativeText", headings=("B",)),
        Element("Body C.", "NarrativeText", headings=("C",)),
        Element("Body A.", "NarrativeText", headings=("B",)),
    ]
    assert [c.text for c in plain.run(_doc(again))] == ["B\n\nBody A.", "C\n\nBody C."]


def test_single_oversized_sentence_is_cut_at_token_boundaries(tokens: HFTokenCounter) -> None:
    words = " ".join(f"Word{i}" for i in range(400))
    chunks = Chunker(ChunkingSettings(size=50, overlap=10, heading_prefix=False), tokens).run(
        _doc([Element(words, "NarrativeText")])
    )
    assert len(chunks) > 3
    assert all(c.token_count <= 50 for c in chunks)
    assert chunks[0].text.startswith("Word0") and chunks[-1].text.endswith("Word399")
