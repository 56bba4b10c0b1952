"""What each scientific axis contributes: main effects and two-way interactions with intervals.

The method: a two-stage (hierarchical) bootstrap around plain contrasts of cell means. A *cell* is an
arm (one level of every varying axis); its mean is over its seeds. A main effect of axis A at level a
(against A's base level, its first in arm order) is the difference of the cells with A=a and A=base,
averaged over every combination of the other axes' levels where both cells exist (in a full factorial
that is mean(A=a) - mean(A=base)); a two-way interaction of A=a and B=b is the difference of
differences over each complete 2x2 square, averaged the same way. Each bootstrap replicate resamples
the seeds of every arm (training variance; scaled by sqrt(k / (k - 1)), since a bootstrap of k seeds
shrinks their variance by (k - 1) / k) and, when the runs' test files are there, the test sentences
(test-set variance; one draw of sentence weights for all runs, which share the test set), and computes
the same contrasts. The 95% interval is the replicates' 2.5 and 97.5 percentiles; the p-value is a
centered bootstrap test ((count of |d_r - d| >= |d|) + 1) / (R + 1); an axis of more than two levels
also gets an omnibus Wald test of all its contrasts, its covariance from the replicates.

Why a bootstrap rather than OLS/ANOVA on the run scores: it carries the test-set sampling variance
that a fit on run means ignores, it still gives intervals at one seed per arm (where a saturated
linear model has no residual degrees of freedom), and it works for any corpus metric (BLEU is not a
mean of sentence scores). Seeds needed for an unresolved effect come from a normal approximation at
the pooled seed-to-seed sd, with the sentence-only variance (which seeds do not shrink) kept apart.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from ..analysis import BOOTSTRAP_SEED, SentenceScores, holm

ALPHA = 0.05
POWER = 0.8
SAMPLES = 1000
# Why an estimable effect has no interval and no p: no source of variance to measure it against.
UNTESTABLE = "one run per arm and no per-sentence scores of this metric to resample: no interval or test"


@dataclass
class Effect:
    """One row of the effects table."""

    kind: str  # "main", "interaction" or "omnibus"
    axes: tuple[str, ...]  # one axis (main, omnibus) or two (interaction)
    levels: tuple[Any, ...]  # the contrasted level of each axis (against its base); () for an omnibus
    bases: tuple[Any, ...]  # each axis's base level
    estimate: float | None  # None: not estimable
    low: float | None = None
    high: float | None = None
    p: float | None = None
    p_holm: float | None = None
    matched: int = 0  # pairs (main) or squares (interaction) of cells it averages over
    seeds_needed: int | None = None  # per arm, to resolve an effect of this size (unresolved effects)
    why: str = ""  # why it is not estimable, or why no seed count can resolve it
    replicates: np.ndarray | None = field(default=None, repr=False)  # [R] bootstrap estimates

    @property
    def resolved(self) -> bool:
        return (
            self.estimate is not None
            and self.p_holm is not None
            and self.p_holm < ALPHA
            and (self.kind == "omnibus" or not (self.low <= 0 <= self.high))
        )


@dataclass
class Effects:
    """The effects of one metric, and what they were estimated from."""

    metric: str
    factors: list[str]  # the varying axes, in order
    levels: dict[str, list[Any]]  # each factor's levels, base first
    rows: list[Effect]
    seeds: dict[str, int]  # seeds per arm
    sentences: bool  # whether test sentences were resampled (else seeds only)
    seed_sd: float | None  # pooled within-arm sd of the metric (None: no arm has two seeds)
    samples: int = SAMPLES
    cells: dict[tuple, float] = field(default_factory=dict)  # cell (levels of the factors) -> mean
    replicates: dict[tuple, np.ndarray] = field(default_factory=dict)  # cell -> [R] bootstrap means

    @property
    def one_seed(self) -> bool:
        return max(self.seeds.values(), default=0) <= 1


def _key(value: Any) -> tuple:
    return (value is None, value if value is not None else 0)


def estimate(
    runs: pd.DataFrame,
    factors: list[str],
    metric: str,
    sentences: dict[str, SentenceScores] | None = None,
    samples: int = SAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Effects:
    """Effects of `factors` (columns of `runs`, one row per completed run with `run_dir`, `seed` and
    `metric`) on `metric`. `sentences`: each run's sentence scores on the shared test set, when the
    metric is the one they score; then test sentences are resampled too."""
    runs = runs[runs[metric].notna()].reset_index(drop=True)
    levels = {f: sorted(dict.fromkeys(runs[f]), key=_key) for f in factors}
    groups = dict(iter(runs.groupby(factors, sort=False, dropna=False))) if factors else {(): runs}
    groups = {(cell if isinstance(cell, tuple) else (cell,)): g for cell, g in groups.items()}
    use_sentences = bool(sentences) and all(r in sentences for r in runs["run_dir"])
    rng = np.random.default_rng(seed)
    full = _replicates(groups, metric, sentences if use_sentences else None, samples, rng, seeds=True)
    sentence_only = (
        _replicates(groups, metric, sentences, samples, rng, seeds=False) if use_sentences else None
    )
    cells = {cell: float(g[metric].mean()) for cell, g in groups.items()}
    effects = Effects(
        metric=metric,
        factors=list(factors),
        levels=levels,
        rows=[],
        seeds={str(cell): len(g) for cell, g in groups.items()},
        sentences=use_sentences,
        seed_sd=_pooled_sd(groups, metric),
        samples=samples,
        cells=cells,
        replicates=full,
    )
    effects.rows = _contrasts(effects, sentence_only)
    tested = [r for r in effects.rows if r.p is not None]
    for row, adjusted in zip(tested, holm([r.p for r in tested])):
        row.p_holm = adjusted
    return effects


def _replicates(groups, metric, sentences, samples, rng, seeds: bool) -> dict[tuple, np.ndarray]:
    """Bootstrap cell means [R] per cell: the seeds of each cell resampled (with `seeds`), and each run's
    score recomputed on resampled test sentences (with `sentences`: one weight draw for all runs)."""
    weights = None
    if sentences:
        n = len(next(iter(sentences.values())).scores)
        weights = rng.multinomial(n, np.full(n, 1 / n), size=samples).astype(float)  # [R, N]
    out = {}
    for cell, g in groups.items():
        if weights is not None:
            scores = np.stack([sentences[r].resampled(weights) for r in g["run_dir"]])  # [k, R]
        else:
            scores = np.repeat(g[metric].to_numpy(float)[:, None], samples, axis=1)  # [k, R]
        k = len(scores)
        pick = rng.integers(0, k, size=(samples, k)) if seeds else np.tile(np.arange(k), (samples, 1))
        means = np.take_along_axis(scores.T, pick, axis=1).mean(1)  # [R]
        if seeds and k > 1:  # a bootstrap of k values shrinks their variance by (k - 1) / k: undo it
            centre = scores.mean(0)
            means = centre + (means - centre) * math.sqrt(k / (k - 1))
        out[cell] = means
    return out


def _pooled_sd(groups, metric) -> float | None:
    parts = [(len(g) - 1, float(g[metric].var(ddof=1))) for g in groups.values() if len(g) > 1]
    dof = sum(d for d, _ in parts)
    return math.sqrt(sum(d * v for d, v in parts) / dof) if dof else None


def _squares(effects: Effects, axes: tuple[str, ...], levels: tuple, bases: tuple) -> list[list[tuple]]:
    """Per combination of the other factors' levels: the cells a contrast of `axes` at `levels` vs
    `bases` needs (2 for a main effect, 4 for an interaction), where all of them exist."""
    others = [f for f in effects.factors if f not in axes]
    found = []
    for rest in itertools.product(*(effects.levels[f] for f in others)):
        cells = []
        for corner in itertools.product(*[(lev, base) for lev, base in zip(levels, bases)]):
            values = dict(zip(others, rest)) | dict(zip(axes, corner))
            cells.append(tuple(values[f] for f in effects.factors))
        if all(c in effects.cells for c in cells):
            found.append(cells)
    return found


def _signs(n_axes: int) -> list[int]:
    """The contrast's signs over the corners in _squares order: (+, -) or (+, -, -, +)."""
    return [
        int(np.prod([1 if not b else -1 for b in bits])) for bits in itertools.product((0, 1), repeat=n_axes)
    ]


def _contrast(squares: list[list[tuple]], n_axes: int, data: dict) -> Any:
    signs = _signs(n_axes)
    per = [sum(s * data[c] for s, c in zip(signs, cells)) for cells in squares]
    return sum(per) / len(per)


def _contrasts(effects: Effects, sentence_only: dict | None) -> list[Effect]:
    rows: list[Effect] = []
    for f in effects.factors:
        base = effects.levels[f][0]
        contrasts = [_one(effects, (f,), (lev,), (base,), sentence_only) for lev in effects.levels[f][1:]]
        rows += contrasts
        if len(contrasts) > 1:
            rows.append(_omnibus(effects, f, contrasts))
    for f, g in itertools.combinations(effects.factors, 2):
        bases = (effects.levels[f][0], effects.levels[g][0])
        for a, b in itertools.product(effects.levels[f][1:], effects.levels[g][1:]):
            rows.append(_one(effects, (f, g), (a, b), bases, sentence_only))
    return rows


def _one(effects: Effects, axes: tuple, levels: tuple, bases: tuple, sentence_only: dict | None) -> Effect:
    kind = "main" if len(axes) == 1 else "interaction"
    squares = _squares(effects, axes, levels, bases)
    row = Effect(kind, axes, levels, bases, None, matched=len(squares))
    if not squares:
        row.why = (
            "no two arms differ in this axis alone"
            if kind == "main"
            else "no 2x2 square of arms at these levels: the design skips a corner"
        )
        return row
    d = float(_contrast(squares, len(axes), effects.cells))
    reps = np.asarray(_contrast(squares, len(axes), effects.replicates), dtype=float)
    if np.ptp(reps) == 0:  # one run per arm, no sentences to resample: nothing to test the size against
        row.estimate, row.why = d, UNTESTABLE
        return row
    row.estimate, row.low, row.high = d, float(np.percentile(reps, 2.5)), float(np.percentile(reps, 97.5))
    row.p = float((np.sum(np.abs(reps - d) >= abs(d) - 1e-12) + 1) / (len(reps) + 1))
    row.replicates = reps
    _seeds_needed(effects, row, squares, sentence_only)
    return row


def _omnibus(effects: Effects, axis: str, contrasts: list[Effect]) -> Effect:
    """All of a multi-level axis's contrasts at once: a Wald test with the replicates' covariance,
    its null distribution from the centered replicates."""
    row = Effect("omnibus", (axis,), (), (effects.levels[axis][0],), None)
    usable = [c for c in contrasts if c.estimate is not None]
    if not usable:
        row.why = "none of its contrasts is estimable"
        return row
    if any(c.replicates is None for c in usable):
        row.why = UNTESTABLE
        return row
    d = np.array([c.estimate for c in usable])
    reps = np.stack([c.replicates for c in usable], axis=1)  # [R, k]
    inv = np.linalg.pinv(np.atleast_2d(np.cov(reps, rowvar=False)))
    centered = reps - d
    observed = float(d @ inv @ d)
    null = np.einsum("rk,kl,rl->r", centered, inv, centered)
    row.estimate, row.matched = observed, min(c.matched for c in usable)
    row.p = float((np.sum(null >= observed - 1e-12) + 1) / (len(null) + 1))
    return row


def _seeds_needed(effects: Effects, row: Effect, squares: list, sentence_only: dict | None) -> None:
    """Seeds per arm for 80% power at the table's alpha against an effect of the observed size, at the
    pooled seed sd; the sentence-only variance of the contrast does not shrink with seeds."""
    if effects.seed_sd is None or row.estimate is None:
        return
    corners = 2 ** len(row.axes)
    coef = corners / len(squares)  # sum of squared contrast coefficients: (2 or 4 cells / m) each 1/m
    v_sent = 0.0
    if sentence_only is not None:
        v_sent = float(np.var(_contrast(squares, len(row.axes), sentence_only), ddof=1))
    z = NormalDist().inv_cdf(1 - ALPHA / 2) + NormalDist().inv_cdf(POWER)
    room = (row.estimate / z) ** 2 - v_sent
    if row.estimate == 0 or room <= 0:
        row.why = (
            "the test set's sampling variance alone, as these seeds measure it, is at least this large: "
            "more seeds are unlikely to resolve it, a larger test set would"
        )
        return
    row.seeds_needed = max(2, math.ceil(effects.seed_sd**2 * coef / room))
