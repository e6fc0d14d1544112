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
        Element("Intro text.", "NarrativeText"),
        Element("Methods", "Title"),
        Element("We measured things.", "NarrativeText", headings=("Methods",)),
    ]
    chunks = Chunker(ChunkingSettings(size=128, overlap=0), tokens).run(_doc(elements))
    assert [c.text for c in chunks] == ["Intro text.", "Methods\n\nWe measured things."]
    assert chunks[1].headings == ("Methods",)


def test_consecutive_titles_keep_their_text(tokens: HFTokenCounter) -> None:
    elements = [Element("Slide one", "Title"), Element("Slide two", "Title")]
    chunks = Chunker(ChunkingSettings(size=128, overlap=0), tokens).run(_doc(elements))
    assert [c.text for c in chunks] == ["Slide one", "Slide two"]


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


def test_repeated_chunks_in_a_document_are_dropped(tokens: HFTokenCounter) -> None:
    elements = [
        Element("Confidential footer text.", "NarrativeText", headings=("A",)),
        Element("Body A.", "NarrativeText", headings=("B",)),
        Element("Confidential footer text.", "NarrativeText", headings=("A",)),
    ]
    chunks = Chunker(ChunkingSettings(size=64, overlap=0), tokens).run(_doc(elements))
    texts = [c.text for c in chunks]
    assert len(texts) == len(set(texts)) == 2


def test_single_oversized_sentence_is_cut_at_token_boundaries(tokens: HFTokenCounter) -> None:
    words = " ".join(f"Word{i}" for i in range(400))
    chunks = Chunker(ChunkingSettings(size=50, overlap=10, heading_prefix=False), tokens).run(
        _doc([Element(words, "NarrativeText")])
    )
    assert len(chunks) > 3
    assert all(c.token_count <= 50 for c in chunks)
    assert chunks[0].text.startswith("Word0") and chunks[-1].text.endswith("Word399")
