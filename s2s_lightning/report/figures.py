"""Report figures: seaborn on matplotlib's Agg canvas, each saved as PNG (README) and PDF (paper).

Arms keep one order and one colour in every figure: every plot takes its colours, line styles and
legend order from its `Design` (design.py).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, MaxNLocator

from .. import metrics as M
from ..errors import S2SError
from .design import (
    Design,
    Plot,
    arm_palette,
    figure,
    log_tick,
    panel_width,
    present,
    readable_ticks,
    save,
    share_y,
)
from .effect_figures import forest, interactions
from .effects import Effects
from .labels import metric_label, metric_phrase
from .load import ReportData, val_history, word_f_rows

TF_AXIS = "train.teacher_forcing_ratio"
_ANALYSIS_METRIC = {"bleu": "BLEU", "exact_match": "exact match"}  # analysis.json "metric"


def _curve_panel(ax, df: pd.DataFrame, metric: str, col_value: str, design: Design) -> None:
    """One panel of the validation curves: `metric` per epoch for the arms of column `col_value`."""
    sub = df[(df["col"] == col_value)].dropna(subset=[metric])
    sns.lineplot(
        sub,
        x="epoch",
        y=metric,
        hue="hue",
        hue_order=design.order["hue"],
        palette=design.palette,
        style="style",
        style_order=design.order["style"],
        dashes=design.dash_styles,
        errorbar="sd",
        marker="o",
        markersize=4,
        legend=False,
        ax=ax,
    )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if metric != M.VAL_PPL and df[metric].min() >= 0:
        ax.set_ylim(bottom=0)  # a score of 0 everywhere drew an axis from -0.05
    if metric == M.VAL_PPL and sub[metric].min() > 0 and df[metric].max() / df[metric].min() > 10:
        ax.set_yscale("log")  # perplexity falls by orders of magnitude; linear hides the late epochs
        ax.yaxis.set_major_formatter(FuncFormatter(log_tick))
        ax.yaxis.set_minor_formatter(FuncFormatter(log_tick))


def val_curves(data: ReportData, folder: Path) -> Plot | None:
    """Validation perplexity and task metric per epoch, laid out by the design: a row per metric, a column
    per value of the third varying axis, colour for the first, line style for the second."""
    task_metric = data.spec.curve
    df = val_history(data, (task_metric,))
    if df is None:
        return None
    df["epoch"] = df["epoch"] + 1  # history counts from 0; logs and readers count epochs from 1
    design = Design.of(data, present(data, df))
    for role in design.roles:
        df[role] = [design.labels[arm][role] for arm in df["arm"]]
    metrics = [m for m in (M.VAL_PPL, task_metric) if m in df and df[m].notna().any()]
    cols = design.order["col"]
    fig, panels = figure(4.6 * len(cols) + 0.6, 3.4 * len(metrics), ncols=len(cols), nrows=len(metrics))
    panels = panels.reshape(len(metrics), len(cols))
    for r, metric in enumerate(metrics):
        for c, col_value in enumerate(cols):
            _curve_panel(panels[r, c], df, metric, col_value, design)
            panels[r, c].set(
                xlabel="Epoch" if r == len(metrics) - 1 else "", ylabel=metric_label(metric) if c == 0 else ""
            )
            if design.roles["col"] and r == 0:
                panels[r, c].set_title(col_value)
        if metric == M.VAL_PPL:
            panels[r, 0].set_ylabel(
                f"{metric_label(metric)} (log scale)"
                if panels[r, 0].get_yscale() == "log"
                else metric_label(metric)
            )
        share_y(panels[r])
    design.legend(fig)
    fig.suptitle(design.suptitle("Validation curves"))
    save(fig, folder, "val_curves")
    return Plot(
        "val_curves",
        "Validation curves by design",
        "Validation perplexity and task metric per epoch, mean over seeds with a band of ± 1 sd; "
        f"{design.caption()}.",
    )


def test_scores(data: ReportData, folder: Path) -> Plot | None:
    metric = data.spec.primary
    df = data.completed[["arm", "seed", metric]].dropna(subset=[metric]).astype({"arm": str})
    if df.empty:
        return None
    arms = present(data, df)
    design = Design.of(data, arms)
    colours = {arm: design.colour(arm) for arm in arms}  # the colour of the arm's level, as in every figure
    fig, (ax,) = figure(7.0, 1.6 + 0.5 * len(arms))
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
    ax.scatter(
        df[metric], rows, color=[colours[a] for a in df["arm"]], alpha=0.5, s=36, linewidths=0, zorder=3
    )
    ax.set(xlabel=f"Test {metric_phrase(metric)}", ylabel="", title=f"Test {metric_phrase(metric)} per arm")
    if df[metric].min() >= 0:
        ax.set_xlim(left=0)
    for tick, arm in zip(ax.get_yticklabels(), arms):
        tick.set_color(colours[arm])
    name = f"test_{metric.split('/')[1]}"
    save(fig, folder, name)
    return Plot(
        name,
        f"Test {metric_phrase(metric)} per arm",
        "Dots: one per seed; diamonds and bars: mean ± 1 sd over seeds.",
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
    design = Design.of(data, present(data, df))
    cols = design.order["col"]
    fig, axes = figure(panel_width(len(cols), len(order)), 4.4, ncols=len(cols))
    position = {bucket: i for i, bucket in enumerate(order)}
    for c, (ax, col) in enumerate(zip(axes, cols)):
        arms = design.column(col)
        step = min(0.08, 0.5 / len(arms))
        for k, arm in enumerate(arms):
            stats = df[df["arm"] == arm].groupby("bucket")["y"].agg(["mean", "std"])
            stats = stats.reindex([b for b in order if b in stats.index])
            xs = np.array([position[b] for b in stats.index]) + (k - (len(arms) - 1) / 2) * step
            colour = design.colour(arm)
            ax.plot(
                xs,
                stats["mean"],
                color=colour,
                dashes=design.dashes(arm),
                linewidth=2,
                marker="o",
                markersize=5,
            )
            if stats["std"].notna().any():
                ax.errorbar(
                    xs,
                    stats["mean"],
                    yerr=stats["std"].fillna(0),
                    fmt="none",
                    ecolor=colour,
                    elinewidth=1.2,
                    capsize=3,
                )
        ax.set_xticks(range(len(order)), ticks)
        ax.set(xlabel=xlabel, ylabel="" if c else ylabel, title=col if design.roles["col"] else "")
        readable_ticks(ax)
    share_y(axes)
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
                rows.append(
                    {"arm": str(run.arm), "lo": b[lo_key], "hi": b[hi_key], "n": b["n"], "y": b["score"]}
                )
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
    xlabel = (
        "Source sentence length (tokens)"
        if integer
        else "Average word-frequency rank (0 = most frequent word)"
    )
    ticks = [f"{b}\n(n={int(n)})" for b, n in zip(order, buckets)]
    fig, design = _design_points(data, df, order, ticks, xlabel, f"Test {metric}")
    fig.suptitle(design.suptitle(f"Test {metric} by {what}"))
    save(fig, folder, key)
    return Plot(
        key,
        f"Test {metric} by {what}",
        f"Test sentences bucketed by {what} (n: sentences per bucket); mean over seeds ± 1 sd; "
        f"{design.caption()}.",
    )


def teacher_forcing(data: ReportData, folder: Path) -> Plot | None:
    """The test metric against the teacher forcing ratio: one line per combination of the other axes,
    colour for the first of them, line style for the second, a panel per value of the rest; dots are
    seeds, diamonds means."""
    if TF_AXIS not in data.varying:
        return None
    metric = data.spec.primary
    df = data.completed[["arm", TF_AXIS, metric]].dropna().astype({"arm": str, TF_AXIS: float})
    if df.empty:
        return None
    others = tuple(a for a in data.varying if a != TF_AXIS)
    design = Design.of(data, present(data, df), {"hue": others[:1], "style": others[1:2], "col": others[2:]})
    df["line"] = [(design.labels[a]["hue"], design.labels[a]["style"]) for a in df["arm"]]
    cols = design.order["col"]
    fig, axes = figure(6.4 if len(cols) == 1 else 4.6 * len(cols) + 0.6, 4.4, ncols=len(cols))
    for c, (ax, col) in enumerate(zip(axes, cols)):
        arms = design.column(col)
        sub = df[df["arm"].isin(arms)]
        for _, g in sub.groupby("line", sort=False):  # the arms of one line differ only in the ratio
            arm = g["arm"].iloc[0]
            means = g.groupby(TF_AXIS)[metric].mean().sort_index()
            ax.plot(
                means.index,
                means.values,
                color=design.colour(arm),
                dashes=design.dashes(arm),
                linewidth=2,
                marker="D",
                markersize=7,
            )
            ax.scatter(g[TF_AXIS], g[metric], color=design.colour(arm), s=16, alpha=0.45, zorder=3)
        ax.set(
            xlabel="Teacher forcing ratio during training",
            ylabel="" if c else f"Test {metric_phrase(metric)}",
            title=col if design.roles["col"] else "",
        )
        ax.set_xticks(sorted(df[TF_AXIS].unique()))
    share_y(axes)
    fig.suptitle(design.suptitle(f"Test {metric_phrase(metric)} vs teacher forcing ratio"))
    design.legend(fig)
    save(fig, folder, "teacher_forcing")
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
            vectors = (
                np.asarray(rep.get("vectors", []), dtype=float) if isinstance(rep, dict) else np.empty(0)
            )
            phrases = rep.get("phrases", []) if isinstance(rep, dict) else []
            if vectors.ndim != 2 or len(vectors) != len(phrases):
                raise S2SError(
                    f"{run['run_dir']}/representations.json needs 'phrases' and one vector per phrase"
                )
            if len(vectors) >= 3 and vectors.shape[1] >= 2:
                chosen.append((arm, run["seed"], phrases, vectors))
    if not chosen:
        return None
    ncols = min(len(chosen), 2)
    nrows = math.ceil(len(chosen) / ncols)
    fig, axes = figure(6.5 * ncols, 5.0 * nrows, ncols=ncols, nrows=nrows)
    labels = []  # (axes, points, phrases), annotated once every panel has its final layout
    palette = arm_palette(data.arms)
    for ax, (arm, seed, phrases, vectors) in zip(axes, chosen):
        centred = vectors - vectors.mean(axis=0)
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        points = centred @ vt[:2].T  # [n_phrases, 2]
        explained = s**2 / np.sum(s**2)
        ax.scatter(points[:, 0], points[:, 1], color=palette[arm], s=30)
        labels.append((ax, points, phrases))
        ax.set(
            title=f"{arm} (seed {seed})",
            xlabel=f"PC1 ({explained[0]:.0%} of variance)",
            ylabel=f"PC2 ({explained[1]:.0%})",
        )
        ax.title.set_color(palette[arm])
        ax.margins(x=0.08, y=0.15)
    for ax in axes[len(chosen) :]:
        ax.remove()
    fig.suptitle("PCA of sentence representations (final encoder state)")
    for ax, points, phrases in labels:
        _annotate(ax, points, phrases)
    save(fig, folder, "representations")
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
    save(fig, folder, "word_f")
    why = (
        "compare-mt's word accuracy analysis: rare words are where a fixed vocabulary and a small model fail "
    )
    why += "first; mean ± 1 sd over seeds"
    return Plot("word_f", "Word F-measure by training frequency", f"{why}; {design.caption()}.")


def build_figures(data: ReportData, folder: Path, effects: list[Effects] = ()) -> dict[str, Plot]:
    """Every figure of a report; `effects`: the effects of each metric the forest plot shows (the first
    is the report's metric, whose resolved interactions are drawn too)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in [*folder.glob("*.png"), *folder.glob("*.pdf")]:
        old.unlink()  # a figure that no longer applies must not survive from an earlier report
    with matplotlib.rc_context(sns.axes_style("whitegrid")):
        plots = [
            forest(list(effects), folder),
            interactions(effects[0], folder) if effects else None,
            test_scores(data, folder),
            val_curves(data, folder),
            bucket_plot(data, folder, "by_length"),
            bucket_plot(data, folder, "by_frequency"),
            word_f(data, folder),
            teacher_forcing(data, folder),
            representations(data, folder),
        ]
    return {p.name: p for p in plots if p is not None}
