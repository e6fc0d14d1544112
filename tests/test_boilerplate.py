"""Navigation boilerplate across documents, and chunk-size statistics, on web-like pages:
menus of short title-like lines and a footer repeated on every page."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ragline.ingest.boilerplate import candidate_keys, element_key, find_boilerplate
from ragline.ingest.collection import Collection
from ragline.ingest.embed import Embedder
from ragline.ingest.pipeline import IngestPipeline
from ragline.ingest.types import Element, ParsedDocument
from ragline.settings import Settings

MENU = ["Home", "News", "Health topics", "About us", "Contact"]
FOOTER = "Copyright 2024 Health Pages Inc. All rights reserved. Privacy | Terms | Cookies"
TOPICS = [
    ("Vitamin D and bone health", "Vitamin D supplements reduced hip fractures in older adults"),
    ("Sleep and memory", "Deep sleep consolidates newly learned facts in the hippocampus"),
    ("Coffee and the heart", "Moderate coffee drinking did not raise the risk of arrhythmia"),
    ("Walking after meals", "A short walk after dinner lowered blood glucose peaks"),
    ("Salt and blood pressure", "Cutting salt intake lowered systolic pressure by five points"),
    ("Noise and stress", "Traffic noise at night raised morning cortisol in city dwellers"),
]


def _page(index: int, footer: str = FOOTER, extra: str = "") -> ParsedDocument:
    """What unstructured makes of a plain-text web page: every short line a Title."""
    title, finding = TOPICS[index]
    body = f"{finding}. " + " ".join(
        f"In study {i} of this topic, the authors report detail {i} about {title.lower()}."
        for i in range(6)
    )
    elements = [Element(line, "Title") for line in MENU]
    elements += [
        Element(title, "Title"),
        Element(body + extra, "NarrativeText", headings=(title,)),
        Element(footer, "NarrativeText", headings=(title,)),
    ]
    digest = hashlib.sha256(repr(elements).encode()).hexdigest()
    return ParsedDocument(f"/site/page{index}.txt", digest, 1, "TXT", elements=elements)


@pytest.fixture
def store(settings: Settings) -> Collection:
    return Collection.open(settings.storage.collections_dir, "web", settings.index, create=True)


def _texts(store: Collection) -> dict[str, list[str]]:
    texts: dict[str, list[str]] = {}
    for chunk in store.docstore.iter_chunks():
        texts.setdefault(Path(chunk.source).name, []).append(chunk.text)
    return texts


def test_find_boilerplate_counts_documents_not_occurrences() -> None:
    footer, menu, own = element_key(FOOTER), element_key("Home"), element_key("mine")
    window = [frozenset({footer, menu}), frozenset({footer, own}), frozenset({footer})]
    found = find_boilerplate(window, {menu: 1}, min_documents=2)
    assert found.keys == frozenset({footer, menu})
    assert "  copyright 2024 HEALTH pages inc. all rights reserved. privacy | terms | cookies" in (
        found
    ), "matching ignores case and spacing"
    assert find_boilerplate(window, {}, min_documents=0).keys == frozenset()
    long_paragraph = "word " * 100
    page = ParsedDocument("/a", "h", 1, "TXT", [Element(long_paragraph, "NarrativeText")])
    assert candidate_keys(page, max_chars=300) == frozenset()


def test_menus_and_footers_repeated_across_a_batch_are_left_out(
    settings: Settings, store: Collection, embedder: Embedder
) -> None:
    report = IngestPipeline(settings, store, embedder=embedder).ingest_documents(
        [_page(i) for i in range(len(TOPICS))]
    )
    texts = _texts(store)
    assert len(texts) == len(TOPICS)
    for index, (title, finding) in enumerate(TOPICS):
        chunks = texts[f"page{index}.txt"]
        assert len(chunks) == 1, chunks  # one page of prose: one chunk, not one per line
        assert chunks[0].startswith(title + "\n\n" + finding), "the heading stays as context"
        assert "Copyright" not in chunks[0] and "Health topics" not in chunks[0]
    # 5 menu lines and the footer on each of 6 pages.
    assert report.boilerplate_dropped == 6 * len(TOPICS)
    stats = report.chunk_stats
    assert stats.chunks == len(TOPICS) and stats.share_small == 0.0
    assert stats.median_tokens is not None and stats.median_tokens >= 64
    assert store.info().chunk_sizes == stats


def test_boilerplate_is_counted_across_batches_and_updates(
    settings: Settings, store: Collection, embedder: Embedder
) -> None:
    """Pages uploaded one at a time: the stored pages' keys count, so from the third page
    on (boilerplate_min_documents = 3) the footer is recognised; re-ingesting a page
    replaces its own keys instead of counting them twice."""
    pipeline = IngestPipeline(settings, store, embedder=embedder)
    pipeline.ingest_documents([_page(0)])
    pipeline.ingest_documents([_page(1)])
    pipeline.ingest_documents([_page(1, extra=" A late correction.")])  # an update
    texts = _texts(store)
    assert all("Copyright" in " ".join(texts[f"page{i}.txt"]) for i in (0, 1))
    pipeline.ingest_documents([_page(2)])
    assert "Copyright" not in " ".join(_texts(store)["page2.txt"])


def test_long_shared_paragraphs_are_content_not_boilerplate(
    settings: Settings, store: Collection, embedder: Embedder
) -> None:
    shared = " ".join(
        f"Shared finding {i} holds for every version of the report." for i in range(8)
    )
    pages = [_page(i, footer=shared) for i in range(4)]
    IngestPipeline(settings, store, embedder=embedder).ingest_documents(pages)
    assert all(shared in " ".join(chunks) for chunks in _texts(store).values())


def test_boilerplate_filter_off(settings: Settings, store: Collection, embedder: Embedder) -> None:
    settings.chunking.boilerplate_min_documents = 0
    IngestPipeline(settings, store, embedder=embedder).ingest_documents(
        [_page(i) for i in range(4)]
    )
    assert all("Copyright" in " ".join(chunks) for chunks in _texts(store).values())
