"""The test score by source length and by word frequency (the paper's Fig. 3), with enough sentences per
bucket to mean something and an interval on every point.

The buckets start from the runs' own edges (eval.length_buckets / eval.frequency_buckets, recorded in
analysis.json) and are merged, smallest first with its smaller neighbour, until each holds at least
MIN_BUCKET sentences (a quarter of the test set when that is smaller): a tail bucket of one sentence
made the Multi30k figure's most striking point. Every run of a report is scored on the same sentences,
read back from its per-sentence file (test.scores.tsv: source length, average frequency rank) and its
hypotheses and references (a bucket's BLEU is corpus BLEU over its sentences, not a mean of sentence
scores). An arm's point is the mean over its seeds; its 95% interval is the effects' law
(effects.Effects.variance): the seeds' t and the test set's bootstrap over the bucket's sentences.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis import BOOTSTRAP_SEED, SentenceScores, read_scores
from .labels import DASH, decimals
from .load import ReportData
from .significance import run_sentence_scores
from .table import Table

MIN_BUCKET = 30  # sentences a bucket must hold
SAMPLES = 1000
KEYS = {  # analysis.json's bucket bounds, and the per-sentence column bucketed
    "by_length": ("min_len", "max_len", "src_len"),
    "by_frequency": ("min_rank", "max_rank", "avg_freq_rank"),
}
TITLES = {"by_length": "source sentence length", "by_frequency": "average word-frequency rank"}


def bucket_label(lo: float, hi: float, integer: bool) -> str:
    """Buckets are (lo, hi] (analysis.buckets). Lengths are whole tokens, so (5, 10] reads `6–10` and
    (5, 6] reads `6`; a last bound of 1000 tokens or rank 1e6 is a sentinel: (35, 1000] reads `36+`."""
    first = lo + 1 if integer else lo
    if hi >= 1000 and hi >= 10 * max(lo, 1):
        return f"{first:g}+" if integer else f">{lo:g}"
    if integer:
        return f"{hi:g}" if hi - 1 <= lo else f"{first:g}–{hi:g}"
    return f"{lo:g}–{hi:g}"


def merged_edges(values: np.ndarray, edges: list[float], minimum: int) -> list[float]:
    """`edges` with buckets (edges[i], edges[i+1]] merged until each holds at least `minimum` of
    `values` (or one bucket is left): the smallest bucket joins its smaller neighbour, so the edges
    stay the configured, readable ones."""
    edges = sorted(set(edges))
    counts = [int(np.sum((values > lo) & (values <= hi))) for lo, hi in zip(edges[:-1], edges[1:])]
    while len(counts) > 1 and min(counts) < minimum:
        i = int(np.argmin(counts))
        j = i - 1 if i == len(counts) - 1 or (i > 0 and counts[i - 1] <= counts[i + 1]) else i + 1
        lo = min(i, j)
        counts[lo : lo + 2] = [counts[lo] + counts[lo + 1]]
        del edges[lo + 1]
    return edges


def _runs(data: ReportData, key: str) -> list[tuple[str, str, np.ndarray, SentenceScores]] | None:
    """(run dir, arm, bucketed value per sentence, sentence scores) of every completed run, or None when
    some run lacks its per-sentence files or the runs were not scored on the same sentences."""
    column = KEYS[key][2]
    out, refs = [], set()
    for run in data.completed.itertuples():
        analysis = run.analysis if isinstance(run.analysis, dict) else {}
        scored = run_sentence_scores(data.task, str(run.run_dir))
        path = Path(str(run.run_dir)) / str(analysis.get("sentences", ""))
        if scored is None or not analysis.get("sentences") or not path.is_file() or not analysis.get(key):
            return None
        values = np.array([row[column] for row in read_scores(path)], dtype=float)
        if len(values) != len(scored[0].scores):
            return None
        out.append((str(run.run_dir), str(run.arm), values, scored[0]))
        refs.add(scored[1])
    return out if out and len(refs) == 1 else None


def bucket_scores(data: ReportData, key: str) -> pd.DataFrame | None:
    """One row per arm and bucket: arm, lo, hi, bucket (its label), n (sentences), seeds, score (mean over
    seeds), low, high (95%). None without per-sentence files, or with fewer than two buckets."""
    from scipy import stats

    runs = _runs(data, key)
    if runs is None:
        return None
    lo_key, hi_key, _ = KEYS[key]
    first = data.completed["analysis"].iloc[0]
    edges = sorted({b[lo_key] for b in first[key]} | {b[hi_key] for b in first[key]})
    values = runs[0][2]
    edges = merged_edges(values, edges, min(MIN_BUCKET, max(1, len(values) // 4)))
    if len(edges) < 3:
        return None
    n = len(values)
    weights = np.random.default_rng(BOOTSTRAP_SEED).multinomial(n, np.full(n, 1 / n), size=SAMPLES)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        members = (values > lo) & (values <= hi)
        if not members.any():
            continue
        for arm in dict.fromkeys(a for _, a, _, _ in runs):
            scored = [s for _, a, _, s in runs if a == arm]
            own = np.array([s.corpus(np.nonzero(members)[0]) for s in scored])
            resampled = np.mean([s.resampled(weights * members) for s in scored], axis=0)  # [R]
            v_sent, k = float(np.nanvar(resampled, ddof=1)), len(own)
            v_seed = float(np.var(own, ddof=1)) / k if k > 1 else 0.0
            total = v_seed + v_sent
            dof = (k - 1) * (total / v_seed) ** 2 if v_seed > 0 else math.inf
            half = float(stats.t.ppf(0.975, dof)) * math.sqrt(total) if total > 0 else 0.0
            score = float(own.mean())
            low, high = _clip(score - half, data), _clip(score + half, data)
            rows.append(
                {"arm": arm, "lo": lo, "hi": hi, "bucket": bucket_label(lo, hi, key == "by_length")}
                | {"n": int(members.sum()), "seeds": k, "score": score, "low": low, "high": high}
            )
    return pd.DataFrame(rows)


def _clip(value: float, data: ReportData) -> float:
    """Exact match lies in [0, 1] and BLEU in [0, 100]: an interval never reaches past them."""
    return float(np.clip(value, 0.0, 1.0 if data.spec.exact_match else 100.0))


def bucket_table(data: ReportData, key: str, df: pd.DataFrame | None) -> Table | None:
    """The bucket figure's numbers: arms down, buckets across, each `score [low, high]`; the CSV holds
    one row per arm and bucket (arm, bucket, lo, hi, n, seeds, score, low, high)."""
    if df is None or df.empty:
        return None
    d = decimals(data.spec.primary)
    order = list(dict.fromkeys(df.sort_values("lo")["bucket"]))
    counts = df.groupby("bucket")["n"].first()
    display = {"Arm": list(dict.fromkeys(df["arm"]))}
    for bucket in order:
        cells = df[df["bucket"] == bucket].set_index("arm")
        display[f"{bucket} (n={int(counts[bucket])})"] = [
            f"{cells.at[a, 'score']:.{d}f} [{cells.at[a, 'low']:.{d}f}, {cells.at[a, 'high']:.{d}f}]"
            if a in cells.index
            else DASH
            for a in display["Arm"]
        ]
    what = TITLES[key]
    return Table(
        key,
        f"Test score by {what}",
        f"The test set's sentences bucketed by {what} (buckets merged until each holds at least "
        f"{MIN_BUCKET} sentences, or a quarter of the test set; n: sentences); each cell the mean over "
        "seeds and its 95% interval (seeds and test-set resampling of the bucket's sentences).",
        pd.DataFrame(display),
        df[["arm", "bucket", "lo", "hi", "n", "seeds", "score", "low", "high"]],
    )
