"""What each scientific axis contributes: main effects and two-way interactions with intervals.

A *cell* is an arm (one level of every varying axis); its mean is over its seeds. A main effect of axis
A at level a (against A's base level, its first in arm order) is the difference of the cells with A=a
and A=base, averaged over every combination of the other axes' levels where both cells exist (in a
full factorial that is mean(A=a) - mean(A=base)); a two-way interaction of A=a and B=b is the difference
of differences over each complete 2x2 square, averaged the same way. Every such number is a weighted
sum of cell means, sum_c w_c * mean_c, and its uncertainty has two parts:

- **seeds** (training variance): s^2 * sum_c w_c^2 / k_c, with s^2 the pooled within-arm variance of
  the runs' scores and its degrees of freedom sum_c (k_c - 1), as in an OLS fit of the full factorial
  (its t-test is exact for normal seed noise, however few the seeds);
- **test sentences** (test-set variance; every run is scored on the same sentences, so this part does
  not average away over seeds): the variance of the same weighted sum over bootstrap resamples of the
  sentences, one draw of sentence weights for all runs, seeds held fixed.

The interval is estimate +- t * sqrt(seeds + sentences), t at the Welch-Satterthwaite degrees of freedom
(the sentence part counted as known), and p the matching two-sided t-test; one seed per arm leaves the
sentence part alone (a normal interval), a metric without sentence scores the seed part alone. An axis
of more than two levels also gets an omnibus Wald test of all its contrasts (F with the seeds' degrees
of freedom). A percentile bootstrap over the seeds, used before, covered a true effect in 86% (2 seeds)
to 91% (3) of simulated studies instead of 95%: a bootstrap of k values behaves like a normal interval
with too few degrees of freedom (tests/report/test_coverage.py simulates both).

Seeds needed for an unresolved effect follow the same law: the fewest seeds per arm at which a t-test of
this size at the pooled seed sd reaches 80% power, the sentence variance (which seeds do not shrink)
included.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..analysis import ALPHA, BOOTSTRAP_SEED, SentenceScores, holm

POWER = 0.8
SAMPLES = 1000
MAX_SEEDS = 1000  # "seeds needed" beyond this is reported as none
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
    weights: dict[tuple, float] = field(default_factory=dict, repr=False)  # cell -> w_c of the contrast
    df: float | None = None  # degrees of freedom of its t (inf: the sentence part alone)

    @property
    def resolved(self) -> bool:
        return (
            self.estimate is not None
            and self.p_holm is not None
            and self.p_holm < ALPHA
            and (self.kind == "omnibus" or not _straddles_zero(self.low, self.high))
        )


def _straddles_zero(low: float | None, high: float | None) -> bool:
    return low is None or high is None or low <= 0 <= high


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
    counts: dict[tuple, int] = field(default_factory=dict)  # cell -> seeds
    seed_df: int = 0  # degrees of freedom of seed_sd: sum over cells of (seeds - 1)
    replicates: dict[tuple, np.ndarray] = field(
        default_factory=dict
    )  # cell -> [R] means, sentences resampled

    @property
    def one_seed(self) -> bool:
        return max(self.seeds.values(), default=0) <= 1

    def variance(self, weights: dict[tuple, float], seeds: int | None = None) -> tuple[float, float] | None:
        """(variance, degrees of freedom) of sum_c w_c * mean_c: the seed part and the sentence part
        (module docstring); `seeds`: as if every cell had that many. None: no source of variance."""
        v_sent = 0.0
        if self.replicates:
            v_sent = float(np.var(sum(w * self.replicates[c] for c, w in weights.items()), ddof=1))
        if self.seed_sd is None:
            return (v_sent, math.inf) if v_sent > 0 else None
        k = {c: seeds or self.counts[c] for c in weights}
        dof = self.seed_df if seeds is None else len(self.cells) * (seeds - 1)
        v_seed = self.seed_sd**2 * sum(w * w / k[c] for c, w in weights.items())
        total = v_seed + v_sent
        if total <= 0:
            return None
        return total, (dof * (total / v_seed) ** 2 if v_seed > 0 else math.inf)

    def interval(self, weights: dict[tuple, float]) -> tuple[float, float, float, float] | None:
        """(estimate, low, high, two-sided p against 0) of sum_c w_c * mean_c at 95%."""
        from scipy import stats

        law = self.variance(weights)
        if law is None:
            return None
        d = sum(w * self.cells[c] for c, w in weights.items())
        se, dof = math.sqrt(law[0]), law[1]
        half = float(stats.t.ppf(1 - ALPHA / 2, dof)) * se
        return d, d - half, d + half, float(2 * stats.t.sf(abs(d) / se, dof))


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
    use_sentences = sentences is not None and bool(sentences) and all(r in sentences for r in runs["run_dir"])
    sd, dof = _pooled_sd(groups, metric)
    effects = Effects(
        metric=metric,
        factors=list(factors),
        levels=levels,
        rows=[],
        seeds={str(cell): len(g) for cell, g in groups.items()},
        sentences=use_sentences,
        seed_sd=sd,
        samples=samples,
        cells={cell: float(g[metric].mean()) for cell, g in groups.items()},
        counts={cell: len(g) for cell, g in groups.items()},
        seed_df=dof,
        replicates=_replicates(groups, sentences, samples, np.random.default_rng(seed))
        if use_sentences
        else {},
    )
    effects.rows = _contrasts(effects)
    tested = [(r, r.p) for r in effects.rows if r.p is not None]
    for (row, _), adjusted in zip(tested, holm([p for _, p in tested])):
        row.p_holm = adjusted
    return effects


def _replicates(groups, sentences, samples, seed) -> dict[tuple, np.ndarray]:
    """Per cell, its mean over its seeds on each of `samples` resamples of the test sentences (one
    weight draw for all runs: they share the test set): [R]."""
    n = len(sentences[next(iter(groups.values()))["run_dir"].iloc[0]].scores)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n, np.full(n, 1 / n), size=samples).astype(float)  # [R, N]
    return {
        cell: np.stack([sentences[r].resampled(weights) for r in g["run_dir"]]).mean(0)
        for cell, g in groups.items()
    }


def _pooled_sd(groups, metric) -> tuple[float | None, int]:
    parts = [(len(g) - 1, float(g[metric].var(ddof=1))) for g in groups.values() if len(g) > 1]
    dof = sum(d for d, _ in parts)
    return (math.sqrt(sum(d * v for d, v in parts) / dof) if dof else None), dof


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


def _weights(squares: list[list[tuple]], n_axes: int) -> dict[tuple, float]:
    """The contrast as weights on cells: each square's signs, averaged over the squares."""
    out: dict[tuple, float] = {}
    for cells in squares:
        for sign, cell in zip(_signs(n_axes), cells):
            out[cell] = out.get(cell, 0.0) + sign / len(squares)
    return out


def _contrasts(effects: Effects) -> list[Effect]:
    rows: list[Effect] = []
    for f in effects.factors:
        base = effects.levels[f][0]
        contrasts = [_one(effects, (f,), (lev,), (base,)) for lev in effects.levels[f][1:]]
        rows += contrasts
        if len(contrasts) > 1:
            rows.append(_omnibus(effects, f, contrasts))
    for f, g in itertools.combinations(effects.factors, 2):
        bases = (effects.levels[f][0], effects.levels[g][0])
        for a, b in itertools.product(effects.levels[f][1:], effects.levels[g][1:]):
            rows.append(_one(effects, (f, g), (a, b), bases))
    return rows


def _one(effects: Effects, axes: tuple, levels: tuple, bases: tuple) -> Effect:
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
    row.weights = _weights(squares, len(axes))
    row.estimate = float(sum(w * effects.cells[c] for c, w in row.weights.items()))
    found = effects.interval(row.weights)
    if found is None:  # one run per arm, no sentences to resample: nothing to test the size against
        row.why = UNTESTABLE
        return row
    _, row.low, row.high, row.p = found
    law = effects.variance(row.weights)
    row.df = law[1] if law is not None else None
    _seeds_needed(effects, row)
    return row


def _omnibus(effects: Effects, axis: str, contrasts: list[Effect]) -> Effect:
    """All of a multi-level axis's contrasts at once: a Wald statistic d' V^-1 d with V their covariance
    (seed part from the pooled sd, sentence part from the resamples); F with the seeds' degrees of
    freedom, chi-square when only sentences vary."""
    from scipy import stats

    row = Effect("omnibus", (axis,), (), (effects.levels[axis][0],), None)
    usable = [c for c in contrasts if c.estimate is not None]
    if not usable:
        row.why = "none of its contrasts is estimable"
        return row
    if any(c.p is None for c in usable):
        row.why = UNTESTABLE
        return row
    cells = sorted({c for u in usable for c in u.weights}, key=lambda c: tuple(map(_key, c)))
    w = np.array([[u.weights.get(c, 0.0) for c in cells] for u in usable])  # [q, cells]
    cov = np.zeros((len(usable), len(usable)))
    if effects.seed_sd is not None:
        cov += effects.seed_sd**2 * (w / np.array([effects.counts[c] for c in cells])) @ w.T
    if effects.replicates:
        reps = w @ np.stack([effects.replicates[c] for c in cells])  # [q, R]
        cov += np.atleast_2d(np.cov(reps))
    d = np.array([u.estimate for u in usable])
    observed = float(d @ np.linalg.pinv(cov) @ d)
    q = len(usable)
    row.estimate, row.matched = observed, min(c.matched for c in usable)
    if effects.seed_sd is not None and effects.seed_df:
        row.p, row.df = float(stats.f.sf(observed / q, q, effects.seed_df)), float(effects.seed_df)
    else:
        row.p, row.df = float(stats.chi2.sf(observed, q)), math.inf
    return row


def _seeds_needed(effects: Effects, row: Effect) -> None:
    """Seeds per arm for 80% power at the table's alpha against an effect of the observed size: the
    fewest k with (t_{1-alpha/2, df} + t_{power, df}) * se(k) <= |estimate|, se(k) from the pooled seed
    sd at k seeds per arm plus the sentence variance, which does not shrink with seeds."""
    from scipy import stats

    estimate = row.estimate
    if effects.seed_sd is None or estimate is None:
        return
    sentence_only = effects.variance(row.weights, seeds=10**12)  # seeds -> infinity: the sentence part
    if estimate == 0 or (sentence_only and _short(estimate, *sentence_only, stats)):
        row.why = (
            "the test set's sampling variance alone, as these seeds measure it, is at least this large: "
            "more seeds are unlikely to resolve it, a larger test set would"
        )
        return

    def powered(k: int) -> bool:
        law = effects.variance(row.weights, seeds=k)
        return law is None or not _short(estimate, *law, stats)

    if not powered(MAX_SEEDS):
        row.why = f"more than {MAX_SEEDS} seeds per arm"
        return
    low, high = 1, MAX_SEEDS  # power grows with k: the fewest k that is powered, by bisection
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if powered(mid) else (mid, high)
    row.seeds_needed = max(2, high)


def _short(estimate: float, variance: float, dof: float, stats) -> bool:
    """Is a t-test of this size underpowered at this variance and these degrees of freedom?"""
    z = float(stats.t.ppf(1 - ALPHA / 2, dof) + stats.t.ppf(POWER, dof))
    return abs(estimate) < z * math.sqrt(variance)
