"""The effects' 95% intervals cover the true effect, and their p-values are uniform under no effect, at the
seed counts studies use (2, 3, 5 per arm), in 2x2 and 2x2x2 designs, with and without test-set noise.

Each simulated study draws every run's score as (its cell's true mean) + (seed noise, sd 1); with
test-set noise each run is scored on 200 sentences shared by every run, each sentence adding its own
per-arm deviation (the arm is better on some sentences than others), so a finite test set moves every
contrast, and the intervals must carry that too. True effects: main effect of A 0.5, of B 0 (and of C
0.3), interaction A x B 0.3, every other interaction 0."""

import itertools

import numpy as np
import pandas as pd
import pytest

from s2s_lightning.analysis import SentenceScores
from s2s_lightning.report.effects import estimate

stats = pytest.importorskip("scipy.stats")  # a GPU node's test step has no scipy: reports are built elsewhere

STUDIES = 300
TRUE = {("A",): 0.5, ("B",): 0.0, ("C",): 0.3, ("A", "B"): 0.3, ("A", "C"): 0.0, ("B", "C"): 0.0}
SENTENCES, SENTENCE_SD, RUN_SENTENCE_SD = 200, 8.0, 2.0  # cell-level test-set sd 8 / sqrt(200) ~ 0.57


def _study(rng, factors: list[str], seeds: int, sentence_noise: bool):
    rows, scores = [], {}
    coded = {f: (-0.5, 0.5) for f in factors}
    deviations = {}
    for cell in itertools.product(*(coded[f] for f in factors)):
        x = dict(zip(factors, cell))
        mean = sum(TRUE[(f,)] * x[f] for f in factors)
        mean += sum(TRUE[(f, g)] * x[f] * x[g] for f, g in itertools.combinations(factors, 2))
        if sentence_noise:
            deviations[cell] = rng.normal(0, SENTENCE_SD, SENTENCES)  # this arm's sentence-by-sentence edge
        for seed in range(seeds):
            run = f"{cell}-{seed}"
            score = mean + rng.normal(0, 1)
            if sentence_noise:
                per = score + deviations[cell] + rng.normal(0, RUN_SENTENCE_SD, SENTENCES)
                scores[run] = SentenceScores("m", per, None)
                score = float(per.mean())
            rows.append({**{f: int(x[f] > 0) for f in factors}, "seed": seed, "run_dir": run, "m": score})
    return pd.DataFrame(rows), (scores or None)


@pytest.mark.parametrize("sentence_noise", [False, True], ids=["seeds", "seeds+test-set"])
@pytest.mark.parametrize("seeds", [2, 3, 5])
@pytest.mark.parametrize("factors", [["A", "B"], ["A", "B", "C"]], ids=["2x2", "2x2x2"])
def test_intervals_cover_and_p_values_are_uniform_under_no_effect(factors, seeds, sentence_noise):
    rng = np.random.default_rng(1000 * len(factors) + 10 * seeds + sentence_noise)
    covered, null_p = [], []
    for _ in range(STUDIES):
        runs, sentences = _study(rng, factors, seeds, sentence_noise)
        for row in estimate(runs, factors, "m", sentences, samples=200, seed=int(rng.integers(2**31))).rows:
            truth = TRUE[row.axes]
            covered.append(row.low <= truth <= row.high)
            if truth == 0:
                null_p.append(row.p)
    coverage, null_p = float(np.mean(covered)), np.array(null_p)
    assert coverage >= 0.93, f"95% intervals covered the true effect in {coverage:.1%}"
    assert 0.02 <= float(np.mean(null_p < 0.05)) <= 0.08, (
        f"p < 0.05 in {np.mean(null_p < 0.05):.1%} under no effect"
    )
    assert stats.kstest(null_p, "uniform").statistic < 0.08, "p-values under no effect are not uniform"
