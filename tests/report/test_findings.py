"""The effects table and the Findings: synthetic studies with known effects, fractional designs, a
three-level axis, one seed per arm, and the report that opens with what the ablation found."""

from __future__ import annotations

import itertools
import math
import shutil
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from s2s_lightning.analysis import ALPHA, SentenceScores
from s2s_lightning.errors import S2SError
from s2s_lightning.report.build import build_report
from s2s_lightning.report.effect_figures import forest
from s2s_lightning.report.effects import POWER, UNTESTABLE, estimate

RECORDS = Path(__file__).parents[1] / "fixtures" / "records"
N_SENTENCES = 3000


def study(mean, levels: dict, seeds: int = 3, noise: float = 0.02, skip=(), sentences: bool = True, seed=0):
    """Runs of a synthetic study: each run's metric is the share of its sentences answered right, each
    sentence right with probability mean(cell) + seed noise."""
    rng = np.random.default_rng(seed)
    rows, scores = [], {}
    for cell in itertools.product(*levels.values()):
        values = dict(zip(levels, cell))
        if any(all(values[k] == v for k, v in s.items()) for s in skip):
            continue
        for s in range(seeds):
            p = mean(**values) + rng.normal(0, noise)
            right = (rng.random(N_SENTENCES) < p).astype(float)
            run_dir = "run-" + "-".join(map(str, cell)) + f"-s{s}"
            scores[run_dir] = SentenceScores("exact_match", right, None)
            rows.append({**values, "seed": s, "run_dir": run_dir, "m": right.mean()})
    return pd.DataFrame(rows), (scores if sentences else None)


def rows_by(effects):
    return {(r.kind, r.axes, r.levels): r for r in effects.rows}


def known(A, B, C=0):
    return 0.1 + 0.3 * A + 0.1 * B + 0.2 * A * B


def test_a_synthetic_study_recovers_its_effects_and_marks_the_null_axis_unresolved():
    runs, sentences = study(known, {"A": [0, 1], "B": [0, 1], "C": [0, 1]})
    effects = estimate(runs, ["A", "B", "C"], "m", sentences)
    rows = rows_by(effects)
    # Main effects are averaged over the other axes' levels: A = 0.3 + 0.2 * mean(B) = 0.4.
    truth = {
        ("main", ("A",), (1,)): 0.4,
        ("main", ("B",), (1,)): 0.2,
        ("interaction", ("A", "B"), (1, 1)): 0.2,
    }
    for key, value in truth.items():
        row = rows[key]
        assert row.low <= value <= row.high and row.resolved, (key, row)
    null = rows[("main", ("C",), (1,))]
    assert null.low <= 0 <= null.high and not null.resolved
    assert not rows[("interaction", ("A", "C"), (1, 1))].resolved
    assert effects.sentences and not effects.one_seed and effects.seed_sd > 0
    assert all(r.p_holm >= r.p for r in effects.rows)


def test_a_fractional_design_says_which_effects_it_cannot_estimate():
    """The Multi30k study's shape: Peeky only on the reversed arms. The reversal x Peeky interaction
    needs the forward Peeky corner, so it is not estimable; both main effects still are."""
    runs, sentences = study(known, {"A": [0, 1], "B": [0, 1], "C": [0]}, skip=[{"A": 0, "B": 1}])
    effects = estimate(runs, ["A", "B"], "m", sentences)
    rows = rows_by(effects)
    inter = rows[("interaction", ("A", "B"), (1, 1))]
    assert inter.estimate is None and "skips a corner" in inter.why and inter.p_holm is None
    a, b = rows[("main", ("A",), (1,))], rows[("main", ("B",), (1,))]
    assert a.matched == 1 and a.low <= 0.3 <= a.high  # only where B is at its base
    assert b.matched == 1 and b.low <= 0.3 <= b.high  # only where A = 1: 0.1 + 0.2


def test_a_three_level_axis_gets_a_contrast_per_level_and_an_omnibus_test():
    """Each study here is one fixed random draw. Over 30 draws of this one, the 95% intervals held the
    true effects 90-93% of the time (3 seeds: a percentile bootstrap runs a little narrow), and over 40
    draws of the flat one, the omnibus test rejected at p < 0.05 7.5% of the time, its contrasts 4.2%."""

    def mean(A, T):
        return 0.2 + 0.1 * A + {0.0: 0.0, 0.5: 0.15, 1.0: 0.3}[T]

    runs, sentences = study(mean, {"A": [0, 1], "T": [0.0, 0.5, 1.0]}, seed=2)
    effects = estimate(runs, ["A", "T"], "m", sentences)
    rows = rows_by(effects)
    for level, value in ((0.5, 0.15), (1.0, 0.3)):
        row = rows[("main", ("T",), (level,))]
        assert row.bases == (0.0,) and row.low <= value <= row.high and row.resolved
    omnibus = next(r for r in effects.rows if r.kind == "omnibus")
    assert omnibus.axes == ("T",) and omnibus.resolved
    assert {r.levels for r in effects.rows if r.kind == "interaction"} == {(1, 0.5), (1, 1.0)}

    flat, flat_sentences = study(lambda A, T: 0.3, {"A": [0, 1], "T": [0.0, 0.5, 1.0]}, seed=3)
    omnibus = next(r for r in estimate(flat, ["A", "T"], "m", flat_sentences).rows if r.kind == "omnibus")
    assert not omnibus.resolved


def test_one_seed_per_arm_resamples_sentences_only_and_says_so(tmp_path):
    runs, sentences = study(known, {"A": [0, 1], "B": [0, 1]}, seeds=1)
    effects = estimate(runs, ["A", "B"], "m", sentences)
    assert effects.one_seed and effects.seed_sd is None
    assert all(r.seeds_needed is None for r in effects.rows)
    row = rows_by(effects)[("main", ("A",), (1,))]
    assert row.high - row.low > 0 and row.resolved  # the test set still has sampling variance


def test_seeds_needed_follows_from_the_seed_sd_when_sentences_are_not_resampled():
    """A small effect (+0.01) under seed noise (sd 0.02, 3 seeds): unresolved, and the seeds per arm
    that 80% power needs follow from the pooled seed sd by the normal approximation."""
    spread = [-0.02, 0.0, 0.02]
    rows = [
        {"A": a, "B": b, "seed": s, "run_dir": f"r{a}{b}{s}", "m": 0.5 + 0.01 * a + 0.005 * b + spread[s]}
        for a, b, s in itertools.product([0, 1], [0, 1], range(3))
    ]
    effects = estimate(pd.DataFrame(rows), ["A", "B"], "m", None)
    row = rows_by(effects)[("main", ("A",), (1,))]
    assert not effects.sentences and not row.resolved and row.low <= 0 <= row.high
    assert effects.seed_sd == pytest.approx(0.02)
    z = NormalDist().inv_cdf(1 - ALPHA / 2) + NormalDist().inv_cdf(POWER)
    # A main effect averaged over 2 pairs of cells: sum of squared coefficients 4 * (1/2)^2 = 1.
    assert row.seeds_needed == math.ceil(0.02**2 * 1.0 / (0.01 / z) ** 2)  # 32


def test_the_report_opens_with_findings_and_writes_the_effects_table_and_figures(tmp_path):
    readme = build_report(RECORDS / "addition", tmp_path / "r", command="s2s report").read_text()
    sections = [line for line in readme.splitlines() if line.startswith("## ")]
    assert sections[0] == "## Findings"
    findings = readme.split("## Findings\n\n")[1].split("\n\n")[0].splitlines()
    assert findings[0].startswith("- Source order (reversed vs forward): exact match rises by ")
    assert "95% interval" in findings[0] and "p (Holm)" in findings[0]
    assert any("not estimable" in line for line in findings)
    assert findings[-2].startswith("- Caveat: every arm has 1 layer, plain decoder")
    assert findings[-1].startswith("- Caveat: validation perplexity was still falling when training stopped")
    table = pd.read_csv(tmp_path / "r" / "tables" / "effects.csv")
    assert set(table["kind"]) == {"main", "interaction"} and table["resolved"].dtype == bool
    assert (tmp_path / "r" / "figures" / "effects.png").is_file()
    assert "## Effects of the scientific axes" in readme


def test_any_recorded_metric_can_be_the_effects_metric_and_an_unknown_one_is_refused(tmp_path):
    readme = build_report(RECORDS / "addition", tmp_path / "r", metric="test/ppl").read_text()
    assert "perplexity" in readme.split("## Findings")[1].split("##")[0].lower()
    assert "seed variance only" in readme
    with pytest.raises(S2SError, match=r"--metric test/bleu: no completed run records it \(recorded: "):
        build_report(RECORDS / "addition", tmp_path / "r2", metric="test/bleu")


def test_a_one_seed_study_report_says_its_intervals_are_test_set_sampling_only(tmp_path):
    """The Multi30k CPU study's shape: one seed per arm. Its Findings must not read as if training
    variance were known: the caveat says so, and no effect gets a seed count."""
    runs = [RECORDS / "addition" / name for name in ("fwd-tf1-s0", "rev-tf1-s0", "rev-tf0.5-s0")]
    readme = build_report(runs, tmp_path / "r").read_text()
    findings = readme.split("## Findings\n\n")[1].split("\n\n")[0]
    assert "one seed per arm, so the intervals reflect test-set sampling only" in findings
    assert "seeds per arm would resolve" not in findings
    resolved = [line for line in findings.splitlines() if "95% interval" in line]
    assert resolved and all(
        line.endswith("; resolved against test-set sampling only (one run per arm).") for line in resolved
    )
    assert "| yes (test set only) |" in readme  # the effects table's Resolved column
    assert "One seed per arm: the intervals reflect test-set sampling only" in readme  # the table's caption


def _set_last_val_ppl(history: Path, ratio: float) -> None:
    """The run's last validation perplexity becomes `ratio` times the one before it."""
    h = pd.read_csv(history)
    h.loc[h.index[-1], "val/ppl"] = h["val/ppl"].iloc[-2] * ratio
    h.to_csv(history, index=False)


def test_runs_still_learning_when_training_stopped_get_a_caveat_and_converged_ones_do_not(tmp_path):
    """Every fixture run's validation perplexity falls 5-18% in its last epoch. Three runs (one arm)
    made to converge (a 0.5% step) drop out of the caveat's count; with every run converged it goes."""
    records = tmp_path / "records"
    shutil.copytree(RECORDS / "addition", records)
    for name in ("rev-tf0.5-s0", "rev-tf0.5-s1", "rev-tf0.5-s2"):
        _set_last_val_ppl(records / name / "history.csv", 0.995)
    readme = build_report(records, tmp_path / "r").read_text()
    findings = readme.split("## Findings\n\n")[1].split("\n\n")[0].splitlines()
    assert findings[-1] == (
        "- Caveat: validation perplexity was still falling when training stopped in 6 of 9 runs (2 of 3 "
        "arms; by 5.2% to 17.7% in the last epoch), so the effects above are those of this training "
        "budget; more epochs may change them."
    )
    for history in records.glob("*/history.csv"):
        _set_last_val_ppl(history, 0.995 if "tf0.5" in history.parent.name else 1.02)  # flat, or worse
    readme = build_report(records, tmp_path / "r2").read_text()
    assert "still falling" not in readme


def test_one_seed_without_sentence_scores_gives_sizes_untested_not_resolved(tmp_path):
    """One run per arm and a metric with no per-sentence scores (perplexity): every bootstrap replicate
    equals the estimate, so no interval or p exists; such effects must not read (or plot) as resolved."""
    runs, _ = study(known, {"A": [0, 1], "B": [0, 1]}, seeds=1, sentences=False)
    effects = estimate(runs, ["A", "B"], "m", None)
    row = rows_by(effects)[("main", ("A",), (1,))]
    assert row.estimate == pytest.approx(runs.query("A == 1")["m"].mean() - runs.query("A == 0")["m"].mean())
    assert (row.low, row.high, row.p, row.p_holm) == (None, None, None, None) and not row.resolved
    assert row.why == UNTESTABLE and forest([effects], tmp_path) is None
    one_seed = [RECORDS / "addition" / name for name in ("fwd-tf1-s0", "rev-tf1-s0", "rev-tf0.5-s0")]
    readme = build_report(one_seed, tmp_path / "r", metric="test/ppl").read_text()
    findings = readme.split("## Findings\n\n")[1].split("\n\n")[0]
    assert f", untested ({UNTESTABLE})." in findings and "p (Holm)" not in findings
    assert "sizes without intervals or tests" in findings
    assert "| untested |" in readme and "| yes" not in readme.split("## Effects")[1].split("##")[0]
