"""PNG plots of a comparison: a win-rate heatmap per metric and a consistency bar chart (like the paper's figures).

matplotlib is imported inside the functions and used through its object-oriented API with the Agg canvas, so the
caller's pyplot backend is never touched. Files are written atomically.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Sequence

from alarm_pl.eval.records import write_bytes_atomic
from alarm_pl.eval.winrate import LENGTH

CONSISTENCY_PLOT = "consistency.png"


def plot_file_name(metric: str) -> str:
    """``winrate_<metric>.png`` with characters unsafe in a file name replaced by ``_``."""
    return f"winrate_{re.sub(r'[^A-Za-z0-9_.-]+', '_', metric)}.png"


def _save(figure, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    write_bytes_atomic(path, lambda handle: figure.savefig(handle, format="png", dpi=120, bbox_inches="tight"))


def plot_win_rates(path: Path, title: str, systems: Sequence[str], pairs: dict) -> None:
    """Heatmap of the row system's win rate (%) against the column system; the diagonal is blank.

    Args:
        path: the PNG file.
        title: the figure title (metric and direction).
        systems: row/column order.
        pairs: ``a -> b -> {"win_rate": fraction or None, ...}`` as in ``results.json``.
    """
    import numpy as np
    from matplotlib.figure import Figure

    rates = np.full((len(systems), len(systems)), np.nan)  # (S, S)
    for i, a in enumerate(systems):
        for j, b in enumerate(systems):
            rate: Optional[float] = pairs[a][b]["win_rate"] if a != b else None
            rates[i, j] = np.nan if rate is None else 100 * rate
    size = 1.2 + 0.9 * len(systems)
    figure = Figure(figsize=(size + 1.5, size))
    axes = figure.add_subplot()
    image = axes.imshow(np.ma.masked_invalid(rates), cmap="RdBu", vmin=0, vmax=100)
    for i in range(len(systems)):
        for j in range(len(systems)):
            if not np.isnan(rates[i, j]):
                dark = abs(rates[i, j] - 50) > 30  # the colormap's ends are dark: write white there
                axes.text(
                    j, i, f"{rates[i, j]:.1f}", ha="center", va="center", fontsize=9, color="white" if dark else "black"
                )
    axes.set_xticks(range(len(systems)), labels=list(systems), rotation=30, ha="right")
    axes.set_yticks(range(len(systems)), labels=list(systems))
    axes.set_xlabel("against")
    axes.set_ylabel("system")
    axes.set_title(title)
    figure.colorbar(image, ax=axes, label="win rate (%)")
    _save(figure, path)


def plot_consistency(path: Path, consistency: dict, reference: str = LENGTH) -> None:
    """Write ``consistency_figure`` as a PNG (see there)."""
    _save(consistency_figure(consistency, reference), path)


def consistency_figure(consistency: dict, reference: str = LENGTH):
    """Bar chart of each metric's inconsistency (%) with the holistic reward, lowest first.

    The most consistent aspect (the one PAPER.md §1 would select) is green; ``reference`` (length, shown for
    comparison as in the paper's figures, never selected) is hatched; a legend says so.

    Args:
        consistency: ``metric -> {"inconsistency": fraction or None, ...}`` as in ``results.json``.
        reference: the metric drawn as a reference rather than a candidate.

    Returns:
        The matplotlib ``Figure``.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    defined = sorted(
        ((m, 100 * c["inconsistency"]) for m, c in consistency.items() if c["inconsistency"] is not None),
        key=lambda item: item[1],
    )
    names, values = [m for m, _ in defined], [v for _, v in defined]
    selected = next((m for m in names if m != reference), None)
    figure = Figure(figsize=(1.5 + 1.1 * max(len(defined), 1), 3.5))
    axes = figure.add_subplot()
    bars = axes.bar(
        names,
        values,
        color=["tab:green" if m == selected else "tab:gray" for m in names],
        hatch=["//" if m == reference else "" for m in names],
        edgecolor="black",
    )
    axes.bar_label(bars, fmt="%.1f")
    axes.set_ylabel("inconsistency with H (%)")
    axes.set_ylim(0, max(values + [50.0]) * 1.35)  # head room for the legend
    axes.set_title("Inconsistency with the holistic reward")
    legend = [
        Patch(facecolor="tab:green", edgecolor="black", label="most consistent aspect (would be selected)"),
        Patch(facecolor="tab:gray", edgecolor="black", label="other aspects"),
    ]
    if reference in names:
        legend.append(
            Patch(facecolor="tab:gray", edgecolor="black", hatch="//", label=f"{reference} (reference, never selected)")
        )
    axes.legend(handles=legend, loc="upper left", fontsize=8)
    return figure
