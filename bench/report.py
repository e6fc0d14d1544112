"""The results section of README.md, regenerated from the tables in bench/results/.

    python -m bench report [--results DIR] [--readme README.md] [--no-readme]

One line per benchmark with its headline speed ratio against each peer, read from the
CSV tables the benchmarks wrote (never typed by hand), "ahead"/"behind" decided by those
numbers, and links to the full tables and plots; then the tuning frontier that
`ragline eval --sweep` wrote to bench/results/scifact/eval.md, with its plot.

Only the text between ``<!-- bench:results:start -->`` and ``<!-- bench:results:end -->``
in the README is replaced; without exactly one of each marker, in that order, the README
is left alone and the command fails. The same section is always written to
``<results>/summary.md``.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

from bench.common import RESULTS, parse_spread, verdict
from ragline.settings import PROJECT_ROOT

START = "<!-- bench:results:start -->"
END = "<!-- bench:results:end -->"
RERANK_NDCG_TOLERANCE = 0.005  # the quality gate: nDCG@10 within this of torch fp32
_DATE = re.compile(r"\b(\d{4}-\d{2}-\d{2}) · ([^·\n]+) · (\d+) CPUs · Python ([\d.]+)")


class MarkerError(ValueError):
    """The README lacks the results markers, or has them more than once or reversed."""


def replace_between_markers(text: str, body: str, start: str = START, end: str = END) -> str:
    """``text`` with everything strictly between the two markers replaced by ``body``;
    the markers and everything outside them are kept byte for byte."""
    if text.count(start) != 1 or text.count(end) != 1:
        raise MarkerError(
            f"expected exactly one {start!r} and one {end!r}; found "
            f"{text.count(start)} and {text.count(end)}"
        )
    head = text.index(start) + len(start)
    tail = text.index(end)
    if tail < head:
        raise MarkerError(f"{end!r} comes before {start!r}")
    return text[:head] + "\n" + body.strip("\n") + "\n" + text[tail:]


# -- reading tables -----------------------------------------------------------------------


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def table_date(markdown: Path) -> str:
    """The run date from a table's environment line ("" if none)."""
    match = _DATE.search(markdown.read_text()) if markdown.exists() else None
    return match.group(1) if match else ""


def machine(results: Path) -> str:
    """ "x86_64 · 2 CPUs · Python 3.11.7" from the first table that records it."""
    for path in sorted(results.glob("*.md")):
        match = _DATE.search(path.read_text())
        if match:
            return f"{match.group(2)} · {match.group(3)} CPUs · Python {match.group(4)}"
    return "unknown machine"


def ratio_words(cell: str, peer: str, what: str) -> str:
    """``"1.20x (1.10-1.30)"`` → "1.20x (1.10-1.30) {peer}'s {what}, ahead"."""
    median, low, high = parse_spread(cell)
    figure = f"{median:.2f}x" + (f" ({low:.2f}-{high:.2f})" if low != high else "")
    return f"{figure} {peer}'s {what} — {verdict(median, low, high)}"


def _links(link: Callable[[str], str], results: Path, name: str) -> str:
    parts = [f"[table]({link(name + '.md')})"]
    if (results / f"{name}.png").exists():
        parts.append(f"[plot]({link(name + '.png')})")
    return " · ".join(parts)


def _dated(results: Path, name: str) -> str:
    date = table_date(results / f"{name}.md")
    return f" ({date})" if date else ""


def _bullet(
    label: str, results: Path, name: str, link: Callable[[str], str], parts: list[str]
) -> str:
    """``- **label** (date) part; part. [table] · [plot]`` for one benchmark table."""
    return (
        f"- **{label}**{_dated(results, name)} "
        + "; ".join(parts)
        + ". "
        + _links(link, results, name)
    )


# -- one line per benchmark ---------------------------------------------------------------


def ingest_line(results: Path, link: Callable[[str], str]) -> str:
    rows = read_rows(results / "ingest.csv")
    parts = []
    for row in rows:
        if row["system"].startswith("ragline, from files"):
            docs_s = parse_spread(row["docs/s"])[0]
            clause = f"from files on {row['corpus']}: {docs_s:.1f} documents/s"
            if row.get("docs/s vs LlamaIndex", "-") != "-":
                clause += ", " + ratio_words(
                    row["docs/s vs LlamaIndex"], "LlamaIndex", "documents/s from the same files"
                )
            parts.append(clause)
            continue
        if not row["system"].startswith("ragline (chunk"):
            continue
        clauses = []
        if row.get("docs/s vs LlamaIndex", "-") != "-":
            clauses.append(ratio_words(row["docs/s vs LlamaIndex"], "LlamaIndex", "documents/s"))
        if row.get("emb/s vs plain", "-") != "-":
            clauses.append(
                "embeddings/s "
                + ratio_words(row["emb/s vs plain"], "the plain encode loop", "rate")
            )
        if row.get("emb/s ÷ bound", "-") != "-":
            fraction = parse_spread(row["emb/s ÷ bound"])[0]
            clauses.append(
                f"{fraction:.0%} of the CPU's FP32 FLOP bound (an int8 or bf16 runtime can pass it)"
            )
        parts.append(f"on {row['corpus']}: " + ", ".join(clauses))
    if not parts:
        raise ValueError("no ragline row in ingest.csv")
    if not any(row["system"].startswith("LlamaIndex") for row in rows):
        parts.append("LlamaIndex was not installed in that run")
    return _bullet("Ingestion", results, "ingest", link, parts)


def ingest_ray_line(results: Path, link: Callable[[str], str]) -> str:
    rows = read_rows(results / "ingest-ray.csv")
    local = {row["corpus"]: row for row in rows if row["executor"] == "local"}
    parts = []
    for row in rows:
        if row["executor"] != "ray":
            continue
        ray_docs = parse_spread(row["docs/s"])[0]
        local_docs = parse_spread(local[row["corpus"]]["docs/s"])[0]
        parts.append(
            f"on {row['corpus']}: the Ray executor (two one-CPU nodes on loopback) ingests "
            f"{ray_docs / local_docs:.2f}x the local executor's documents/s, "
            f"{row['Ray overhead s/file']} s per file"
        )
    if not parts:
        raise ValueError("no ray row in ingest-ray.csv")
    return _bullet("Ingestion on Ray", results, "ingest-ray", link, parts)


def query_line(results: Path, link: Callable[[str], str]) -> str:
    rows = read_rows(results / "query.csv")
    parts = []
    for row in rows:
        name = row["configuration"]
        if not name.startswith("ragline"):
            continue
        words = [f"{name.removeprefix('ragline ')} p50 {parse_spread(row['p50 ms'])[0]:.1f} ms:"]
        peer_cell = row.get("speed vs LlamaIndex (FAISS)", "-")
        if peer_cell != "-":
            words.append(ratio_words(peer_cell, "LlamaIndex", "speed") + ",")
        words.append(ratio_words(row["speed vs plain"], "plain encode + FAISS", "speed"))
        parts.append(" ".join(words))
    if not parts:
        raise ValueError("no ragline row in query.csv")
    if not any(row["configuration"].startswith("LlamaIndex") for row in rows):
        parts.append("LlamaIndex was not installed in that run")
    return _bullet("Query latency", results, "query", link, parts)


def generate_line(results: Path, link: Callable[[str], str]) -> str:
    rows = read_rows(results / "generate.csv")

    def median(row: dict[str, str], column: str) -> float:
        return parse_spread(row[column])[0]

    def row(system: str, prompt: str) -> dict[str, str] | None:
        return next(
            (r for r in rows if r["system"].startswith(system) and r["prompt"] == prompt), None
        )

    parts = []
    for prompt, kind in (("first question", "with RAG"), ("question alone, no RAG", "no RAG")):
        ours, theirs = row("ragline GenerationEngine", prompt), row("vllm serve", prompt)
        if ours is None or theirs is None:
            continue
        ttft = median(theirs, "TTFT ms") / median(ours, "TTFT ms")
        decode = median(ours, "decode tok/s") / median(theirs, "decode tok/s")
        label = theirs["system"].split(" (")[0]
        parts.append(
            f"{kind}, TTFT {ttft:.2f}x {label}'s speed — {verdict(ttft, ttft, ttft)}, decode "
            f"tokens/s {decode:.2f}x — {verdict(decode, decode, decode)}"
        )
    if parts:
        parts[-1] += " (ratios of medians; ragline timed in-process, vllm serve over loopback HTTP)"
    else:
        parts.append("vllm serve was skipped in that run")
    orders = {r["system"]: r for r in rows if "source order" in r["system"]}
    canonical = next((r for n, r in orders.items() if "canonical" in n), None)
    score = next((r for n, r in orders.items() if "score" in n), None)
    if canonical is not None and score is not None:
        cut = median(score, "TTFT ms") / median(canonical, "TTFT ms")
        parts.append(
            f"a second question over the same passages starts {cut:.1f}x sooner with "
            "ragline's cache-aware (canonical) source order than with score order"
        )
    return _bullet("Generation", results, "generate", link, parts)


def load_line(results: Path, link: Callable[[str], str]) -> str:
    """No peer here: ragline's own server under N concurrent streaming clients."""
    rows = read_rows(results / "load.csv")
    top = max(rows, key=lambda r: int(r["clients"]))
    failures = sum(int(r[c]) for r in rows for c in ("errors", "cut streams"))
    return (
        f"- **Load**{_dated(results, 'load')} `ragline serve` with {top['clients']} streaming "
        f"clients: {top['answers/s']} answers/s, {top['tokens/s']} tokens/s, TTFT p50 "
        f"{top['TTFT p50 ms']} ms (p95 {top['TTFT p95 ms']} ms), "
        f"{failures} errors or cut streams over all levels (no peer). "
        + _links(link, results, "load")
    )


def p99_during_ingest(cell: str) -> str:
    """The scale table's p99 cell ("45 / 79 (max 165; 1 commits); HTTP job of the
    server: 90 (max 200); ...") as ratios to the idle p99."""
    found = re.match(r"([\d.]+) / ([\d.]+) \(max ([\d.]+)", cell)
    if not found:
        return f"hybrid p99 {cell} ms idle / during an ingest"
    idle, busy, peak = (float(v) for v in found.groups())
    text = (
        f"hybrid p99 {idle:.0f} ms idle, {busy:.0f} ms while an ingestion job runs beside "
        f"the server ({busy / idle:.1f}x; max {peak:.0f} ms)"
    )
    # "job in the server process": tables from before HTTP jobs had processes of their own
    inside = re.search(
        r"(HTTP job of the server|job in the server process): ([\d.]+) \(max ([\d.]+)\)", cell
    )
    if inside:
        p99, top = float(inside[2]), float(inside[3])
        text += (
            f", {p99:.0f} ms during an HTTP job of the server ({p99 / idle:.1f}x; max {top:.0f} ms)"
        )
    return text


def scale_line(results: Path, link: Callable[[str], str]) -> str:
    """The largest collection measured; peers: the whole BM25 rebuild a commit used to
    cost, and LanceDB on the same rows where it ran (latency ratios of p50s)."""
    rows = read_rows(results / "scale.csv")

    def size(row: dict[str, str]) -> int:
        return int(row["chunks"].replace(",", ""))

    ours = [r for r in rows if r.get("system", "ragline") == "ragline"]
    top = max(ours, key=size)
    parts = [
        f"{top['chunks']} chunks: hybrid p50/p95 {top['hybrid p50/p95 ms']} ms, dense recall@10 "
        f"{top['dense recall@10']} against exact search, serving RSS {top['serving RSS MB']} MB",
        p99_during_ingest(top["hybrid p99 ms idle / during ingest"]),
        f"a commit searchable after {top['searchable after ms (BM25/dense)']} ms (BM25/dense)",
    ]
    lance = [r for r in rows if r.get("system", "").startswith("LanceDB") and size(r) == size(top)]
    if lance:
        peer = lance[0]
        for mode, column in (("dense", "dense p50/p95 ms"), ("hybrid", "hybrid p50/p95 ms")):
            ratio = parse_spread(peer[column])[0] / parse_spread(top[column])[0]
            parts.append(
                f"{mode} p50 {ratio:.2f}x {peer['system']}'s speed — "
                f"{'ahead' if ratio >= 1 else 'behind'} (its recall@10 "
                f"{peer['dense recall@10']}, RSS {peer['serving RSS MB']} MB)"
            )
    peers = [r for r in ours if r["peer: bm25s rebuild"] != "not run"]
    if peers:
        peer = max(peers, key=size)
        parts.append(
            f"the BM25 rebuild each commit used to cost (bm25s): {peer['peer: bm25s rebuild']} "
            f"at {peer['chunks']} chunks"
        )
    return _bullet("Scale", results, "scale", link, parts)


def tuning_grid(rows: list[dict[str, str]], mode: str) -> list[str]:
    """One mode's chunk size by rerank depth grid as Markdown: nDCG@10 and p50 per cell."""
    chosen = [r for r in rows if r["mode"] == mode]
    sizes = sorted({(int(r["chunk_size"]), int(r["overlap"])) for r in chosen})
    depths = sorted({int(r["rerank_depth"]) for r in chosen})
    cell = {(int(r["chunk_size"]), int(r["overlap"]), int(r["rerank_depth"])): r for r in chosen}
    header = ["chunk / overlap"] + [f"rerank@{d}" if d else "no rerank" for d in depths]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for size, overlap in sizes:
        cells = [f"{size} / {overlap}"]
        for depth in depths:
            row = cell.get((size, overlap, depth))
            cells.append(f"{row['nDCG@10']} · {row['p50_ms']} ms" if row else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def tuning_lines(results: Path, link: Callable[[str], str]) -> list[str]:
    """The frontier `ragline eval --sweep` recorded, and the chunk size by rerank depth grid
    of the best mode (by its best nDCG@10) when eval.csv is there."""
    markdown = (results / "scifact" / "eval.md").read_text()
    frontier = next(
        (line.split(":", 1)[1].strip() for line in markdown.splitlines() if "frontier" in line),
        "",
    )
    lines = [
        f"- **Tuning**{_dated(results / 'scifact', 'eval')} quality/latency frontier on SciFact "
        f"(`ragline eval --sweep`): {frontier or 'not recorded'}. "
        f"[table]({link('scifact/eval.md')})"
    ]
    table = results / "scifact" / "eval.csv"
    rows = read_rows(table) if table.exists() else []
    if rows:
        best = max(rows, key=lambda r: float(r["nDCG@10"]))
        lines += [
            "",
            f"SciFact test, {best['mode']} retrieval: nDCG@10 · p50 latency per query "
            "(chunk size by rerank depth):",
            "",
            *tuning_grid(rows, best["mode"]),
        ]
    if (results / "scifact" / "eval.png").exists():
        lines += ["", f"![SciFact nDCG@10 vs p50 latency]({link('scifact/eval.png')})"]
    return lines


def backends_line(
    results: Path,
    link: Callable[[str], str],
    name: str = "backends",
    label: str = "Embedding runtimes",
) -> str:
    """The runtime ``auto`` chose, per passage length, against the plain fp32 loop and
    the GEMM ceiling at its precision; then the reranker's fastest runtime among those
    that pass its gate and keep SciFact nDCG@10 within 0.005 of torch fp32's."""
    rows = read_rows(results / f"{name}.csv")
    parts = []
    for row in rows:
        if row["runtime"].endswith("(auto)"):
            parts.append(
                f"{row['runtime'].removesuffix(' (auto)')} at {row['tokens']} tokens: "
                f"{row['passages/s']} passages/s, "
                + ratio_words(row["÷ plain fp32 loop"], "the plain fp32 loop", "rate")
                + f", {row['% of GEMM rate at its precision']} of the GEMM rate at its "
                f"precision, cosine to fp32 {row['cosine to fp32 mean / min']} (mean / min)"
            )
    if not parts:
        raise ValueError(f"no (auto) row in {name}.csv")
    rerank = results / f"{name}-rerank.csv"
    if rerank.exists():
        rows = read_rows(rerank)
        plain = next(r for r in rows if r["rerank@20 p50 ms"] == "-")
        gated = [
            r
            for r in rows
            if r is not plain
            and float(r["rank correlation to fp32 (gate)"]) >= 0.95
            and float(r["Δ nDCG@10 vs torch fp32"]) >= -RERANK_NDCG_TOLERANCE
        ]
        best = min(gated, key=lambda r: float(r["rerank@20 p50 ms"]))
        parts.append(
            f"rerank@20 p50 {best['rerank@20 p50 ms']} ms with {best['runtime']} "
            f"({best['speed ÷ torch fp32']} torch fp32's speed), SciFact hybrid + rerank "
            f"nDCG@10 {best['nDCG@10']} ({best['Δ nDCG@10 vs torch fp32']} vs torch fp32; "
            f"{plain['nDCG@10']} without reranking)"
        )
    return _bullet(label, results, name, link, parts)


def op_profile_line(results: Path, link: Callable[[str], str]) -> str:
    """Per precision at the longest passages: the matrix products' share of the pass and
    their own rate against the ceiling, then the largest other share."""
    rows = read_rows(results / "op_profile.csv")
    longest = max(int(r["tokens"]) for r in rows)
    parts = []
    for row in (r for r in rows if int(r["tokens"]) == longest):
        others = {
            k.removeprefix("% "): v
            for k, v in row.items()
            if k.startswith("% ") and "ceiling" not in k
        }
        others.pop("matrix products")
        largest = max(others, key=lambda k: float(others[k].rstrip("%")))
        parts.append(
            f"{row['precision']} at {longest} tokens: matrix products "
            f"{row['% matrix products']} of the pass at "
            f"{row['% of GEMM ceiling (matrix products)']} of the GEMM ceiling, "
            f"{largest} {others[largest]}, whole pass "
            f"{row['% of GEMM ceiling (whole pass)']} of the ceiling"
        )
    return _bullet("Where a pass's time goes", results, "op_profile", link, parts)


def file_eval_line(results: Path, link: Callable[[str], str]) -> str:
    """Per-document recall through files (parse → chunk → retrieve) against whole-document
    baselines in the same run, and the chunk sizes parsing and chunking made."""
    rows = {r["retrieval"]: r for r in read_rows(results / "file_eval.csv")}
    hybrid = next(r for name, r in rows.items() if name.startswith("ragline hybrid (penalty"))
    dense = rows["plain MiniLM, clean documents"]
    bm25 = rows["plain BM25, clean documents"]
    markdown = (results / "file_eval.md").read_text()
    parts = [
        f"document recall@5 of hybrid {hybrid['recall@5']} (nDCG@10 {hybrid['nDCG@10']}) vs "
        f"plain MiniLM {dense['recall@5']} and plain BM25 {bm25['recall@5']} over the "
        f"unsplit documents, {hybrid['queries']} SciFact test queries"
    ]
    sizes = re.search(r"^\| all \| (\d+) \| (\d+) \|", markdown, re.MULTILINE)
    tiny = re.search(r"([\d.]+%) of chunks under (\d+) tokens", markdown)
    if sizes and tiny:
        parts.append(
            f"{sizes.group(1)} chunks, median {sizes.group(2)} tokens, {tiny.group(1)} "
            f"under {tiny.group(2)} tokens"
        )
    return _bullet("Retrieval through files", results, "file_eval", link, parts)


def multiturn_line(results: Path, link: Callable[[str], str]) -> str:
    """Recall@5 of follow-ups: the last turn alone against ragline's fused retrieval."""
    rows = read_rows(results / "multiturn.csv")
    parts = []
    for subset in dict.fromkeys(r["set"] for r in rows):
        cells = {r["retrieval"]: r["recall@5"] for r in rows if r["set"] == subset}
        parts.append(
            f"{subset}: recall@5 last turn only {cells['last turn only']}, fused (ragline) "
            f"{cells['fused (ragline)']}, rewrite only {cells['rewrite only']}"
        )
    return _bullet("Multi-turn retrieval", results, "multiturn", link, parts)


def grounding_line(results: Path, link: Callable[[str], str]) -> str:
    """Abstention per question set, by the retrieval rule and by the prompt's rule."""
    rows = read_rows(results / "grounding.csv")
    rule = next(c for c in rows[0] if c.startswith("abstain: retrieval rule"))
    parts = [
        f"{r['questions']}: {r[rule]} abstain by the retrieval rule, "
        f"{r['abstain: prompt rule']} by the prompt's rule (embedded model)"
        for r in rows
    ]
    answerable = rows[0]
    parts.append(
        f"{answerable['answer sentences supported']} of answer sentences supported by a cited "
        f"or attributed source, {answerable['answers citing [n]']} of answers citing [n]"
    )
    return _bullet("Grounded answers", results, "grounding", link, parts)


def faults_line(results: Path, link: Callable[[str], str]) -> str:
    """The promise kept or not: injections, and every count that must be 0, from the
    total row; then the large upload's memory."""
    rows = read_rows(results / "faults.csv")
    total = next(r for r in rows if r["fault"] == "total")
    kinds = [r for r in rows if r["fault"] not in ("total",) and r["injections"] not in ("0", "-")]
    counts = "; ".join(f"{r['fault']}: {r['injections']}" for r in kinds)
    parts = [
        f"{total['injections']} injected faults ({counts}): "
        f"{total['jobs finished exactly once']} jobs finished exactly once, "
        f"{total['stale reads']} stale reads, {total['documents lost']} documents lost, "
        f"{total['duplicated documents']} duplicated, {total['orphan processes']} orphan "
        f"processes, {total['5xx or dropped']} answers 5xx or dropped"
    ]
    upload = next((r for r in rows if "upload" in r["fault"]), None)
    if upload is not None:
        parts.append(f"{upload['fault'].split(' (')[0]}: {upload['peak RSS MB']} MB")
    return _bullet("Faults", results, "faults", link, parts)


SECTIONS: list[tuple[str, str, Callable[[Path, Callable[[str], str]], str]]] = [
    ("ingest.csv", "Ingestion", ingest_line),
    ("backends.csv", "Embedding runtimes", backends_line),
    (
        "backends-amx.csv",
        "Embedding runtimes, AMX CPU",
        partial(backends_line, name="backends-amx", label="Embedding runtimes, AMX CPU"),
    ),
    ("op_profile.csv", "Where a pass's time goes", op_profile_line),
    ("ingest-ray.csv", "Ingestion on Ray", ingest_ray_line),
    ("query.csv", "Query latency", query_line),
    ("generate.csv", "Generation", generate_line),
    ("load.csv", "Load", load_line),
    ("scale.csv", "Scale", scale_line),
    ("file_eval.csv", "Retrieval through files", file_eval_line),
    ("multiturn.csv", "Multi-turn retrieval", multiturn_line),
    ("grounding.csv", "Grounded answers", grounding_line),
    ("faults.csv", "Faults", faults_line),
]


def build_section(results: Path, link_base: Path) -> str:
    """The Markdown section; links are relative to ``link_base`` (the README's folder)."""
    prefix = Path(os.path.relpath(results, link_base)).as_posix()

    def link(name: str) -> str:
        return f"{prefix}/{name}" if prefix != "." else name

    where = "this folder" if prefix == "." else f"[{prefix}]({prefix}/)"
    lines = [
        f"_Written by `python -m bench report` from the tables in {where}; do not edit by "
        f"hand._ Machine: {machine(results)}. "
        "Speed ratios are ragline ÷ peer measured in the same run (>1: ragline faster), "
        'median (min-max) over repeats; "behind" and "ahead" follow from those numbers.',
        "",
    ]
    for filename, label, line in SECTIONS:
        if not (results / filename).exists():
            lines.append(f"- **{label}** not measured yet ({link(filename)} missing).")
            continue
        try:
            lines.append(line(results, link))
        except (KeyError, ValueError, StopIteration) as exc:
            lines.append(f"- **{label}** table not readable ({exc!r}): see {link(filename)}.")
    if (results / "scifact" / "eval.md").exists():
        lines += tuning_lines(results, link)
    else:
        lines.append(f"- **Tuning** not measured yet ({link('scifact/eval.md')} missing).")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--readme", type=Path, default=PROJECT_ROOT / "README.md")
    parser.add_argument("--no-readme", action="store_true", help="write summary.md only")
    args = parser.parse_args(argv)
    results = args.results.resolve()

    summary = results / "summary.md"
    summary.write_text("# Benchmark results\n\n" + build_section(results, results))
    print(f"wrote {summary}")
    if args.no_readme:
        return 0
    readme = args.readme.resolve()
    section = build_section(results, readme.parent)
    try:
        updated = replace_between_markers(readme.read_text(), section)
    except MarkerError as exc:
        print(f"README not updated: {readme}: {exc}", file=sys.stderr)
        return 2
    readme.write_text(updated)
    print(f"updated the results section of {readme}")
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
