"""Shared helpers for benchmarks: environment header, Markdown/CSV tables, plots, and the
one way every figure is written: median (min-max) of repeated runs, speed as a ratio to
the peer measured in the same run."""

from __future__ import annotations

import os
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ragline.envinfo import environment  # noqa: F401  (re-exported for benchmarks)
from ragline.tables import write_markdown_and_csv

# `python -m bench --quick` points this elsewhere so that quick figures never overwrite
# the published ones.
RESULTS = Path(
    os.environ.get("RAGLINE_BENCH_RESULTS") or Path(__file__).resolve().parent / "results"
).resolve()

# The shared evaluation data (BEIR, PubMedQA, example-docs), as the tests find it.
_PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("RAGLINE_SHARED_DATA", _PROJECT_ROOT.parent / "shared" / "data"))

_SPREAD = re.compile(
    r"^\s*(-?[\d.]+(?:e-?\d+)?)x?\s*(?:\((-?[\d.]+(?:e-?\d+)?)x?\s*[-\u2013]\s*(-?[\d.]+(?:e-?\d+)?)x?\))?"
)


def spread(values: Sequence[float], digits: int = 2) -> str:
    """Median with min-max, the form every figure is reported in."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    median, low, high = statistics.median(values), min(values), max(values)
    return f"{median:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def parse_spread(text: str) -> tuple[float, float, float]:
    """``"1.23 (1.10-1.40)"`` -> (1.23, 1.10, 1.40); ``"1.23"`` -> (1.23, 1.23, 1.23)."""
    match = _SPREAD.match(str(text))
    if not match:
        raise ValueError(f"not a figure: {text!r}")
    median = float(match.group(1))
    if match.group(2) is None:
        return median, median, median
    return median, float(match.group(2)), float(match.group(3))


def speed_ratios(
    ours: Sequence[float], theirs: Sequence[float], higher_is_faster: bool = True
) -> list[float]:
    """Per-repeat speed ratios ragline ÷ peer (> 1: ragline faster), pairing the runs of
    the same repeat. Rates (docs/s) divide as they are; latencies the other way round."""
    if len(ours) != len(theirs):
        raise ValueError("one figure per repeat on each side")
    if higher_is_faster:
        return [a / b for a, b in zip(ours, theirs, strict=True)]
    return [b / a for a, b in zip(ours, theirs, strict=True)]


def ratio_spread(ratios: Sequence[float]) -> str:
    """Speed ratios as ``1.25x (1.10-1.40)``."""
    if len(ratios) == 1:
        return f"{ratios[0]:.2f}x"
    return f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"


def verdict(median: float, low: float, high: float) -> str:
    """Words for a speed ratio (ragline ÷ peer): "ahead" or "behind" by the median, and
    whether the repeats disagree about it."""
    word = "ahead" if median >= 1 else "behind"
    if low <= 1 <= high and low != high:
        return f"{word} at the median, within run-to-run spread"
    return word


def write_table(
    name: str,
    title: str,
    header: Sequence[str],
    rows: Sequence[Sequence[object]],
    notes: Sequence[str],
    footer: Sequence[str] = (),
) -> Path:
    markdown = write_markdown_and_csv(RESULTS / name, title, header, rows, notes, footer)
    print(markdown)
    return RESULTS / f"{name}.md"


# -- plots ------------------------------------------------------------------------------


@dataclass(slots=True)
class Bar:
    label: str
    values: Sequence[float]  # one per repeat: drawn as the median with a min-max whisker
    peer: bool = False


@dataclass(slots=True)
class Panel:
    title: str
    xlabel: str
    bars: Sequence[Bar]
    reference: tuple[str, float] | None = None  # a labelled vertical line (a bound)


def write_plot(name: str, title: str, panels: Sequence[Panel], caption: str = "") -> Path:
    """Horizontal bars (median, min-max whiskers) in one PNG, ``RESULTS/<name>.png``;
    ragline's bars in one colour, peers' in another."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = 1 if len(panels) == 1 else 2
    rows = -(-len(panels) // columns)
    height = max(1.2, max(len(p.bars) for p in panels) * 0.45 + 1.1)
    figure, axes = plt.subplots(
        rows, columns, figsize=(6.5 * columns, height * rows + 0.8), squeeze=False
    )
    for axis, panel in zip(axes.flat, panels, strict=False):
        labels = [bar.label for bar in panel.bars]
        medians = [statistics.median(bar.values) for bar in panel.bars]
        lows = [m - min(bar.values) for m, bar in zip(medians, panel.bars, strict=True)]
        highs = [max(bar.values) - m for m, bar in zip(medians, panel.bars, strict=True)]
        colours = ["#8c8c8c" if bar.peer else "#1f77b4" for bar in panel.bars]
        positions = list(range(len(labels)))[::-1]
        axis.barh(positions, medians, xerr=[lows, highs], color=colours, capsize=3)
        axis.set_yticks(positions, labels, fontsize=8)
        axis.set_xlabel(panel.xlabel, fontsize=8)
        axis.set_title(panel.title, fontsize=9)
        axis.tick_params(axis="x", labelsize=8)
        for y, value, high in zip(positions, medians, highs, strict=True):
            axis.annotate(
                f"{value:.3g}", (value + high, y), xytext=(5, 0), textcoords="offset points",
                va="center", fontsize=7,
            )  # fmt: skip
        if panel.reference is not None:
            label, value = panel.reference
            axis.axvline(value, color="#d62728", linestyle="--", linewidth=1)
            axis.annotate(
                label, (value, positions[0] + 0.45), xytext=(-3, 0), textcoords="offset points",
                ha="right", va="top", fontsize=7, color="#d62728",
            )  # fmt: skip
        axis.set_xlim(0, max([*medians, *([panel.reference[1]] if panel.reference else [])])
                      * 1.18 + max(highs, default=0))  # fmt: skip
    for axis in list(axes.flat)[len(panels) :]:
        axis.set_visible(False)
    figure.suptitle(title, fontsize=10)
    if caption:
        figure.text(0.01, 0.005, caption, fontsize=6, color="#555555", va="bottom")
    figure.tight_layout(rect=(0, 0.03 if caption else 0, 1, 1))
    path = RESULTS / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
