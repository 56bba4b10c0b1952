"""Figures of the effects table: a forest plot of every estimable effect with its 95% interval (one panel
per metric), and interaction plots for the interactions the table resolves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .design import DASHES, Plot, figure, save
from .effects import Effects
from .findings import label
from .labels import axis_name, axis_value_label, metric_label, metric_range

# Greys, not the design's colours: these figures show effects and axis levels, not arms, and a colour
# of the palette would read as the arm it stands for in every other figure.
NEUTRAL = ["0.1", "0.55", "0.35", "0.7"]


def forest(all_effects: list[Effects], folder: Path) -> Plot | None:
    """Each estimable main effect and interaction as a point with its interval; resolved ones filled. A
    metric whose effects have no intervals (one run per arm, no sentences to resample) gets no panel."""
    panels = [(e, [r for r in e.rows if r.estimate is not None and r.kind != "omnibus"]) for e in all_effects]
    panels = [(e, rows) for e, rows in panels if rows and all(r.low is not None for r in rows)]
    if not panels:
        return None
    height = max(2.6, 1.4 + 0.4 * max(len(rows) for _, rows in panels))
    fig, axes = figure(5.2 * len(panels) + 2.6, height, ncols=len(panels))
    for i, (ax, (effects, rows)) in enumerate(zip(axes, panels)):
        y = np.arange(len(rows))[::-1]
        for yi, row in zip(y, rows):
            colour = NEUTRAL[0] if row.kind == "main" else NEUTRAL[1]
            ax.plot([row.low, row.high], [yi, yi], color=colour, linewidth=2)
            face = colour if row.resolved else "white"
            ax.plot([row.estimate], [yi], "o", color=colour, markerfacecolor=face, markersize=7)
        ax.axvline(0, color="0.5", linewidth=1, linestyle=(0, (4, 2)))
        ax.set_yticks(y, [label(r) for r in rows] if i == 0 else [""] * len(rows))
        ax.set(xlabel=f"Δ {metric_label(effects.metric)}", title=metric_label(effects.metric))
        ax.margins(y=0.5 / len(rows) if len(rows) > 1 else 0.5)
    fig.suptitle("Effects of the scientific axes (95% intervals)")
    save(fig, folder, "effects")
    return Plot(
        "effects",
        "Effects with their intervals",
        "Each main effect (black) and two-way interaction (grey) with its 95% interval (seeds and test "
        "sentences; the effects table says how), one "
        "panel per metric; a filled point is resolved (p (Holm) < 0.05 and an interval that excludes 0). "
        "Panels after the first keep the first's row order.",
    )


def interactions(effects: Effects, folder: Path) -> Plot | None:
    """The mean of the metric by one axis of each resolved interaction, one line per level of the other,
    averaged over the remaining axes, with 95% intervals of those means (as the effects')."""
    resolved = [r for r in effects.rows if r.kind == "interaction" and r.resolved]
    pairs = list(dict.fromkeys(r.axes for r in resolved))
    if not pairs:
        return None
    fig, axes = figure(4.6 * len(pairs) + 0.6, 3.6, ncols=len(pairs))
    bounds = metric_range(effects.metric)
    for ax, (a, b) in zip(axes, pairs):
        xs = effects.levels[a]
        for j, level in enumerate(effects.levels[b]):
            means, lows, highs = [], [], []
            for x in xs:
                cells = [c for c in effects.cells if _at(effects, c, {a: x, b: level})]
                found = effects.interval({c: 1 / len(cells) for c in cells}) if cells else None
                point = np.mean([effects.cells[c] for c in cells]) if cells else np.nan
                low, high = (found[1], found[2]) if found else (point, point)
                if bounds:  # an interval stops at the metric's range
                    low, high = max(low, bounds[0]), min(high, bounds[1])
                means.append(point)
                lows.append(point - low)
                highs.append(high - point)
            ax.errorbar(
                range(len(xs)),
                means,
                yerr=[lows, highs],
                color=NEUTRAL[j % len(NEUTRAL)],
                dashes=DASHES[j % len(DASHES)],
                marker="o",
                capsize=3,
                label=axis_value_label(b, level),
            )
        ax.set_xticks(range(len(xs)), [axis_value_label(a, x) for x in xs])
        ax.margins(x=0.12)
        ax.set(
            xlabel=axis_name(a), ylabel=metric_label(effects.metric), title=f"{axis_name(a)} × {axis_name(b)}"
        )
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(handles, labels, title=axis_name(b), frameon=False, fontsize="small")
    fig.suptitle(f"Interactions on {metric_label(effects.metric)} (means over the other axes)")
    save(fig, folder, "interactions")
    return Plot(
        "interactions",
        "Interactions",
        f"Mean {metric_label(effects.metric)} by one axis of each resolved interaction, one line per level "
        "of the other (line style and grey), averaged over the remaining axes and seeds; error bars: 95% "
        "intervals (seeds' t and test-set resampling, as in the effects table), cut at the metric's range.",
    )


def _at(effects: Effects, cell: tuple, values: dict) -> bool:
    return all(cell[effects.factors.index(axis)] == v for axis, v in values.items())
