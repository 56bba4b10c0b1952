"""What every report figure shares: the design (each arm's colour, line style and panel column from the
axes it varies in), one colour per arm in arm order, and the helpers that make, lay out and save a
figure. Figures are `matplotlib.figure.Figure` objects on an Agg canvas, never pyplot, so a report
changes no global state and opens no window; PNG for the README, PDF (reproducible bytes) for papers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .labels import DPI, axis_name, axis_value_label
from .load import ReportData


@dataclass
class Plot:
    name: str  # file stem under figures/
    title: str
    caption: str


# Colour-blind safe and dark enough for print: seaborn's colorblind palette without its light pink,
# grey, yellow and sky blue, then its dark palette.
PRINT_COLOURS = [sns.color_palette("colorblind")[i] for i in (0, 1, 2, 3, 4, 5)] + sns.color_palette(
    "dark", 10
)


DASHES = [(1, 0), (4, 2), (1, 1.5), (3, 1, 1, 1)]  # solid, dashed, dotted, dash-dot


def arm_palette(arms: list[str]) -> dict[str, Any]:
    """One colour per arm, in arm order; every colour readable on white and in print."""
    colours = PRINT_COLOURS if len(arms) <= len(PRINT_COLOURS) else sns.color_palette("husl", len(arms))
    return dict(zip(arms, colours))


def design_roles(data: ReportData) -> dict[str, tuple[str, ...]]:
    """How a figure lays out the varying axes: colour for the first, line style for the second, a
    column of panels per value of the third, or per combination of the third and later ones, so that
    no two arms ever share a line (a fourth axis once did, and its arms were averaged together)."""
    varying = tuple(data.varying)
    return {"hue": varying[:1], "style": varying[1:2], "col": varying[2:]}


@dataclass
class Design:
    """One figure's layout of its arms: each arm's colour (hue), line style and panel column, as value
    labels of the axes `design_roles` gave each role, in arm order (False before True, small before large)."""

    arms: list[str]
    roles: dict[str, tuple[str, ...]]
    labels: dict[str, dict[str, str]]  # arm -> role -> value label ("all" for a role with no axis)
    order: dict[str, list[str]]  # role -> its value labels in arm order

    @classmethod
    def of(cls, data: ReportData, arms: list[str], roles: dict[str, tuple[str, ...]] | None = None) -> Design:
        roles = design_roles(data) if roles is None else roles
        labels = {
            arm: {
                role: " · ".join(axis_value_label(a, data.arm_axes[arm][a]) for a in axes) or "all"
                for role, axes in roles.items()
            }
            for arm in arms
        }
        order = {role: list(dict.fromkeys(labels[arm][role] for arm in arms)) for role in roles}
        return cls(arms, roles, labels, order)

    @property
    def palette(self) -> dict[str, Any]:
        """Hue value -> colour."""
        return {v: PRINT_COLOURS[i % len(PRINT_COLOURS)] for i, v in enumerate(self.order["hue"])}

    @property
    def dash_styles(self) -> list[tuple[float, ...]]:
        """One dash pattern per style value, in order."""
        return [DASHES[i % len(DASHES)] for i, _ in enumerate(self.order["style"])]

    def colour(self, arm: str) -> Any:
        return self.palette[self.labels[arm]["hue"]]

    def dashes(self, arm: str) -> tuple[float, ...]:
        return self.dash_styles[self.order["style"].index(self.labels[arm]["style"])]

    def column(self, col: str) -> list[str]:
        return [arm for arm in self.arms if self.labels[arm]["col"] == col]

    def legend(self, fig: Figure) -> None:
        """Colours, then line styles, under the plot (each value once: the design, not the arms)."""
        styles = self.order["style"] if self.roles["style"] else []
        handles = [Line2D([], [], color=colour, linewidth=2.5) for colour in self.palette.values()]
        handles += [
            Line2D([], [], color="0.2", dashes=d, linewidth=1.5) for d in self.dash_styles[: len(styles)]
        ]
        legend(fig, handles, self.order["hue"] + styles, max_cols=4)

    def caption(self) -> str:
        """`colour: source order, line style: decoder, columns: teacher forcing`."""
        roles = (("hue", "colour"), ("style", "line style"), ("col", "columns"))
        return (
            ", ".join(f"{what}: {self.names(role)}" for role, what in roles if self.roles[role]) or "one arm"
        )

    def names(self, role: str) -> str:
        return " × ".join(axis_name(a) for a in self.roles[role])

    def suptitle(self, title: str) -> str:
        return title + (f" (columns: {self.names('col')})" if self.roles["col"] else "")


def figure(width: float, height: float, ncols: int = 1, nrows: int = 1):
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False).ravel()


def save(fig: Figure, folder: Path, name: str) -> None:
    fig.savefig(folder / f"{name}.png", dpi=DPI)
    fig.savefig(folder / f"{name}.pdf", metadata={"CreationDate": None})  # same records, same bytes


def legend(fig: Figure, handles: list, labels: list[str], max_cols: int) -> None:
    """A legend under the plot in up to `max_cols` columns, fewer when long labels would run past the
    figure's edges (6 Multi30k arm names in 3 columns did)."""
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]  # Agg's, the backend set for reports
    for ncol in range(min(len(labels), max_cols), 0, -1):
        legend = fig.legend(handles, labels, loc="outside lower center", ncol=ncol, frameon=False)
        if ncol == 1 or legend.get_window_extent(renderer).width <= 0.98 * fig.bbox.width:
            return
        legend.remove()


def present(data: ReportData, df: pd.DataFrame) -> list[str]:
    return [a for a in data.arms if a in set(df["arm"])]


# ------------------------------------------------------------------------------------------ plots
def log_tick(value: float, _pos: Any) -> str:
    """Plain 1, 2, 3, 5, 10, 20 on a log axis (not 2x10^0), leaving the crowded 4, 6-9 unlabelled."""
    if value <= 0:
        return ""
    mantissa = round(value / 10 ** math.floor(math.log10(value)), 6)
    return f"{value:g}" if mantissa in (1, 2, 3, 5) else ""


def share_y(axes: np.ndarray) -> None:
    """One y range for a row of panels, over every panel's data: sharing alone would take the first
    panel's range and cut off a panel that goes higher (Peeky's validation BLEU did)."""
    lows, highs = zip(*(ax.get_ylim() for ax in axes))
    for ax in axes[1:]:
        ax.sharey(axes[0])
    axes[0].set_ylim(min(lows), max(highs))


def readable_ticks(ax: Any) -> None:
    """Slant the x tick labels when, level, any two would touch (long bucket names such as 1500–2000)."""
    renderer = ax.figure.canvas.get_renderer()
    boxes = sorted(
        (t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()), key=lambda b: b.x0
    )
    if any(left.x1 + 2 > right.x0 for left, right in zip(boxes, boxes[1:])):
        labels = [
            t.get_text().replace("\n", " ") for t in ax.get_xticklabels()
        ]  # one line reads better slanted
        ax.set_xticks(ax.get_xticks(), labels, rotation=30, ha="right", rotation_mode="anchor")


def panel_width(ncols: int, nticks: int) -> float:
    """Figure width for `ncols` panels of `nticks` categories: wide enough that their labels do not touch."""
    panel = max(4.6, 0.62 * nticks + 0.4)
    return max(7.0, panel + 0.6) if ncols == 1 else panel * ncols + 0.6
