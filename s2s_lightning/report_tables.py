"""Report tables: results per arm, the paper's Table 1, beam sizes, paired significance, sweep health.

Every table keeps its numbers (written as CSV at full precision) next to display strings (Markdown
for the README, LaTeX booktabs for a paper). Scores are means over the seeds of completed runs with
the sample standard deviation (ddof=1) and n; an arm with one seed shows no deviation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import metrics as M
from .analysis import (
    PAIRED_BOOTSTRAP_SAMPLES,
    exact_mcnemar,
    holm,
    paired_bleu,
    pooled_randomization,
    sentence_scores,
)
from .records import atomic_write_text, read_lines, split_file
from .report_data import ReportData, word_f_rows
from .report_labels import (
    DASH,
    PRIMARY,
    axis_name,
    axis_value_label,
    decimals,
    is_fraction,
    metric_label,
    metric_phrase,
    short_path,
)

RESULT_METRICS = (
    M.TEST_BLEU,
    M.TEST_BLEU_TOK,
    M.TEST_BLEU_TOK_LC,
    M.TEST_CHRF,
    M.TEST_EXACT_MATCH,
    M.TEST_TOKEN_ACC,
    M.TEST_PPL,
)
ALPHA = 0.05


def fmt_score(mean: float, std: float, n: int, metric: str, n_expected: int | None = None) -> str:
    """`27.31 ± 0.52`; a lone seed has no deviation; a count differing from the arm's is shown."""
    if n == 0:
        return DASH
    d = decimals(metric)
    if is_fraction(metric) and mean < 1 and round(mean, d) == 1:
        d += 1  # a fraction short of 1 never reads as a perfect "1.000"
    text = f"{mean:.{d}f}" + (f" ± {std:.{d}f}" if n > 1 else "")
    return text + (f" (n={n})" if n_expected is not None and n != n_expected else "")


def stats(values) -> tuple[float, float, int]:
    v = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").dropna()
    return (float(v.mean()) if len(v) else math.nan, float(v.std(ddof=1)) if len(v) > 1 else math.nan, len(v))


@dataclass
class Table:
    name: str  # file stem under tables/
    title: str
    caption: str  # plain text: what the numbers are
    display: pd.DataFrame  # strings, as printed
    data: pd.DataFrame  # numbers, for the CSV
    text_columns: int = 1  # leading columns aligned left, the rest right
    bold: set[tuple[int, str]] = field(default_factory=set)  # (row, column) of best values

    def _cells(self, wrap) -> list[list[str]]:
        return [
            [wrap(str(v)) if (i, c) in self.bold else str(v) for c, v in row.items()]
            for i, row in enumerate(self.display.to_dict("records"))
        ]

    def markdown(self) -> str:
        header = [str(c) for c in self.display.columns]
        rows = [[c.replace("|", "\\|") for c in r] for r in self._cells(lambda v: f"**{v}**")]
        widths = [max([len(h)] + [len(r[j]) for r in rows]) for j, h in enumerate(header)]

        def line(cells):
            return (
                "| "
                + " | ".join(
                    c.ljust(w) if j < self.text_columns else c.rjust(w) for j, (c, w) in enumerate(zip(cells, widths))
                )
                + " |"
            )

        rule = (
            "|"
            + "|".join(
                ":" + "-" * (w + 1) if j < self.text_columns else "-" * (w + 1) + ":" for j, w in enumerate(widths)
            )
            + "|"
        )
        return "\n".join([line(header), rule, *map(line, rows)])

    def latex(self) -> str:
        cols = "l" * self.text_columns + "r" * (len(self.display.columns) - self.text_columns)
        rows = self._cells(lambda v: "\x00" + v + "\x01")  # bold marks survive escaping

        def line(cells):
            return " & ".join(tex_escape(c).replace("\x00", r"\textbf{").replace("\x01", "}") for c in cells) + r" \\"

        return (
            "\n".join(
                [
                    r"\begin{table}[t]",
                    r"\centering",
                    rf"\caption{{{tex_escape(self.title)}. {tex_escape(self.caption)}}}",
                    rf"\label{{tab:{self.name}}}",
                    rf"\begin{{tabular}}{{{cols}}}",
                    r"\toprule",
                    line([str(c) for c in self.display.columns]),
                    r"\midrule",
                    *map(line, rows),
                    r"\bottomrule",
                    r"\end{tabular}",
                    r"\end{table}",
                ]
            )
            + "\n"
        )


_TEX = [
    ("\\", r"\textbackslash{}"),
    ("&", r"\&"),
    ("%", r"\%"),
    ("$", r"\$"),
    ("#", r"\#"),
    ("_", r"\_"),
    ("{", r"\{"),
    ("}", r"\}"),
    ("~", r"\textasciitilde{}"),
    ("^", r"\textasciicircum{}"),
    ("`", ""),
    ("±", r"$\pm$"),
    ("·", r"$\cdot$"),
    ("−", "$-$"),
    ("Δ", r"$\Delta$"),
    ("—", "--"),
    ("–", "--"),
    ("→", r"$\rightarrow$"),
    ("<", "$<$"),
    (">", "$>$"),
    ("×", r"$\times$"),
]


def tex_escape(text: str) -> str:
    # Specials first, then the Unicode that expands into $...$ (which must not be escaped again).
    for old, new in _TEX[:11]:
        text = text.replace(old, new)
    for old, new in _TEX[11:]:
        text = text.replace(old, new)
    return text


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
    bold = set()
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


TABLE1_METRICS = {"translation": (M.TEST_BLEU, M.TEST_BLEU_TOK), "addition": (M.TEST_EXACT_MATCH,)}


def table1(data: ReportData) -> Table | None:
    """Sutskever et al. (2014) Table 1: single forward/reversed LSTMs and ensembles of reversed LSTMs.

    Addition runs get it (in exact match) only once some of them were evaluated as an ensemble;
    without one it would repeat the summary table.
    """
    ens = data.evals[(data.evals["n_members"] > 1) & (data.evals["split"] == "test")].copy()
    if data.task == "addition" and ens.empty:
        return None
    metrics = TABLE1_METRICS[data.task]
    scores = beam_scores(data)
    disp, nums = [], []

    def add(method, runs, kind, arm, n_members, beam):
        row, num = (
            {"Method": method},
            {"method": method, "kind": kind, "arm": arm, "n_members": n_members, "beam_size": beam},
        )
        for m in metrics:
            mean, std, n = stats(runs[m])
            row[metric_label(m)] = fmt_score(mean, std, n, m)
            num.update({f"{m} mean": mean, f"{m} std": std, f"{m} n": n})
        row["n"] = str(len(runs))
        disp.append(row)
        nums.append(num)

    for arm in data.arms:
        runs = scores[scores["arm"] == arm]
        if len(runs):
            beam = runs["beam_size"].max()
            direction, extras = _lstm_words(data, arm)
            add(f"Single {direction}LSTM{extras}, beam {beam}", runs[runs["beam_size"] == beam], "single", arm, 1, beam)
    arm_of = dict(zip(data.runs["run_dir"], data.runs["arm"].astype(str)))
    order = {arm: i for i, arm in enumerate(data.arms)}  # the arms' order, as in the rows above

    def member_arms(member_runs) -> tuple[str, ...]:  # () when a member is not one of the report's runs
        if not all(r in arm_of for r in member_runs):
            return ()
        return tuple(sorted({arm_of[r] for r in member_runs}, key=lambda a: order.get(a, len(order))))

    # Ensembles of the same arms (the seeds of one arm, or one mix of arms) are one row; other mixes are not.
    ens["arms"] = ens["member_runs"].map(member_arms)
    groups = ens.groupby(["arms", "n_members", "beam_size"])
    for (arms, n_members, beam), runs in sorted(
        groups, key=lambda g: (len(g[0][0]), [order.get(a, len(order)) for a in g[0][0]], *g[0][1:])
    ):
        arm = arms[0] if len(arms) == 1 else None
        direction, extras = _lstm_words(data, arms or None)
        add(f"Ensemble of {n_members} {direction}LSTMs{extras}, beam {beam}", runs, "ensemble", arm, n_members, beam)
    if not disp:
        return None
    what = (
        "BLEU is sacreBLEU on detokenized text, BLEU (tok) the paper-comparable score on tokenized text."
        if data.task == "translation"
        else "Exact match: the share of test questions answered exactly."
    )
    return Table(
        "table1",
        f"Table 1 layout (Sutskever et al., 2014): test {metric_phrase(metrics[0])}",
        "Single models at the largest beam evaluated for the arm (mean ± std over seeds, n runs); "
        "ensembles as evaluated by s2s evaluate with several runs (n evaluations). " + what,
        pd.DataFrame(disp),
        pd.DataFrame(nums),
    )


def test_sets_table(data: ReportData) -> Table | None:
    """One column per test set: the runs' own test split, then every other set single runs were
    evaluated on (`s2s evaluate RUN --split NAME` or `--src/--ref`), each at its beam size."""
    done = data.completed
    metric = PRIMARY[data.task]
    ev = data.evals[(data.evals["n_members"] == 1) & ~data.evals["split"].isin(["test", "val", "train"])].copy()
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
            nums.append({"arm": arm, "split": split, "beam_size": beam, "metric": metric, "mean": mean, "std": std,
                         "n": n})  # fmt: skip
        disp.append(row)
    return Table(
        "test_sets",
        f"Test {metric_phrase(metric)} by test set",
        f"Mean ± std over seeds of {metric} on each test set; sets other than the runs' own test split come from "
        "s2s evaluate RUN --split NAME (or --src/--ref), read with each run's own vocabulary and tokenization.",
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
            nums.append({"arm": arm, "bucket": bucket, "f mean": mean, "f std": std, "n": n,
                         "ref_words": int(cell["ref_words"].median()) if n else 0})  # fmt: skip
        disp.append(row)
    words = rows.groupby("bucket")["ref_words"].median()
    return Table(
        "word_f",
        "Word F-measure by frequency in training",
        "Test words bucketed by how often they occur in the training targets (column: training count); "
        "per bucket, the F-measure of the hypotheses' words against the references' (clipped counts per sentence, "
        "compare-mt's word accuracy analysis), mean ± std over seeds. Reference words per bucket: "
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
    metric = PRIMARY[data.task]
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


# ---------------------------------------------------------------------------------- significance
def _test_files(run_dir: str) -> tuple[list[str], list[str]] | None:
    hyp, ref = Path(run_dir) / split_file("test", "hyp"), Path(run_dir) / split_file("test", "ref")
    return (read_lines(hyp), read_lines(ref)) if hyp.is_file() and ref.is_file() else None


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
    done = data.completed
    metric = PRIMARY[data.task]
    nums = []
    for a, b, axis in one_axis_pairs(data):
        runs_a = {s: r for s, r in zip(done.loc[done["arm"] == a, "seed"], done.loc[done["arm"] == a, "run_dir"])}
        runs_b = {s: r for s, r in zip(done.loc[done["arm"] == b, "seed"], done.loc[done["arm"] == b, "run_dir"])}
        for seed in sorted(set(runs_a) & set(runs_b), key=str):
            fa, fb = _test_files(runs_a[seed]), _test_files(runs_b[seed])
            if fa is None or fb is None or fa[1] != fb[1] or len(fa[0]) != len(fa[1]) or len(fb[0]) != len(fb[1]):
                continue  # no files, or not the same test set: nothing to pair
            (hyp_a, refs), (hyp_b, _) = fa, fb
            if data.task == "addition":
                ca = np.array([h == r for h, r in zip(hyp_a, refs)])
                cb = np.array([h == r for h, r in zip(hyp_b, refs)])
                sa, sb, p = ca.mean(), cb.mean(), exact_mcnemar(ca, cb)
            else:
                signature = done.loc[done["run_dir"] == runs_a[seed], "bleu_signature"].iloc[0]
                sa, sb, p = paired_bleu(hyp_a, hyp_b, refs, signature)
            nums.append(
                {
                    "axis": axis,
                    "arm_a": a,
                    "arm_b": b,
                    "seed": seed,
                    "score_a": sa,
                    "score_b": sb,
                    "delta": sb - sa,
                    "p_value": p,
                }
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
                "Δ (p) per seed": ", ".join(f"{x:+.{d}f} ({p:.3f})" for x, p in zip(g["delta"], g["p_value"])),
                "B / A better": f"{int((significant & (g['delta'] > 0)).sum())} / "
                f"{int((significant & (g['delta'] < 0)).sum())}",
            }
        )
    test = (
        "exact McNemar test (the exact paired permutation test) on per-sentence exact match"
        if data.task == "addition"
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
        fa, fb = _test_files(runs_a[seed]), _test_files(runs_b[seed])
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
    metric, nums = PRIMARY[data.task], []
    for a, b, axis in one_axis_pairs(data):
        seeds = _seed_pairs(data, a, b)
        if not seeds:
            continue
        pairs = [
            (sentence_scores(data.task, ha, refs), sentence_scores(data.task, hb, refs)) for _, _, ha, hb, refs in seeds
        ]
        score_a, score_b = [x.corpus() for x, _ in pairs], [y.corpus() for _, y in pairs]
        nums.append({
            "axis": axis, "arm_a": a, "arm_b": b, "seeds": len(seeds),
            "mean_a": float(np.mean(score_a)), "mean_b": float(np.mean(score_b)),
            "delta": float(np.mean(score_b) - np.mean(score_a)),
            "s_dev_a": float(np.std(score_a, ddof=1)) if len(seeds) > 1 else math.nan,
            "s_dev_b": float(np.std(score_b, ddof=1)) if len(seeds) > 1 else math.nan,
            "s_sel_a": float(np.nanmean([_selection_sd(data, ra) for ra, *_ in seeds])),
            "s_sel_b": float(np.nanmean([_selection_sd(data, rb) for _, rb, *_ in seeds])),
            "p_value": pooled_randomization(pairs),
        })  # fmt: skip
    if not nums:
        return None
    numbers = pd.DataFrame(nums)
    numbers["p_holm"] = holm(list(numbers["p_value"]))
    d = decimals(metric)

    def spread(dev: float, sel: float) -> str:
        return f"{DASH if math.isnan(dev) else f'{dev:.{d}f}'} / {DASH if math.isnan(sel) else f'{sel:.{d}f}'}"

    disp = pd.DataFrame({
        "Axis": numbers["axis"].map(axis_name), "A": numbers["arm_a"], "B": numbers["arm_b"],
        "Seeds": numbers["seeds"].astype(str), "Δ (B − A)": [f"{x:+.{d}f}" for x in numbers["delta"]],
        "A: s_dev / s_sel": [spread(x, y) for x, y in zip(numbers["s_dev_a"], numbers["s_sel_a"])],
        "B: s_dev / s_sel": [spread(x, y) for x, y in zip(numbers["s_dev_b"], numbers["s_sel_b"])],
        "p": [f"{p:.4f}" for p in numbers["p_value"]], "p (Holm)": [f"{p:.4f}" for p in numbers["p_holm"]],
    })  # fmt: skip
    bold = {(i, "p (Holm)") for i, p in enumerate(numbers["p_holm"]) if p < ALPHA}
    return Table(
        "significance_pooled",
        f"Pooled significance of {metric_phrase(metric)} over seeds",
        "Each pair of arms that differ in one axis, compared once over all seeds (MultEval's way): Δ is the mean "
        "over seeds of B − A; s_dev is the sd of an arm's score across seeds (training variance), s_sel the sd "
        "across bootstrap resamples of the test set (from each run's 95% interval, mean over seeds); p comes "
        "from approximate randomization (1,000 shuffles of each sentence's A and B outputs within its seed), "
        f"corrected for the table's pairs by Holm's method; bold: p (Holm) < {ALPHA}.",
        disp,
        numbers,
        text_columns=3,
        bold=bold,
    )


# -------------------------------------------------------------------------------- health and runs
_TRIAL_STATES = {
    "COMPLETE": "completed",
    "FAIL": "failed",
    "INTERRUPTED": "interrupted",
    "PRUNED": "pruned",
    "RUNNING": "running",
    "WAITING": "waiting",
}


def health_table(data: ReportData) -> Table:
    """Run directories by their record's status, next to Optuna trials by state (grid and tuning) for a
    study source: a retried trial shares its run directory with the attempts before it, so trials can
    outnumber run directories."""
    columns = {"Run directories": (data.runs["status"], data.runs["wall_time_s"])}
    if data.trials is not None:
        for title, part in [
            ("Optuna trials", data.trials[~data.trials["tuning"]]),
            ("Tuning trials", data.trials[data.trials["tuning"]]),
        ]:
            if title == "Optuna trials" or len(part):
                states = part["state"].map(lambda s: _TRIAL_STATES.get(s, s.lower()))
                walls = part["wall_time_s"] if title == "Tuning trials" else None  # grid runs: in Run directories
                columns[title] = (states, walls, int((~part["has_record"]).sum()))
    statuses = ["completed", "failed", "pruned", "interrupted", "running", "waiting"]
    seen = set().union(*(set(c[0]) for c in columns.values()))
    statuses = [s for s in statuses if s in ("completed", "failed", "running") or s in seen]
    statuses += sorted(seen - set(statuses))
    items = ["total", *statuses]
    if data.trials is not None:
        items.append("without a run record")
    items.append("compute hours (sum of wall_time_s)")
    values = {}
    for title, (states, walls, *missing) in columns.items():
        counts = states.value_counts()
        hours = None if walls is None else float(round(walls.fillna(0).sum() / 3600, 3))
        unrecorded = [missing[0] if missing else None] if data.trials is not None else []
        values[title] = [len(states), *(int(counts.get(s, 0)) for s in statuses), *unrecorded, hours]
    disp = pd.DataFrame(
        {
            "": items,
            **{
                title: [DASH if v is None else f"{v:.2f}" if isinstance(v, float) else str(v) for v in column]
                for title, column in values.items()
            },
        }
    )
    numbers = pd.DataFrame({"item": items, **values})
    return Table(
        "health",
        "Sweep health",
        "Every run directory and trial found, whatever its status; each run directory counts once, "
        "as its record says (a retried trial reuses its run directory, so trials can outnumber them); only "
        "completed runs of the study's grid enter the results. Compute counts failed runs too.",
        disp,
        numbers,
    )


def failures_table(data: ReportData) -> Table | None:
    bad = data.runs[data.runs["status"].isin(["failed", "interrupted"])]
    if bad.empty:
        return None
    disp = pd.DataFrame(
        {
            "Run": bad["run_dir"].map(short_path),
            "Arm": bad["arm"].astype(str),
            "Seed": bad["seed"].astype(str),
            "Status": bad["status"],
            "Error": bad["error"].fillna("").astype(str),
        }
    )
    return Table(
        "failures",
        "Failed and interrupted runs",
        "The error line each record holds.",
        disp.reset_index(drop=True),
        bad[["run_dir", "arm", "seed", "status", "error"]],
        text_columns=5,
    )


def runs_table(data: ReportData) -> Table:
    metric = PRIMARY[data.task]
    runs = data.runs
    d = decimals(metric)

    def num(v, digits):
        return DASH if v is None or pd.isna(v) else f"{v:.{digits}f}"

    disp = pd.DataFrame(
        {
            "Run": runs["run_dir"].map(short_path),
            "Arm": runs["arm"].astype(str),
            "Seed": runs["seed"].astype(str),
            "Status": runs["status"],
            metric_label(metric): [num(v, d) for v in runs[metric]],
            "Perplexity": [num(v, 2) for v in runs[M.TEST_PPL]],
            "Epochs": [DASH if pd.isna(v) else str(int(v)) for v in runs["epochs_completed"]],
            "Minutes": [num(v / 60 if v is not None and not pd.isna(v) else None, 1) for v in runs["wall_time_s"]],
            "Tokens/s": [num(v, 0) for v in runs[M.TRAIN_TOKENS_PER_S]],
            "Peak MiB": [num(v, 0) for v in runs["peak_memory_mb"]],
        }
    )
    nested = ("config", "history", "analysis", "representations", "versions", "axes", "word_f")
    scalar = [c for c in runs.columns if c not in nested]
    return Table(
        "runs",
        "Runs",
        "Every run record the report read (test scores at the run's own beam; "
        "tokens/s: median target tokens/s over epochs; peak memory: the process's max RSS on CPU, "
        "the allocator's peak on GPU).",
        disp,
        runs[scalar],
        text_columns=4,
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


def write_tables(tables: dict[str, Table], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for old in [*folder.glob("*.md"), *folder.glob("*.tex"), *folder.glob("*.csv")]:
        old.unlink()  # a table that no longer applies must not survive from an earlier report
    for name, table in tables.items():
        atomic_write_text(folder / f"{name}.md", f"**{table.title}.** {table.caption}\n\n{table.markdown()}\n")
        atomic_write_text(folder / f"{name}.tex", table.latex())
        atomic_write_text(folder / f"{name}.csv", table.data.to_csv(index=False))
