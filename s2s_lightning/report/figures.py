"""Report figures: seaborn on matplotlib's Agg canvas, each saved as PNG (README) and PDF (paper).

Arms keep one order and one colour in every figure: every plot takes its colours, line styles and
legend order from its `Design` (design.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from .. import metrics as M
from ..errors import S2SError
from .buckets import MIN_BUCKET, TITLES
from .design import (
    Design,
    Plot,
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
from .labels import MIN_FONT_PT, metric_label, metric_phrase, metric_range
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
    spread = (
        "mean over seeds with a band of ± 1 sd"
        if _most_seeds(df) > 1
        else "one seed per arm (no band: no spread to show)"
    )
    return Plot(
        "val_curves",
        "Validation curves by design",
        f"Validation perplexity and task metric per epoch, {spread}; {design.caption()}.",
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
    summary = df.groupby("arm")[metric].agg(["mean", "std", "count"]).reindex(arms)
    bounds = metric_range(metric)
    for i, (arm, row) in enumerate(summary.iterrows()):
        ax.scatter(row["mean"], i, marker="D", s=64, color=colours[arm], zorder=4)
        if row["count"] > 1:
            lo, hi = row["mean"] - row["std"], row["mean"] + row["std"]
            if bounds:
                lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
            ax.errorbar(
                [row["mean"]],
                [i],
                xerr=[[row["mean"] - lo], [hi - row["mean"]]],
                fmt="none",
                ecolor=colours[arm],
                elinewidth=1.5,
                capsize=4,
                zorder=4,
            )
    ax.set_yticks(range(len(arms)), arms)
    ax.set_ylim(len(arms) - 0.5, -0.5)
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
    several = summary["count"] > 1
    if several.all():
        what = "diamonds and bars: mean ± 1 sd over seeds"
    elif several.any():
        what = "diamonds: mean over seeds, bars: ± 1 sd where an arm has two seeds or more"
    else:
        what = "one seed per arm, so the diamond is that run (no bar: no spread to show)"
    if bounds and several.any():
        what += f", cut at the metric's range ({bounds[0]:g} to {bounds[1]:g})"
    return Plot(name, f"Test {metric_phrase(metric)} per arm", f"Dots: one per seed; {what}.")


def _design_points(
    data: ReportData,
    df: pd.DataFrame,
    order: list[str],
    ticks: list[str],
    xlabel: str,
    ylabel: str,
    intervals: bool = False,
) -> tuple[Figure, Design]:
    """`df` (arm, bucket, y; a row per run and bucket) as one line per arm over the buckets: mean ± 1 sd
    over seeds, or with `intervals` (a row per arm and bucket with low and high) the given intervals;
    laid out by the design (colour, line style, a panel per column value), arms in a panel dodged apart
    so their error bars do not overprint."""
    design = Design.of(data, present(data, df))
    cols = design.order["col"]
    fig, axes = figure(panel_width(len(cols), len(order)), 4.4, ncols=len(cols))
    position = {bucket: i for i, bucket in enumerate(order)}
    for c, (ax, col) in enumerate(zip(axes, cols)):
        arms = design.column(col)
        step = min(0.08, 0.5 / len(arms))
        for k, arm in enumerate(arms):
            rows = df[df["arm"] == arm]
            if intervals:
                stats = rows.set_index("bucket")[["y", "low", "high"]].rename(columns={"y": "mean"})
            else:
                stats = rows.groupby("bucket")["y"].agg(["mean", "std"])
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
            bars = (
                [stats["mean"] - stats["low"], stats["high"] - stats["mean"]]
                if intervals
                else stats["std"].fillna(0)
            )
            if intervals or stats["std"].notna().any():
                ax.errorbar(
                    xs,
                    stats["mean"],
                    yerr=bars,
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


def bucket_plot(data: ReportData, folder: Path, key: str, df: pd.DataFrame | None) -> Plot | None:
    """Paper Fig. 3: the test metric by source length or by average word-frequency rank, from
    buckets.bucket_scores (merged to a minimum count, an interval on every point)."""
    if df is None or df["bucket"].nunique() < 2:  # one bucket compares nothing across lengths
        return None
    names = {a.get("metric") for a in data.completed["analysis"] if isinstance(a, dict)}
    metric = " / ".join(sorted(_ANALYSIS_METRIC.get(n, str(n)) for n in names if n)) or "Score"
    what = TITLES[key]
    xlabel = (
        "Source sentence length (tokens)"
        if key == "by_length"
        else "Average word-frequency rank (0 = most frequent word)"
    )
    counts = df.groupby(["lo", "bucket"], sort=True)["n"].first()
    order = [bucket for _, bucket in counts.index]
    ticks = [f"{b}\n(n={int(n)})" for (_, b), n in counts.items()]
    points = df.rename(columns={"score": "y"})
    fig, design = _design_points(data, points, order, ticks, xlabel, f"Test {metric}", intervals=True)
    fig.suptitle(design.suptitle(f"Test {metric} by {what}"))
    save(fig, folder, key)
    seeds = int(df["seeds"].max())
    spread = (
        "mean over seeds and its 95% interval (seeds and the bucket's sentences resampled)"
        if seeds > 1
        else "one seed per arm: each point's 95% interval resamples the bucket's sentences only"
    )
    return Plot(
        key,
        f"Test {metric} by {what}",
        f"Test sentences bucketed by {what}, buckets merged until each holds at least {MIN_BUCKET} "
        f"sentences or a quarter of the test set (n: sentences per bucket; numbers in "
        f"tables/{key}.csv); {spread}; {design.caption()}.",
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
    """Write each phrase by its point, no label over another and no leader line across another.

    Sentences with the same meaning land close together (that is the figure's point), so labels would
    overprint: adjustText moves them apart (a fixed number of iterations, so the same points place the
    same labels) and draws a leader line to any label it moved away from its point.
    """
    from adjustText import adjust_text

    ax.margins(x=0.08, y=0.15)  # room at the edges: labels stay inside the axes
    texts = [ax.text(x, y, phrase, fontsize=MIN_FONT_PT) for (x, y), phrase in zip(points, phrases)]
    adjust_text(
        texts,
        x=points[:, 0],
        y=points[:, 1],
        ax=ax,
        prevent_crossings=True,
        expand=(1.1, 1.4),
        iter_lim=1000,
        arrowprops=dict(arrowstyle="-", color="0.5", linewidth=0.6),
    )


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
    ncols = 1  # one panel a row: long labels need the width, and the page shows it at full size
    nrows = len(chosen)
    fig, axes = figure(7.5, 5.5 * nrows, ncols=ncols, nrows=nrows)
    labels = []  # (axes, points, phrases), annotated once every panel has its final layout
    design = Design.of(data, present(data, data.completed))  # each arm in its colour of every figure
    for ax, (arm, seed, phrases, vectors) in zip(axes, chosen):
        centred = vectors - vectors.mean(axis=0)
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        points = centred @ vt[:2].T  # [n_phrases, 2]
        explained = s**2 / np.sum(s**2)
        ax.scatter(points[:, 0], points[:, 1], color=design.colour(arm), s=30)
        labels.append((ax, points, phrases))
        ax.set(
            title=f"{arm} (seed {seed})",
            xlabel=f"PC1 ({explained[0]:.0%} of variance)",
            ylabel=f"PC2 ({explained[1]:.0%})",
        )
        ax.title.set_color(design.colour(arm))
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
    why += "first; " + ("mean ± 1 sd over seeds" if _most_seeds(df) > 1 else "one seed per arm")
    return Plot("word_f", "Word F-measure by training frequency", f"{why}; {design.caption()}.")


def _most_seeds(df: pd.DataFrame) -> int:
    """The most runs any arm contributes to `df` (rows with arm and run_dir)."""
    if "run_dir" not in df or df.empty:
        return 1
    return int(df.groupby("arm")["run_dir"].nunique().max())


def build_figures(
    data: ReportData, folder: Path, effects: Sequence[Effects] = (), buckets: dict | None = None
) -> dict[str, Plot]:
    """Every figure of a report; `effects`: the effects of each metric the forest plot shows (the first
    is the report's metric, whose resolved interactions are drawn too); `buckets`: the bucket scores
    (buckets.bucket_scores) by key."""
    buckets = buckets or {}
    folder.mkdir(parents=True, exist_ok=True)
    for old in [*folder.glob("*.png"), *folder.glob("*.pdf")]:
        old.unlink()  # a figure that no longer applies must not survive from an earlier report
    with matplotlib.rc_context(sns.axes_style("whitegrid")):
        plots = [
            forest(list(effects), folder),
            interactions(effects[0], folder) if effects else None,
            test_scores(data, folder),
            val_curves(data, folder),
            bucket_plot(data, folder, "by_length", buckets.get("by_length")),
            bucket_plot(data, folder, "by_frequency", buckets.get("by_frequency")),
            word_f(data, folder),
            teacher_forcing(data, folder),
            representations(data, folder),
        ]
    return {p.name: p for p in plots if p is not None}
