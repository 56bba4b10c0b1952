"""Report figures: seaborn on matplotlib's Agg canvas, each saved as PNG (README) and PDF (paper).

Arms keep one order and one colour in every figure: `arm_palette` is built once from the arm order
and every plot takes its colours and legend order from it. Figures are `matplotlib.figure.Figure`
objects on an Agg canvas, never pyplot, so a report changes no global state and opens no window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, MaxNLocator

from . import metrics as M
from .errors import S2SError
from .report_data import ReportData, word_f_rows
from .report_labels import PRIMARY, axis_name, axis_value_label, metric_label, metric_phrase

TF_AXIS = "train.teacher_forcing_ratio"
_ANALYSIS_METRIC = {"bleu": "BLEU", "exact_match": "exact match"}  # analysis.json "metric"


@dataclass
class Plot:
    name: str  # file stem under figures/
    title: str
    caption: str


# Colour-blind safe and dark enough for print: seaborn's colorblind palette without its light pink,
# grey, yellow and sky blue, then its dark palette.
PRINT_COLOURS = [sns.color_palette("colorblind")[i] for i in (0, 1, 2, 3, 4, 5)] + sns.color_palette("dark", 10)
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
            }  # fmt: skip
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
        handles += [Line2D([], [], color="0.2", dashes=d, linewidth=1.5) for d in self.dash_styles[: len(styles)]]
        _legend(fig, handles, self.order["hue"] + styles, max_cols=4)

    def caption(self) -> str:
        """`colour: source order, line style: decoder, columns: teacher forcing`."""
        roles = (("hue", "colour"), ("style", "line style"), ("col", "columns"))
        return ", ".join(f"{what}: {self.names(role)}" for role, what in roles if self.roles[role]) or "one arm"

    def names(self, role: str) -> str:
        return " × ".join(axis_name(a) for a in self.roles[role])

    def suptitle(self, title: str) -> str:
        return title + (f" (columns: {self.names('col')})" if self.roles["col"] else "")


def _figure(width: float, height: float, ncols: int = 1, nrows: int = 1):
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False).ravel()


def _save(fig: Figure, folder: Path, name: str) -> None:
    fig.savefig(folder / f"{name}.png", dpi=150)
    fig.savefig(folder / f"{name}.pdf", metadata={"CreationDate": None})  # same records, same bytes


def _legend(fig: Figure, handles: list, labels: list[str], max_cols: int) -> None:
    """A legend under the plot in up to `max_cols` columns, fewer when long labels would run past the
    figure's edges (6 Multi30k arm names in 3 columns did)."""
    renderer = fig.canvas.get_renderer()
    for ncol in range(min(len(labels), max_cols), 0, -1):
        legend = fig.legend(handles, labels, loc="outside lower center", ncol=ncol, frameon=False)
        if ncol == 1 or legend.get_window_extent(renderer).width <= 0.98 * fig.bbox.width:
            return
        legend.remove()


def _present(data: ReportData, df: pd.DataFrame) -> list[str]:
    return [a for a in data.arms if a in set(df["arm"])]


# ------------------------------------------------------------------------------------------ plots
def _log_tick(value: float, _pos: Any) -> str:
    """Plain 1, 2, 3, 5, 10, 20 on a log axis (not 2x10^0), leaving the crowded 4, 6-9 unlabelled."""
    if value <= 0:
        return ""
    mantissa = round(value / 10 ** math.floor(math.log10(value)), 6)
    return f"{value:g}" if mantissa in (1, 2, 3, 5) else ""


def _share_y(axes: np.ndarray) -> None:
    """One y range for a row of panels, over every panel's data: sharing alone would take the first
    panel's range and cut off a panel that goes higher (Peeky's validation BLEU did)."""
    lows, highs = zip(*(ax.get_ylim() for ax in axes))
    for ax in axes[1:]:
        ax.sharey(axes[0])
    axes[0].set_ylim(min(lows), max(highs))


def _readable_ticks(ax: Any) -> None:
    """Slant the x tick labels when, level, any two would touch (long bucket names such as 1500–2000)."""
    renderer = ax.figure.canvas.get_renderer()
    boxes = sorted((t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()), key=lambda b: b.x0)
    if any(left.x1 + 2 > right.x0 for left, right in zip(boxes, boxes[1:])):
        labels = [t.get_text().replace("\n", " ") for t in ax.get_xticklabels()]  # one line reads better slanted
        ax.set_xticks(ax.get_xticks(), labels, rotation=30, ha="right", rotation_mode="anchor")


def _panel_width(ncols: int, nticks: int) -> float:
    """Figure width for `ncols` panels of `nticks` categories: wide enough that their labels do not touch."""
    panel = max(4.6, 0.62 * nticks + 0.4)
    return max(7.0, panel + 0.6) if ncols == 1 else panel * ncols + 0.6


def val_curves(data: ReportData, folder: Path) -> Plot | None:
    """Validation perplexity and task metric per epoch, laid out by the design: a row per metric, a column
    per value of the third varying axis, colour for the first, line style for the second."""
    task_metric = M.VAL_BLEU if data.task == "translation" else M.VAL_EXACT_MATCH
    frames = []
    for run in data.completed.itertuples():
        h = run.history
        if isinstance(h, pd.DataFrame) and "epoch" in h and M.VAL_PPL in h:
            frames.append(h[[c for c in ("epoch", M.VAL_PPL, task_metric) if c in h]].assign(arm=str(run.arm)))
    if not frames:
        return None
    df = pd.concat(frames, ignore_index=True)
    df["epoch"] = df["epoch"] + 1  # history counts from 0; logs and readers count epochs from 1
    design = Design.of(data, _present(data, df))
    for role in design.roles:
        df[role] = [design.labels[arm][role] for arm in df["arm"]]
    metrics = [m for m in (M.VAL_PPL, task_metric) if m in df and df[m].notna().any()]
    cols = design.order["col"]
    fig, panels = _figure(4.6 * len(cols) + 0.6, 3.4 * len(metrics), ncols=len(cols), nrows=len(metrics))
    panels = panels.reshape(len(metrics), len(cols))
    for r, metric in enumerate(metrics):
        for c, col_value in enumerate(cols):
            ax, sub = panels[r, c], df[(df["col"] == col_value)].dropna(subset=[metric])
            sns.lineplot(sub, x="epoch", y=metric, hue="hue", hue_order=design.order["hue"], palette=design.palette,
                         style="style", style_order=design.order["style"], dashes=design.dash_styles, errorbar="sd",
                         marker="o", markersize=4, legend=False, ax=ax)  # fmt: skip
            ax.set(xlabel="Epoch" if r == len(metrics) - 1 else "", ylabel=metric_label(metric) if c == 0 else "")
            if design.roles["col"] and r == 0:
                ax.set_title(col_value)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if metric != M.VAL_PPL and df[metric].min() >= 0:
                ax.set_ylim(bottom=0)  # a score of 0 everywhere drew an axis from -0.05
            if metric == M.VAL_PPL and sub[metric].min() > 0 and df[metric].max() / df[metric].min() > 10:
                ax.set_yscale("log")  # perplexity falls by orders of magnitude; linear hides the late epochs
                ax.yaxis.set_major_formatter(FuncFormatter(_log_tick))
                ax.yaxis.set_minor_formatter(FuncFormatter(_log_tick))
        if metric == M.VAL_PPL:
            panels[r, 0].set_ylabel(f"{metric_label(metric)} (log scale)" if panels[r, 0].get_yscale() == "log"
                                    else metric_label(metric))  # fmt: skip
        _share_y(panels[r])
    design.legend(fig)
    fig.suptitle(design.suptitle("Validation curves"))
    _save(fig, folder, "val_curves")
    return Plot(
        "val_curves",
        "Validation curves by design",
        f"Validation perplexity and task metric per epoch, mean over seeds with a band of ± 1 sd; {design.caption()}.",
    )


def test_scores(data: ReportData, folder: Path) -> Plot | None:
    metric = PRIMARY[data.task]
    df = data.completed[["arm", "seed", metric]].dropna(subset=[metric]).astype({"arm": str})
    if df.empty:
        return None
    arms = _present(data, df)
    design = Design.of(data, arms)
    colours = {arm: design.colour(arm) for arm in arms}  # the colour of the arm's level, as in every figure
    fig, (ax,) = _figure(7.0, 1.6 + 0.5 * len(arms))
    sns.pointplot(
        df,
        x=metric,
        y="arm",
        order=arms,
        hue="arm",
        hue_order=arms,
        palette=colours,
        legend=False,
        ax=ax,
        errorbar="sd",
        markers="D",
        markersize=8,
        linestyle="none",
        capsize=0.3,
    )
    # The seeds as dots, jittered from a seeded generator: seaborn's stripplot jitters from numpy's global
    # one, so the same records drew a different figure each time.
    jitter = np.random.default_rng(0).uniform(-0.12, 0.12, len(df))
    rows = df["arm"].map({arm: i for i, arm in enumerate(arms)}) + jitter
    ax.scatter(df[metric], rows, color=[colours[a] for a in df["arm"]], alpha=0.5, s=36, linewidths=0, zorder=3)
    ax.set(xlabel=f"Test {metric_phrase(metric)}", ylabel="", title=f"Test {metric_phrase(metric)} per arm")
    if df[metric].min() >= 0:
        ax.set_xlim(left=0)
    for tick, arm in zip(ax.get_yticklabels(), arms):
        tick.set_color(colours[arm])
    name = f"test_{metric.split('/')[1]}"
    _save(fig, folder, name)
    return Plot(
        name, f"Test {metric_phrase(metric)} per arm", "Dots: one per seed; diamonds and bars: mean ± 1 sd over seeds."
    )


def _bucket_label(lo: float, hi: float, integer: bool) -> str:
    """Buckets are (lo, hi] (analysis.buckets). Lengths are whole tokens, so (5, 10] reads `6–10` and
    (5, 6] reads `6`; a last bound of 1000 tokens or rank 1e6 is a sentinel: (35, 1000] reads `36+`."""
    first = lo + 1 if integer else lo
    if hi >= 1000 and hi >= 10 * max(lo, 1):
        return f"{first:g}+" if integer else f">{lo:g}"
    if integer:
        return f"{hi:g}" if hi - 1 <= lo else f"{first:g}–{hi:g}"
    return f"{lo:g}–{hi:g}"


def _design_points(
    data: ReportData, df: pd.DataFrame, order: list[str], ticks: list[str], xlabel: str, ylabel: str
) -> tuple[Figure, Design]:
    """`df` (arm, bucket, y; a row per run and bucket) as one line per arm over the buckets: mean ± 1 sd
    over seeds, laid out by the design (colour, line style, a panel per column value), arms in a panel
    dodged apart so their error bars do not overprint."""
    design = Design.of(data, _present(data, df))
    cols = design.order["col"]
    fig, axes = _figure(_panel_width(len(cols), len(order)), 4.4, ncols=len(cols))
    position = {bucket: i for i, bucket in enumerate(order)}
    for c, (ax, col) in enumerate(zip(axes, cols)):
        arms = design.column(col)
        step = min(0.08, 0.5 / len(arms))
        for k, arm in enumerate(arms):
            stats = df[df["arm"] == arm].groupby("bucket")["y"].agg(["mean", "std"])
            stats = stats.reindex([b for b in order if b in stats.index])
            xs = np.array([position[b] for b in stats.index]) + (k - (len(arms) - 1) / 2) * step
            colour = design.colour(arm)
            ax.plot(xs, stats["mean"], color=colour, dashes=design.dashes(arm), linewidth=2, marker="o", markersize=5)
            if stats["std"].notna().any():
                ax.errorbar(xs, stats["mean"], yerr=stats["std"].fillna(0), fmt="none", ecolor=colour,
                            elinewidth=1.2, capsize=3)  # fmt: skip
        ax.set_xticks(range(len(order)), ticks)
        ax.set(xlabel=xlabel, ylabel="" if c else ylabel, title=col if design.roles["col"] else "")
        _readable_ticks(ax)
    _share_y(axes)
    design.legend(fig)
    return fig, design


def bucket_plot(data: ReportData, folder: Path, key: str) -> Plot | None:
    """Paper Fig. 3: the test metric by source length (left) or by average word-frequency rank (right)."""
    lo_key, hi_key = ("min_len", "max_len") if key == "by_length" else ("min_rank", "max_rank")
    rows, names = [], set()
    for run in data.completed.itertuples():
        analysis = run.analysis if isinstance(run.analysis, dict) else {}
        names.add(analysis.get("metric"))
        for b in analysis.get(key) or []:
            if b.get("n") and b.get("score") is not None:
                rows.append({"arm": str(run.arm), "lo": b[lo_key], "hi": b[hi_key], "n": b["n"], "y": b["score"]})
    if not rows:
        return None
    df = pd.DataFrame(rows)
    buckets = df.groupby(["lo", "hi"])["n"].median().sort_index()
    if len(buckets) < 2:  # one bucket compares nothing across lengths: the per-arm figure says it all
        return None
    integer = key == "by_length"
    df["bucket"] = [_bucket_label(lo, hi, integer) for lo, hi in zip(df["lo"], df["hi"])]
    order = [_bucket_label(lo, hi, integer) for lo, hi in buckets.index]
    metric = " / ".join(sorted(_ANALYSIS_METRIC.get(n, str(n)) for n in names if n)) or "Score"
    what = "source sentence length" if key == "by_length" else "average word-frequency rank"
    xlabel = "Source sentence length (tokens)" if integer else "Average word-frequency rank (0 = most frequent word)"
    ticks = [f"{b}\n(n={int(n)})" for b, n in zip(order, buckets)]
    fig, design = _design_points(data, df, order, ticks, xlabel, f"Test {metric}")
    fig.suptitle(design.suptitle(f"Test {metric} by {what}"))
    _save(fig, folder, key)
    return Plot(
        key,
        f"Test {metric} by {what}",
        f"Test sentences bucketed by {what} (n: sentences per bucket); mean over seeds ± 1 sd; {design.caption()}.",
    )


def teacher_forcing(data: ReportData, folder: Path) -> Plot | None:
    """The test metric against the teacher forcing ratio: one line per combination of the other axes,
    colour for the first of them, line style for the second, a panel per value of the rest; dots are
    seeds, diamonds means."""
    if TF_AXIS not in data.varying:
        return None
    metric = PRIMARY[data.task]
    df = data.completed[["arm", TF_AXIS, metric]].dropna().astype({"arm": str, TF_AXIS: float})
    if df.empty:
        return None
    others = tuple(a for a in data.varying if a != TF_AXIS)
    design = Design.of(data, _present(data, df), {"hue": others[:1], "style": others[1:2], "col": others[2:]})
    df["line"] = [(design.labels[a]["hue"], design.labels[a]["style"]) for a in df["arm"]]
    cols = design.order["col"]
    fig, axes = _figure(6.4 if len(cols) == 1 else 4.6 * len(cols) + 0.6, 4.4, ncols=len(cols))
    for c, (ax, col) in enumerate(zip(axes, cols)):
        arms = design.column(col)
        sub = df[df["arm"].isin(arms)]
        for _, g in sub.groupby("line", sort=False):  # the arms of one line differ only in the ratio
            arm = g["arm"].iloc[0]
            means = g.groupby(TF_AXIS)[metric].mean().sort_index()
            ax.plot(means.index, means.values, color=design.colour(arm), dashes=design.dashes(arm), linewidth=2,
                    marker="D", markersize=7)  # fmt: skip
            ax.scatter(g[TF_AXIS], g[metric], color=design.colour(arm), s=16, alpha=0.45, zorder=3)
        ax.set(xlabel="Teacher forcing ratio during training", ylabel="" if c else f"Test {metric_phrase(metric)}",
               title=col if design.roles["col"] else "")  # fmt: skip
        ax.set_xticks(sorted(df[TF_AXIS].unique()))
    _share_y(axes)
    fig.suptitle(design.suptitle(f"Test {metric_phrase(metric)} vs teacher forcing ratio"))
    design.legend(fig)
    _save(fig, folder, "teacher_forcing")
    return Plot(
        "teacher_forcing",
        "Teacher forcing ratio",
        f"One line per combination of the other axes ({design.caption()}); diamonds: mean over seeds, dots: "
        "seeds. A flat line: the ratio does not matter for that combination.",
    )


def _annotate(ax, points: np.ndarray, phrases: list[str]) -> None:
    """Write each phrase by its point, inward (left of points in the right half), never over another label.

    Sentences with the same meaning land close together (that is the figure's point), so labels would
    overprint: each label, top to bottom, moves down a line at a time (with a leader line to its point)
    until its box clears every label already placed. Boxes are measured on the drawn figure; labels stay
    out of the layout so that placing them does not move the axes they were measured in.
    """
    ax.figure.canvas.draw()  # the layout the labels are measured in
    renderer = ax.figure.canvas.get_renderer()
    unit_x = (points[:, 0] - points[:, 0].min()) / (np.ptp(points[:, 0]) + 1e-12)

    def put(i: int, shift: int) -> tuple[Any, Any]:
        right_half = unit_x[i] > 0.5
        label = ax.annotate(
            phrases[i],
            points[i],
            xytext=(-5 if right_half else 5, 3 - 10 * shift),
            textcoords="offset points",
            ha="right" if right_half else "left",
            va="center",
            fontsize=7,
            arrowprops=dict(arrowstyle="-", color="0.6", linewidth=0.5) if shift else None,
        )
        label.set_in_layout(False)
        label.update_positions(renderer)
        return label, Text.get_window_extent(label, renderer)  # the words only, not the leader line

    placed: list[Any] = []
    for i in np.argsort(-points[:, 1], kind="stable"):
        for shift in range(12):  # down a line at a time
            label, box = put(i, shift)
            if not any(box.overlaps(other) for other in placed):
                break
            label.remove()
        else:  # nothing within 12 lines clears: where it was first
            label, box = put(i, 0)
        placed.append(box)


def representations(data: ReportData, folder: Path) -> Plot | None:
    """Paper Fig. 2: 2-D PCA of the encoder's final states for a few phrases, one panel per arm."""
    chosen = []
    for arm in data.arms:
        runs = data.completed[(data.completed["arm"] == arm) & data.completed["representations"].notna()]
        if len(runs):
            run = runs.iloc[0]
            rep = run["representations"]
            vectors = np.asarray(rep.get("vectors", []), dtype=float) if isinstance(rep, dict) else np.empty(0)
            phrases = rep.get("phrases", []) if isinstance(rep, dict) else []
            if vectors.ndim != 2 or len(vectors) != len(phrases):
                raise S2SError(f"{run['run_dir']}/representations.json needs 'phrases' and one vector per phrase")
            if len(vectors) >= 3 and vectors.shape[1] >= 2:
                chosen.append((arm, run["seed"], phrases, vectors))
    if not chosen:
        return None
    ncols = min(len(chosen), 2)
    nrows = math.ceil(len(chosen) / ncols)
    fig, axes = _figure(6.5 * ncols, 5.0 * nrows, ncols=ncols, nrows=nrows)
    labels = []  # (axes, points, phrases), annotated once every panel has its final layout
    for ax, (arm, seed, phrases, vectors) in zip(axes, chosen):
        centred = vectors - vectors.mean(axis=0)
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        points = centred @ vt[:2].T  # [n_phrases, 2]
        explained = s**2 / np.sum(s**2)
        ax.scatter(points[:, 0], points[:, 1], color=data.palette[arm], s=30)
        labels.append((ax, points, phrases))
        ax.set(
            title=f"{arm} (seed {seed})",
            xlabel=f"PC1 ({explained[0]:.0%} of variance)",
            ylabel=f"PC2 ({explained[1]:.0%})",
        )
        ax.title.set_color(data.palette[arm])
        ax.margins(x=0.08, y=0.15)
    for ax in axes[len(chosen) :]:
        ax.remove()
    fig.suptitle("PCA of sentence representations (final encoder state)")
    for ax, points, phrases in labels:
        _annotate(ax, points, phrases)
    _save(fig, folder, "representations")
    return Plot(
        "representations",
        "Sentence representations",
        "Two-dimensional PCA projection of the LSTM's final hidden state for each phrase "
        "(Sutskever et al., 2014, Fig. 2), one run per arm.",
    )


def word_f(data: ReportData, folder: Path) -> Plot | None:
    """compare-mt's word accuracy analysis: F-measure of test words by their training frequency, per arm."""
    df = word_f_rows(data)
    if df.empty:
        return None
    order = list(dict.fromkeys(df.sort_values("max_freq")["bucket"]))
    xlabel = "Frequency of the word in the training targets"
    fig, design = _design_points(data, df.rename(columns={"f": "y"}), order, order, xlabel, "Word F-measure")
    fig.axes[0].set_ylim(0, 1)
    fig.suptitle(design.suptitle("Word F-measure by training frequency"))
    _save(fig, folder, "word_f")
    why = "compare-mt's word accuracy analysis: rare words are where a fixed vocabulary and a small model fail "
    why += "first; mean ± 1 sd over seeds"
    return Plot("word_f", "Word F-measure by training frequency", f"{why}; {design.caption()}.")


def build_figures(data: ReportData, folder: Path) -> dict[str, Plot]:
    folder.mkdir(parents=True, exist_ok=True)
    for old in [*folder.glob("*.png"), *folder.glob("*.pdf")]:
        old.unlink()  # a figure that no longer applies must not survive from an earlier report
    with matplotlib.rc_context(sns.axes_style("whitegrid")):
        plots = [
            test_scores(data, folder),
            val_curves(data, folder),
            bucket_plot(data, folder, "by_length"),
            bucket_plot(data, folder, "by_frequency"),
            word_f(data, folder),
            teacher_forcing(data, folder),
            representations(data, folder),
        ]
    return {p.name: p for p in plots if p is not None}
