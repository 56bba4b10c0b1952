"""Paired significance tables: each pair of arms that differ in one axis, per seed pair (paired
bootstrap for BLEU, exact McNemar for exact match) and pooled over seeds (a stratified randomization
test), Holm-corrected over the table."""

from __future__ import annotations

import functools
import math
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis import (
    ALPHA,
    AR_TRIALS,
    PAIRED_BOOTSTRAP_SAMPLES,
    SentenceScores,
    exact_mcnemar,
    holm,
    monte_carlo_error,
    paired_bleu,
    pooled_randomization,
    sentence_scores,
)
from ..records import read_lines, split_file
from .labels import (
    DASH,
    axis_name,
    decimals,
    metric_phrase,
)
from .load import ReportData
from .table import Table


# ---------------------------------------------------------------------------------- significance
def test_files(run_dir: str) -> tuple[list[str], list[str]] | None:
    hyp, ref = Path(run_dir) / split_file("test", "hyp"), Path(run_dir) / split_file("test", "ref")
    return (read_lines(hyp), read_lines(ref)) if hyp.is_file() and ref.is_file() else None


def run_sentence_scores(task: str, run_dir: str) -> tuple[SentenceScores, tuple[str, ...]] | None:
    """A run's per-sentence test scores and its references (the test set it was scored on), computed once
    per version of its files; None without its test files."""
    stamps = tuple(
        (p.stat().st_mtime_ns, p.stat().st_size) if p.is_file() else None
        for p in (Path(run_dir) / split_file("test", "hyp"), Path(run_dir) / split_file("test", "ref"))
    )
    return _sentence_scores(task, run_dir, stamps)


@functools.lru_cache(maxsize=512)
def _sentence_scores(task: str, run_dir: str, _stamps: tuple) -> tuple[SentenceScores, tuple] | None:
    files = test_files(run_dir)
    if files is None or len(files[0]) != len(files[1]):
        return None
    return sentence_scores(task, *files), tuple(files[1])


def one_axis_pairs(data: ReportData) -> list[tuple[str, str, str]]:
    """Arm pairs that differ in exactly one axis: each measures one ablation, all else equal."""
    pairs = []
    for i, a in enumerate(data.arms):
        for b in data.arms[i + 1 :]:
            diff = [x for x in data.axes if data.arm_axes[a][x] != data.arm_axes[b][x]]
            if len(diff) == 1 and None not in (data.arm_axes[a][diff[0]], data.arm_axes[b][diff[0]]):
                pairs.append((a, b, diff[0]))
    return pairs


def significance_table(data: ReportData) -> Table | None:
    done, metric, nums = data.completed, data.spec.primary, []
    for a, b, axis in one_axis_pairs(data):
        for run_a, _, hyp_a, hyp_b, refs in _seed_pairs(data, a, b):
            if data.spec.exact_match:
                ca = np.array([h == r for h, r in zip(hyp_a, refs)])
                cb = np.array([h == r for h, r in zip(hyp_b, refs)])
                sa, sb, p = ca.mean(), cb.mean(), exact_mcnemar(ca, cb)
            else:
                signature = done.loc[done["run_dir"] == run_a, "bleu_signature"].iloc[0]
                sa, sb, p = paired_bleu(hyp_a, hyp_b, refs, signature)
            seed = done.loc[done["run_dir"] == run_a, "seed"].iloc[0]
            nums.append(
                {"axis": axis, "arm_a": a, "arm_b": b, "seed": seed, "score_a": sa, "score_b": sb}
                | {"delta": sb - sa, "p_value": p}
            )
    if not nums:
        return None
    numbers = pd.DataFrame(nums)
    d = decimals(metric)
    disp = []
    for (axis, a, b), g in numbers.groupby(["axis", "arm_a", "arm_b"], sort=False):
        # Per seed, the sign with the p-value: seeds can be significant in opposite directions.
        significant = g["p_value"] < ALPHA
        disp.append(
            {
                "Axis": axis_name(axis),
                "A": a,
                "B": b,
                "Δ (B − A)": f"{g['delta'].mean():+.{d}f}",
                "Seeds": str(len(g)),
                "Δ (p) per seed": ", ".join(
                    f"{x:+.{d}f} ({p:.3f})" for x, p in zip(g["delta"], g["p_value"])
                ),
                "B / A better": f"{int((significant & (g['delta'] > 0)).sum())} / "
                f"{int((significant & (g['delta'] < 0)).sum())}",
            }
        )
    test = (
        "exact McNemar test (the exact paired permutation test) on per-sentence exact match"
        if data.spec.exact_match
        else f"sacreBLEU paired bootstrap resampling ({PAIRED_BOOTSTRAP_SAMPLES} resamples) on the test set"
    )
    return Table(
        "significance",
        f"Paired significance of {metric_phrase(metric)} between arms",
        f"Pairs of arms that differ in one axis, compared seed by seed on the same test sentences with "
        f"the {test}. Δ: mean over seeds of B − A; last column: seeds where B (A) is significantly better, "
        f"p < {ALPHA}.",
        pd.DataFrame(disp),
        numbers,
        text_columns=3,
    )


def _seed_pairs(data: ReportData, a: str, b: str) -> list[tuple[str, str, list[str], list[str], list[str]]]:
    """(run A, run B, hyps A, hyps B, refs) per seed both arms ran on the same test sentences."""
    done, out = data.completed, []
    runs_a = dict(zip(done.loc[done["arm"] == a, "seed"], done.loc[done["arm"] == a, "run_dir"]))
    runs_b = dict(zip(done.loc[done["arm"] == b, "seed"], done.loc[done["arm"] == b, "run_dir"]))
    for seed in sorted(set(runs_a) & set(runs_b), key=str):
        fa, fb = test_files(runs_a[seed]), test_files(runs_b[seed])
        if fa is None or fb is None or fa[1] != fb[1] or len(fa[0]) != len(fa[1]) or len(fb[0]) != len(fb[1]):
            continue  # no files, or not the same test set: nothing to pair
        out.append((runs_a[seed], runs_b[seed], fa[0], fb[0], fa[1]))
    return out


def _selection_sd(data: ReportData, run_dir: str) -> float:
    """The test-set resampling sd of one run's score, from its bootstrap 95% interval (analysis.json)."""
    analysis = data.completed.loc[data.completed["run_dir"] == run_dir, "analysis"].iloc[0]
    boot = analysis.get("bootstrap") if isinstance(analysis, dict) else None
    return (boot["high"] - boot["low"]) / (2 * 1.96) if boot else math.nan


def pooled_significance_table(data: ReportData) -> Table | None:
    """One comparison per pair of one-axis arms over all seeds (MultEval's reporting): the mean
    difference, the spread across seeds (s_dev) apart from the spread across test-set resamples (s_sel),
    a p-value from approximate randomization over every seed's sentences at once, Holm-corrected
    across the pairs of the table."""
    metric = data.spec.primary
    nums = [
        _pooled_row(data, a, b, axis, seeds)
        for a, b, axis in one_axis_pairs(data)
        if (seeds := _seed_pairs(data, a, b))
    ]
    if not nums:
        return None
    numbers = pd.DataFrame(nums)
    numbers["p_holm"] = holm(list(numbers["p_value"]))
    # Holm scales a p by at most the number of pairs: its Monte Carlo error scales with it
    numbers["p_holm_mc_error"] = numbers["p_mc_error"] * numbers["p_holm"] / numbers["p_value"]
    bold = {(i, "p (Holm)") for i, p in enumerate(numbers["p_holm"]) if p < ALPHA}
    return Table(
        "significance_pooled",
        f"Pooled significance of {metric_phrase(metric)} over seeds",
        "Each pair of arms that differ in one axis, compared once over all seeds (MultEval's way): Δ is the "
        "mean over seeds of B − A; s_dev is the sd of an arm's score across seeds (training variance), "
        "s_sel the sd across bootstrap resamples of the test set (from each run's 95% interval, mean over "
        f"seeds); p comes from approximate randomization ({AR_TRIALS:,} shuffles of each sentence's A and B "
        f"outputs within its seed, drawn anew for each pair), corrected for the table's pairs by Holm's "
        f"method; ± its Monte Carlo error where that error could move it across {ALPHA}; bold: p (Holm) < "
        f"{ALPHA}.",
        _pooled_display(numbers, decimals(metric)),
        numbers,
        text_columns=3,
        bold=bold,
    )


def _pooled_row(data: ReportData, a: str, b: str, axis: str, seeds: list) -> dict:
    """The numbers of one pair of arms over the seeds both ran on the same test sentences."""
    pairs = [
        (sentence_scores(data.task, ha, refs), sentence_scores(data.task, hb, refs))
        for _, _, ha, hb, refs in seeds
    ]
    score_a, score_b = [x.corpus() for x, _ in pairs], [y.corpus() for _, y in pairs]
    return {
        "axis": axis,
        "arm_a": a,
        "arm_b": b,
        "seeds": len(seeds),
        "mean_a": float(np.mean(score_a)),
        "mean_b": float(np.mean(score_b)),
        "delta": float(np.mean(score_b) - np.mean(score_a)),
        "s_dev_a": float(np.std(score_a, ddof=1)) if len(seeds) > 1 else math.nan,
        "s_dev_b": float(np.std(score_b, ddof=1)) if len(seeds) > 1 else math.nan,
        "s_sel_a": float(np.nanmean([_selection_sd(data, ra) for ra, *_ in seeds])),
        "s_sel_b": float(np.nanmean([_selection_sd(data, rb) for _, rb, *_ in seeds])),
        "p_value": (p := pooled_randomization(pairs, stream=zlib.crc32(f"{a}\0{b}".encode()))),
        "p_mc_error": monte_carlo_error(p, AR_TRIALS),
    }


def _pooled_display(numbers: pd.DataFrame, d: int) -> pd.DataFrame:
    def spread(dev: float, sel: float) -> str:
        return (
            f"{DASH if math.isnan(dev) else f'{dev:.{d}f}'} / {DASH if math.isnan(sel) else f'{sel:.{d}f}'}"
        )

    return pd.DataFrame(
        {
            "Axis": numbers["axis"].map(axis_name),
            "A": numbers["arm_a"],
            "B": numbers["arm_b"],
            "Seeds": numbers["seeds"].astype(str),
            "Δ (B − A)": [f"{x:+.{d}f}" for x in numbers["delta"]],
            "A: s_dev / s_sel": [spread(x, y) for x, y in zip(numbers["s_dev_a"], numbers["s_sel_a"])],
            "B: s_dev / s_sel": [spread(x, y) for x, y in zip(numbers["s_dev_b"], numbers["s_sel_b"])],
            "p": [_with_error(p, e) for p, e in zip(numbers["p_value"], numbers["p_mc_error"])],
            "p (Holm)": [_with_error(p, e) for p, e in zip(numbers["p_holm"], numbers["p_holm_mc_error"])],
        }
    )


def _with_error(p: float, error: float) -> str:
    """A Monte Carlo p-value, with ± its error where 3 errors reach across the threshold."""
    return f"{p:.4f} ± {error:.4f}" if abs(p - ALPHA) <= 3 * error else f"{p:.4f}"
