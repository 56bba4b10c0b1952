"""Report tables: results per arm, the paper's Table 1, test sets, word F-measure, beam sizes; and
the list of every table of a report (significance.py and health.py hold the rest).

Every table keeps its numbers (written as CSV at full precision) next to display strings (Markdown
for the README, LaTeX booktabs for a paper). Scores are means over the seeds of completed runs with
the sample standard deviation (ddof=1) and n; an arm with one seed shows no deviation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from .. import metrics as M
from .health import failures_table, health_table, runs_table
from .labels import (
    DASH,
    axis_value_label,
    metric_label,
    metric_phrase,
)
from .load import ReportData, word_f_rows
from .significance import pooled_significance_table, significance_table
from .table import Table, fmt_score, stats

RESULT_METRICS = (
    M.TEST_BLEU,
    M.TEST_BLEU_TOK,
    M.TEST_BLEU_TOK_LC,
    M.TEST_CHRF,
    M.TEST_EXACT_MATCH,
    M.TEST_TOKEN_ACC,
    M.TEST_PPL,
)


# ------------------------------------------------------------------------------------------ tables
def summary_table(data: ReportData) -> Table:
    done = data.completed
    metrics = [m for m in RESULT_METRICS if done[m].notna().any()]
    disp, nums = [], []
    for arm in data.arms:
        runs = done[done["arm"] == arm]
        row = {"Arm": arm, "n": str(len(runs))}
        num = {"arm": arm, **{a: data.arm_axes[arm][a] for a in data.varying}, "n": len(runs)}
        for m in metrics:
            mean, std, n = stats(runs[m])
            row[metric_label(m)] = fmt_score(mean, std, n, m, len(runs))
            num.update({f"{m} mean": mean, f"{m} std": std, f"{m} n": n})
        params = runs["num_parameters"].dropna()
        row["Params"] = f"{int(params.median()):,}" if len(params) else DASH
        num["num_parameters"] = float(params.median()) if len(params) else math.nan
        speed = runs[M.TRAIN_TOKENS_PER_S].dropna()
        row["Train tok/s"] = f"{speed.median():,.0f}" if len(speed) else DASH
        num[M.TRAIN_TOKENS_PER_S] = float(speed.median()) if len(speed) else math.nan
        disp.append(row)
        nums.append(num)
    numbers = pd.DataFrame(nums)
    bold: set[tuple[int, str]] = set()
    if len(data.arms) > 1:
        for m in metrics:
            col = numbers[f"{m} mean"]
            best = col.max() if M.DIRECTIONS[m] == "maximize" else col.min()
            tied = col.index[col == best]
            if len(tied) < col.notna().sum():  # every arm tied (a demo that learned nothing): no winner
                bold.update((int(i), metric_label(m)) for i in tied)
    beams = sorted(int(b) for b in done["beam_size"].dropna().unique())
    beam_text = f"beam {', '.join(map(str, beams))}" if beams else "the runs' decoding"
    return Table(
        "summary",
        "Test results per arm",
        f"Mean ± sample std over seeds of completed runs (n seeds), test set decoded with {beam_text}; "
        "best mean in bold (all tied arms; none when every arm ties). Params: median parameter count; "
        "train tok/s: median over runs of each run's median target tokens/s per epoch.",
        pd.DataFrame(disp),
        numbers,
        bold=bold,
    )


def beam_scores(data: ReportData) -> pd.DataFrame:
    """Test scores of completed single models at every beam size evaluated (record's own + eval/)."""
    done = data.completed
    cols = ["arm", "run_dir", "seed", "beam_size", *RESULT_METRICS]
    own = done[cols]
    ev = data.evals[(data.evals["n_members"] == 1) & (data.evals["split"] == "test")].copy()
    ev["run_dir"] = ev["member_runs"].map(lambda runs: runs[0] if runs else None)
    ev = ev.drop(columns=["arm"], errors="ignore").merge(done[["run_dir", "arm", "seed"]], on="run_dir")
    both = pd.concat([ev[[c for c in cols if c in ev]], own], ignore_index=True)
    # An explicit evaluation wins over the record for the same beam (it is the newer measurement).
    both = both.drop_duplicates(["run_dir", "beam_size"], keep="first").dropna(subset=["beam_size"])
    return both.astype({"beam_size": int})


def _lstm_words(data: ReportData, arms: str | Sequence[str] | None) -> tuple[str, str]:
    """("reversed ", " (4 layers, peeky)") for an arm, as the paper's Table 1 words it; for an ensemble
    of several arms, the values they differ in are joined: " (1 layer + 2 layers, plain)"."""
    if arms is None:
        return "", ""
    arms = [arms] if isinstance(arms, str) else list(arms)
    axes = [data.arm_axes[arm] for arm in arms]

    def values(axis: str) -> str:
        return " + ".join(dict.fromkeys(axis_value_label(axis, a[axis]) for a in axes if axis in a))

    reverse = {a.get("data.reverse_source") for a in axes}
    one_direction = len(reverse) == 1 and None not in reverse
    direction = ("reversed " if reverse == {True} else "forward ") if one_direction else ""
    extras = [values(a) for a in data.varying if a != "data.reverse_source" or not one_direction]
    extras = [e for e in extras if e]
    return direction, f" ({', '.join(extras)})" if extras else ""


def table1(data: ReportData) -> Table | None:
    """Sutskever et al. (2014) Table 1: single forward/reversed LSTMs and ensembles of reversed LSTMs.

    Addition runs get it (in exact match) only once some of them were evaluated as an ensemble;
    without one it would repeat the summary table.
    """
    ens = data.evals[(data.evals["n_members"] > 1) & (data.evals["split"] == "test")].copy()
    if data.spec.exact_match and ens.empty:
        return None
    metrics = data.spec.table1
    scores = beam_scores(data)
    rows: list[tuple[dict, dict]] = []
    for arm in data.arms:
        runs = scores[scores["arm"] == arm]
        if len(runs):
            beam = runs["beam_size"].max()
            direction, extras = _lstm_words(data, arm)
            method = f"Single {direction}LSTM{extras}, beam {beam}"
            rows.append(_table1_row(metrics, method, runs[runs["beam_size"] == beam], "single", arm, 1, beam))
    for (arms, n_members, beam), runs in _ensemble_groups(data, ens):
        direction, extras = _lstm_words(data, arms or None)
        method = f"Ensemble of {n_members} {direction}LSTMs{extras}, beam {beam}"
        member_arm = arms[0] if len(arms) == 1 else None
        rows.append(_table1_row(metrics, method, runs, "ensemble", member_arm, n_members, beam))
    if not rows:
        return None
    what = (
        "BLEU is sacreBLEU on detokenized text, BLEU (tok) the paper-comparable score on tokenized text."
        if not data.spec.exact_match
        else "Exact match: the share of test questions answered exactly."
    )
    return Table(
        "table1",
        f"Table 1 layout (Sutskever et al., 2014): test {metric_phrase(metrics[0])}",
        "Single models at the largest beam evaluated for the arm (mean ± std over seeds, n runs); "
        "ensembles as evaluated by s2s evaluate with several runs (n evaluations). " + what,
        pd.DataFrame([row for row, _ in rows]),
        pd.DataFrame([num for _, num in rows]),
    )


def _table1_row(
    metrics, method: str, runs: pd.DataFrame, kind: str, arm, n_members, beam
) -> tuple[dict, dict]:
    """(display row, numbers row) of one Table 1 line: each metric's mean ± std over `runs`."""
    row = {"Method": method}
    num = {"method": method, "kind": kind, "arm": arm, "n_members": n_members, "beam_size": beam}
    for m in metrics:
        mean, std, n = stats(runs[m])
        row[metric_label(m)] = fmt_score(mean, std, n, m)
        num.update({f"{m} mean": mean, f"{m} std": std, f"{m} n": n})
    row["n"] = str(len(runs))
    return row, num


def _ensemble_groups(data: ReportData, ens: pd.DataFrame) -> list:
    """Ensemble evaluations grouped by (member arms, members, beam), in the arms' order: ensembles of the
    same arms (the seeds of one arm, or one mix of arms) are one row; other mixes are not."""
    arm_of = dict(zip(data.runs["run_dir"], data.runs["arm"].astype(str)))
    order = {arm: i for i, arm in enumerate(data.arms)}  # the arms' order, as in the single rows

    def member_arms(member_runs) -> tuple[str, ...]:  # () when a member is not one of the report's runs
        if not all(r in arm_of for r in member_runs):
            return ()
        return tuple(sorted({arm_of[r] for r in member_runs}, key=lambda a: order.get(a, len(order))))

    ens["arms"] = ens["member_runs"].map(member_arms)
    groups = ens.groupby(["arms", "n_members", "beam_size"])
    return sorted(
        groups, key=lambda g: (len(g[0][0]), [order.get(a, len(order)) for a in g[0][0]], *g[0][1:])
    )


def test_sets_table(data: ReportData) -> Table | None:
    """One column per test set: the runs' own test split, then every other set single runs were
    evaluated on (`s2s evaluate RUN --split NAME` or `--src/--ref`), each at its beam size."""
    done = data.completed
    metric = data.spec.primary
    ev = data.evals[
        (data.evals["n_members"] == 1) & ~data.evals["split"].isin(["test", "val", "train"])
    ].copy()
    if ev.empty:
        return None
    ev["run_dir"] = ev["member_runs"].map(lambda runs: runs[0] if runs else None)
    ev = ev.drop(columns=["arm"], errors="ignore").merge(done[["run_dir", "arm"]], on="run_dir")
    own = done.assign(split="test")[["arm", "run_dir", "split", "beam_size", metric]]
    scores = pd.concat([own, ev[["arm", "run_dir", "split", "beam_size", metric]]], ignore_index=True)
    scores = scores.dropna(subset=["beam_size"]).astype({"beam_size": int})
    sets = list(dict.fromkeys(zip(scores["split"], scores["beam_size"])))
    disp, nums = [], []
    for arm in data.arms:
        runs = scores[scores["arm"] == arm]
        row = {"Arm": arm}
        for split, beam in sets:
            mean, std, n = stats(runs.loc[(runs["split"] == split) & (runs["beam_size"] == beam), metric])
            row[f"{split} (beam {beam})"] = fmt_score(mean, std, n, metric)
            nums.append(
                {
                    "arm": arm,
                    "split": split,
                    "beam_size": beam,
                    "metric": metric,
                    "mean": mean,
                    "std": std,
                    "n": n,
                }
            )
        disp.append(row)
    return Table(
        "test_sets",
        f"Test {metric_phrase(metric)} by test set",
        f"Mean ± std over seeds of {metric} on each test set; sets other than the runs' own test split "
        "come from s2s evaluate RUN --split NAME (or --src/--ref), read with each run's own vocabulary "
        "and tokenization.",
        pd.DataFrame(disp),
        pd.DataFrame(nums),
    )


def word_f_table(data: ReportData) -> Table | None:
    rows = word_f_rows(data)
    if rows.empty:
        return None
    buckets = list(dict.fromkeys(rows.sort_values("max_freq")["bucket"]))
    disp, nums = [], []
    for arm in data.arms:
        runs = rows[rows["arm"] == arm]
        row = {"Arm": arm}
        for bucket in buckets:
            cell = runs[runs["bucket"] == bucket]
            mean, std, n = stats(cell["f"])
            row[bucket] = DASH if n == 0 else f"{mean:.3f}" + (f" ± {std:.3f}" if n > 1 else "")
            nums.append(
                {
                    "arm": arm,
                    "bucket": bucket,
                    "f mean": mean,
                    "f std": std,
                    "n": n,
                    "ref_words": int(cell["ref_words"].median()) if n else 0,
                }
            )
        disp.append(row)
    words = rows.groupby("bucket")["ref_words"].median()
    return Table(
        "word_f",
        "Word F-measure by frequency in training",
        "Test words bucketed by how often they occur in the training targets (column: training count); "
        "per bucket, the F-measure of the hypotheses' words against the references' (clipped counts per "
        "sentence, compare-mt's word accuracy analysis), mean ± std over seeds. Reference words per bucket: "
        + ", ".join(f"{b} {int(words[b])}" for b in buckets)
        + ".",
        pd.DataFrame(disp),
        pd.DataFrame(nums),
    )


def beam_table(data: ReportData) -> Table | None:
    scores = beam_scores(data)
    beams = sorted(scores["beam_size"].unique())
    if len(beams) < 2:
        return None
    metric = data.spec.primary
    disp, nums = [], []
    for arm in data.arms:
        runs = scores[scores["arm"] == arm]
        n_runs = runs["run_dir"].nunique()
        row = {"Arm": arm, "n": str(n_runs)}
        for beam in beams:
            mean, std, n = stats(runs.loc[runs["beam_size"] == beam, metric])
            row[f"Beam {beam}"] = fmt_score(mean, std, n, metric, n_runs)
            nums.append({"arm": arm, "beam_size": beam, "metric": metric, "mean": mean, "std": std, "n": n})
        disp.append(row)
    return Table(
        "beam",
        f"Test {metric_phrase(metric)} by beam size",
        f"Mean ± std over seeds of {metric}; beam sizes other than a run's own come from "
        "s2s evaluate RUN --beam K (eval/test_beamK/metrics.json).",
        pd.DataFrame(disp),
        pd.DataFrame(nums),
    )


def build_tables(data: ReportData) -> dict[str, Table]:
    tables = [
        summary_table(data),
        table1(data),
        test_sets_table(data),
        beam_table(data),
        word_f_table(data),
        significance_table(data),
        pooled_significance_table(data),
        health_table(data),
        failures_table(data),
        runs_table(data),
    ]
    return {t.name: t for t in tables if t is not None}
