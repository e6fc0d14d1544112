"""A file-based evaluation set made from a BEIR dataset: each document becomes a web page.

``ragline eval`` on BEIR data chunks clean text directly and never sees what parsing does
to real files. This writes every document as an HTML, Markdown or plain-text page of one
of four made-up sites, wrapped in that site's navigation menu, sidebar link list and
footer (the same on every page of the site, as on the web) plus a few short lines that
differ per page (breadcrumb, author and date). Queries and qrels are carried over with
document ids replaced by the pages' file names, so retrieval is scored per file.

Output folder::

    files/<site>/<doc id>.<ext>   the pages
    queries.jsonl, qrels/<split>.tsv   BEIR queries and qrels keyed by file path
    documents.jsonl   the clean text of each page ({"_id": path, "title", "text"}),
                      for baselines over unsplit documents

The output is a function of the dataset and the options alone (no randomness beyond a
seeded hash of each document id), so the same command always writes the same files.
"""

from __future__ import annotations

import hashlib
import html
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ragline.evaluation.beir import BeirDataset, BeirDoc
from ragline.ingest.chunk import split_sentences


@dataclass(frozen=True, slots=True)
class Site:
    slug: str
    name: str
    extension: str  # "html", "md" or "txt"
    menu: tuple[str, ...]
    sidebar_title: str
    sidebar: tuple[str, ...]
    footer: tuple[str, ...]
    semantic_tags: bool = False  # <nav>/<footer> (unstructured drops them) or plain <div>s


SITES = (
    Site(
        "digest",
        "Evidence Digest",
        "html",
        ("Home", "Latest", "Topics", "Podcasts", "Newsletter", "About", "Contact"),
        "Most read",
        (
            "Ten myths about vitamins",
            "How to read a clinical trial",
            "What a p-value is not",
            "Our editorial standards",
        ),
        (
            "© 2024 Evidence Digest Ltd. All rights reserved.",
            "Privacy policy | Terms of use | Cookie settings",
            "Evidence Digest summarises research for general readers; it is not medical advice.",
        ),
        semantic_tags=True,
    ),
    Site(
        "medfacts",
        "MedFacts Online",
        "html",
        ("Home", "Conditions", "Drugs A-Z", "Research news", "Ask an expert", "Sign in"),
        "Trending now",
        (
            "Seasonal flu: what to expect",
            "Understanding cholesterol numbers",
            "Sleep hygiene basics",
            "When to see a doctor about headaches",
            "Newsletter sign-up",
        ),
        (
            "MedFacts Online is an independent publisher.",
            "Advertise with us | Careers | Accessibility | Sitemap",
            "Copyright 2023 MedFacts Media Group",
        ),
    ),
    Site(
        "notes",
        "Research Notes",
        "md",
        ("Home", "Archive", "Tags", "RSS", "About"),
        "More from Research Notes",
        (
            "Reading list for new graduate students",
            "Notes on reproducibility",
            "How we pick papers",
        ),
        ("Research Notes is written by volunteers. Content licensed CC BY 4.0.",),
    ),
    Site(
        "forum",
        "Health Forum Archive",
        "txt",
        (
            "Health Forum Archive",
            "Forums",
            "Search",
            "Members",
            "Register",
            "Log in",
            "Help",
        ),
        "Popular threads",
        (
            "Introduce yourself here",
            "Forum rules - please read",
            "Best sources for medical research?",
            "Off-topic lounge",
        ),
        (
            "Reply | Quote | Report post",
            "Powered by OpenBoard 3.2",
            "All times are UTC",
            "Contact the moderators",
        ),
    ),
)


def _seed(doc_id: str) -> int:
    return int.from_bytes(hashlib.sha256(doc_id.encode()).digest()[:8], "big")


def _site(doc_id: str) -> Site:
    return SITES[_seed(doc_id) % len(SITES)]


def page_path(doc_id: str) -> str:
    site = _site(doc_id)
    return f"{site.slug}/{doc_id}.{site.extension}"


def _paragraphs(text: str, rng: random.Random) -> list[str]:
    """The abstract in paragraphs of 2-4 sentences, as a web page would print it."""
    sentences = split_sentences(text)
    paragraphs: list[str] = []
    while sentences:
        size = rng.randint(2, 4)
        paragraphs.append(" ".join(sentences[:size]))
        sentences = sentences[size:]
    return paragraphs


def _byline(rng: random.Random) -> tuple[str, str]:
    author = rng.choice(["A. Moreau", "J. Chen", "P. Okafor", "L. Santos", "M. Ivanova"])
    date = f"20{rng.randint(15, 23)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    return author, date


def _html_page(site: Site, doc: BeirDoc, rng: random.Random) -> str:
    e = html.escape
    author, date = _byline(rng)
    menu = "".join(f'<li><a href="/{e(item.lower())}">{e(item)}</a></li>' for item in site.menu)
    side = "".join(
        f'<li><a href="/p/{i}">{e(item)}</a></li>' for i, item in enumerate(site.sidebar)
    )
    foot = "".join(f"<p>{e(line)}</p>" for line in site.footer)
    body = "".join(f"<p>{e(p)}</p>" for p in _paragraphs(doc.text, rng))
    nav_open, nav_close = (
        ("<nav>", "</nav>") if site.semantic_tags else ('<div class="menu">', "</div>")
    )
    foot_open, foot_close = (
        ("<footer>", "</footer>") if site.semantic_tags else ('<div class="footer">', "</div>")
    )
    return (
        f"<!DOCTYPE html>\n<html><head><title>{e(doc.title)} | {e(site.name)}</title></head>\n"
        f'<body>\n<div class="brand">{e(site.name)}</div>\n{nav_open}<ul>{menu}</ul>{nav_close}\n'
        '<div class="crumbs"><a href="/">Home</a> &rsaquo; '
        '<a href="/articles">Articles</a></div>\n'
        f"<article>\n<h1>{e(doc.title)}</h1>\n"
        f'<div class="byline">By {e(author)} · {e(date)}</div>\n{body}\n</article>\n'
        f"<aside><h3>{e(site.sidebar_title)}</h3><ul>{side}</ul></aside>\n"
        f"{foot_open}{foot}{foot_close}\n</body></html>\n"
    )


def _markdown_page(site: Site, doc: BeirDoc, rng: random.Random) -> str:
    author, date = _byline(rng)
    nav = " | ".join(f"[{item}](/{item.lower()})" for item in site.menu)
    side = "\n".join(f"- [{item}](/p/{i})" for i, item in enumerate(site.sidebar))
    body = "\n\n".join(_paragraphs(doc.text, rng))
    return (
        f"{nav}\n\n# {doc.title}\n\n*{author}, {date}*\n\n{body}\n\n"
        f"## {site.sidebar_title}\n\n{side}\n\n---\n\n" + "\n\n".join(site.footer) + "\n"
    )


def _text_page(site: Site, doc: BeirDoc, rng: random.Random) -> str:
    """A forum thread saved as plain text: every menu item on a line of its own."""
    author, date = _byline(rng)
    user = f"member{rng.randint(100, 9999)}"
    body = "\n\n".join(_paragraphs(doc.text, rng))
    return (
        "\n".join(site.menu)
        + f"\n\nForums > Research discussion\n\n{doc.title}\n\n"
        + f"Posted by {user} on {date}\n\n{body}\n\nSource shared by {author}\n\n"
        + f"{site.sidebar_title}\n"
        + "\n".join(site.sidebar)
        + "\n\n"
        + "\n".join(site.footer)
        + "\n"
    )


_WRITERS: dict[str, Callable[[Site, BeirDoc, random.Random], str]] = {
    "html": _html_page,
    "md": _markdown_page,
    "txt": _text_page,
}


def render_page(doc: BeirDoc) -> tuple[str, str]:
    """(relative path, page text) for one document."""
    site = _site(doc.doc_id)
    text = _WRITERS[site.extension](site, doc, random.Random(_seed(doc.doc_id)))
    return page_path(doc.doc_id), text


def select(dataset: BeirDataset, max_queries: int | None, max_docs: int | None) -> BeirDataset:
    """A subset: the first ``max_queries`` queries (in id order), every document they
    judge, and distractors (in a seeded order) up to ``max_docs`` documents."""
    query_ids = sorted(dataset.queries, key=lambda q: (len(q), q))[:max_queries]
    qrels = {q: dataset.qrels[q] for q in query_ids}
    judged = {doc for judgements in qrels.values() for doc in judgements if doc in dataset.corpus}
    others = sorted((d for d in dataset.corpus if d not in judged), key=_seed)
    room = len(dataset.corpus) if max_docs is None else max(0, max_docs - len(judged))
    keep = judged | set(others[:room])
    corpus = {d: doc for d, doc in dataset.corpus.items() if d in keep}
    return BeirDataset(corpus, {q: dataset.queries[q] for q in query_ids}, qrels)


def write_fileset(
    dataset: BeirDataset,
    out: Path,
    split: str = "test",
    more_splits: dict[str, BeirDataset] | None = None,
) -> int:
    """Write the pages, queries, qrels and clean documents under ``out``; returns the
    number of pages. ``more_splits`` adds other splits' queries and qrels (over the same
    pages: judgements of documents not written are left out)."""
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    with (out / "documents.jsonl").open("w", encoding="utf-8") as documents:
        for doc in sorted(dataset.corpus.values(), key=lambda d: d.doc_id):
            path, text = render_page(doc)
            target = out / "files" / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            row = {"_id": path, "title": doc.title, "text": doc.text}
            documents.write(json.dumps(row, ensure_ascii=False) + "\n")
    splits = {split: dataset, **(more_splits or {})}
    written: set[str] = set()
    with (out / "queries.jsonl").open("w", encoding="utf-8") as queries:
        for part in splits.values():
            for query_id, text in part.queries.items():
                if query_id not in written:
                    written.add(query_id)
                    row = {"_id": query_id, "text": text}
                    queries.write(json.dumps(row, ensure_ascii=False) + "\n")
    for name, part in splits.items():
        with (out / "qrels" / f"{name}.tsv").open("w", encoding="utf-8") as qrels:
            qrels.write("query-id\tcorpus-id\tscore\n")
            for query_id, judged in part.qrels.items():
                for doc_id, score in sorted(judged.items()):
                    if doc_id in dataset.corpus:
                        qrels.write(f"{query_id}\t{page_path(doc_id)}\t{score}\n")
    return len(dataset.corpus)
