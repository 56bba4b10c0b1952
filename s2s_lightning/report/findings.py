"""What the ablation found, from effects.py: the effects table and the README's Findings, in words.

One sentence per resolved effect (its size, interval and Holm-adjusted p), one per unresolved effect
with the seeds per arm that would resolve it, one per effect the design cannot estimate, and the
caveats (axes held fixed, one seed per arm, intervals without test-set resampling, runs whose validation
perplexity was still falling when training stopped).
"""

from __future__ import annotations

import pandas as pd

from .. import metrics as M
from ..analysis import ALPHA, sentence_scores
from ..errors import S2SError
from .effects import POWER, UNTESTABLE, Effect, Effects, estimate
from .labels import DASH, axis_name, axis_value_label, decimals, metric_label, metric_phrase
from .load import ReportData, val_history
from .significance import test_files
from .table import Table

# A last epoch that lowers validation perplexity by more than this share: the run was still learning.
STILL_FALLING = 0.01


def effects_of(data: ReportData, metric: str) -> Effects | None:
    """The effects of the report's varying axes on `metric`, or None with no axis varying. Test
    sentences are resampled when `metric` is the primary one and every run's test files are there."""
    if metric not in data.runs or data.completed[metric].notna().sum() == 0:
        recorded = sorted(
            c for c in data.runs.columns if c.startswith("test/") and data.runs[c].notna().any()
        )
        raise S2SError(f"--metric {metric}: no completed run records it (recorded: {', '.join(recorded)})")
    if not data.varying:
        return None
    runs = data.completed.copy()
    sentences = None
    if metric == data.spec.primary:
        found = {r: test_files(r) for r in runs["run_dir"]}
        files = {r: f for r, f in found.items() if f is not None and len(f[0]) == len(f[1])}
        if len(files) == len(found):
            refs = {tuple(f[1]) for f in files.values()}
            if len(refs) == 1:  # one shared test set: one sentence weight draw fits every run
                sentences = {r: sentence_scores(data.task, hyp, ref) for r, (hyp, ref) in files.items()}
    return estimate(runs, list(data.varying), metric, sentences)


def label(row: Effect) -> str:
    """`source order (reversed vs forward)`; `source order × decoder (reversed, peeky)`."""
    names = " × ".join(axis_name(a) for a in row.axes)
    if row.kind == "omnibus":
        return f"{names} (any level vs {axis_value_label(row.axes[0], row.bases[0])})"
    if row.kind == "main":
        axis = row.axes[0]
        return f"{names} ({axis_value_label(axis, row.levels[0])} vs {axis_value_label(axis, row.bases[0])})"
    return f"{names} ({', '.join(axis_value_label(a, v) for a, v in zip(row.axes, row.levels))})"


def _p(p: float | None) -> str:
    """A p-value to 4 decimals; `< 0.0001` below that."""
    if p is None:
        return DASH
    return "< 0.0001" if p < 0.0001 else f"{p:.4f}"


def _holm_p(row: Effect) -> str:
    return _p(row.p_holm)


def effects_table(effects: Effects) -> Table:
    d = decimals(effects.metric)
    numbers, disp = [], []
    for row in effects.rows:
        numbers.append(
            {
                "effect": label(row),
                "kind": row.kind,
                "estimate": row.estimate,
                "low": row.low,
                "high": row.high,
            }
            | {"p": row.p, "p_holm": row.p_holm, "resolved": row.resolved, "matched": row.matched}
            | {"seeds_needed": row.seeds_needed, "note": row.why}
        )
        if row.estimate is None:
            size = interval = "not tested" if row.why == UNTESTABLE else "not estimable"
        elif row.p is None:
            size, interval = f"{row.estimate:+.{d}f}", "none"
        elif row.kind == "omnibus":
            size, interval = f"Wald {row.estimate:.1f}", DASH
        else:
            size, interval = f"{row.estimate:+.{d}f}", f"{row.low:+.{d}f} to {row.high:+.{d}f}"
        disp.append(
            {"Effect": label(row), "Kind": row.kind, "Δ": size, "95% interval": interval}
            | {"p": _p(row.p), "p (Holm)": _holm_p(row)}
            | {"Resolved": _resolved(row, effects)}
            | {"Seeds per arm to resolve": _needed(row)}
        )
    bold = {(i, "p (Holm)") for i, row in enumerate(effects.rows) if row.resolved}
    return Table(
        "effects",
        f"Effects of the scientific axes on {metric_phrase(effects.metric)}",
        _method(effects) + f" Resolved: p (Holm) < {ALPHA} and an interval that excludes 0.",
        pd.DataFrame(disp),
        pd.DataFrame(numbers),
        text_columns=2,
        bold=bold,
    )


def _resolved(row: Effect, effects: Effects) -> str:
    if row.estimate is None:
        return DASH
    if row.p is None:
        return "untested"
    if not row.resolved:
        return "no"
    return "yes (test set only)" if effects.one_seed else "yes"


def _needed(row: Effect) -> str:
    if row.resolved or row.estimate is None or row.p is None or row.kind == "omnibus":
        return DASH
    if row.seeds_needed is not None:
        return str(row.seeds_needed)
    return "a larger test set" if row.why else "unknown (one seed per arm)"


def _method(effects: Effects) -> str:
    parts = []
    if effects.seed_sd is not None:
        parts.append(f"the seeds' variance within arms (t with {effects.seed_df} degrees of freedom)")
    if effects.sentences:
        parts.append(
            f"the test set's ({effects.samples} bootstrap resamples of its sentences, shared by all runs)"
        )
    text = (
        f"Δ: the change in {metric_phrase(effects.metric)} from each axis's base level, averaged over the "
        "other axes' levels where the design has both arms; an interaction is the difference of "
        f"differences over each complete 2x2 square of arms. Intervals and p: t-based, from "
        f"{' and '.join(parts) or 'nothing (no source of variance)'}; an axis of more than two levels also "
        f"gets an omnibus Wald test. Seeds per arm to resolve: for {POWER:.0%} power at p < {ALPHA} by the "
        "same law, at the pooled seed-to-seed sd"
    )
    text += f" ({effects.seed_sd:.{decimals(effects.metric) + 1}f})." if effects.seed_sd is not None else "."
    if effects.one_seed and not effects.sentences:
        text += (
            " One seed per arm and no per-sentence scores for this metric: sizes only, no intervals or tests."
        )
    elif effects.one_seed:
        text += " One seed per arm: the intervals reflect test-set sampling only, not training variance."
    elif not effects.sentences:
        text += (
            " Test sentences were not resampled (no per-sentence scores for this metric): seed variance only."
        )
    return text


def findings(effects: Effects, data: ReportData) -> list[str]:
    """The README's Findings: a sentence per effect, then the caveats."""
    d = decimals(effects.metric)
    name = metric_phrase(effects.metric)
    lines = []
    for row in effects.rows:
        if row.estimate is None:
            what = "not tested" if row.why == UNTESTABLE else "not estimable"
            lines.append(f"- {_cap(label(row))}: {what} ({row.why}).")
        elif row.p is None:
            lines.append(f"- {_cap(label(row))}: {row.estimate:+.{d}f}, untested ({row.why}).")
        elif row.kind == "omnibus":
            verdict = "its levels differ" if row.resolved else "no difference among its levels is resolved"
            lines.append(
                f"- {_cap(axis_name(row.axes[0]))}: {verdict} (omnibus Wald test, p (Holm) {_holm_p(row)})."
            )
        elif row.resolved:
            lines.append(
                f"- {_cap(label(row))}: {name} {_change(row, d)} ({_interval(row, d, effects)})"
                + ("; resolved against test-set sampling only (one run per arm)" if effects.one_seed else "")
                + "."
            )
        else:
            size = f"{row.estimate:+.{d}f} ({_interval(row, d, effects)})"
            lines.append(f"- {_cap(label(row))}: {size}: unresolved; {_advice(row)}.")
    return lines + _caveats(effects, data)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _change(row: Effect, d: int) -> str:
    estimate = row.estimate
    assert estimate is not None  # only estimated effects are described
    if row.kind == "interaction":
        a, b = (axis_value_label(x, v) for x, v in zip(row.axes, row.levels))
        b0 = axis_value_label(row.axes[1], row.bases[1])
        more = "more" if estimate >= 0 else "less"
        return f"gains {abs(estimate):.{d}f} {more} from {a} with {b} than with {b0}"
    return f"{'rises' if estimate > 0 else 'falls'} by {abs(estimate):.{d}f}"


def _interval(row: Effect, d: int, effects: Effects) -> str:
    return f"95% interval {row.low:+.{d}f} to {row.high:+.{d}f}, p (Holm) {_holm_p(row)}"


def _advice(row: Effect) -> str:
    if row.seeds_needed is not None:
        return (
            f"about {row.seeds_needed} seeds per arm would resolve an effect of this size "
            "(add seeds to the budget and run the study anew: it adopts the runs it has)"
        )
    return row.why or "one seed per arm gives no seed-to-seed sd to size more seeds by"


def _caveats(effects: Effects, data: ReportData) -> list[str]:
    out = []
    fixed = [a for a in data.axes if a not in data.varying]
    if fixed:
        values = ", ".join(axis_value_label(a, data.arm_axes[data.arms[0]][a], long=True) for a in fixed)
        out.append(f"- Caveat: every arm has {values}; the effects above hold at that setting only.")
    if effects.one_seed and not effects.sentences:
        out.append(
            f"- Caveat: one seed per arm and no per-sentence scores for {metric_label(effects.metric)}, so "
            "the effects above are sizes without intervals or tests."
        )
    elif effects.one_seed:
        out.append(
            "- Caveat: one seed per arm, so the intervals reflect test-set sampling only, not training "
            "variance; no seed count can be sized from these runs."
        )
    elif not effects.sentences:
        out.append(
            "- Caveat: the test sentences were not resampled (no per-sentence scores for "
            f"{metric_label(effects.metric)}), so the intervals reflect seed variance only."
        )
    return out + _still_learning(data)


def _still_learning(data: ReportData) -> list[str]:
    """A caveat when completed runs' validation perplexity still fell by more than STILL_FALLING in
    their last epoch: their effects are measured before convergence, at this training budget."""
    history = val_history(data)
    if history is None:
        return []
    drops, arms, curves = [], set(), 0
    for (_, arm), h in history.dropna(subset=[M.VAL_PPL]).groupby(["run_dir", "arm"], sort=False):
        ppl = h.groupby("epoch")[M.VAL_PPL].last()
        if len(ppl) < 2:
            continue
        curves += 1
        drop = 1 - ppl.iloc[-1] / ppl.iloc[-2]
        if drop > STILL_FALLING and ppl.iloc[-1] <= ppl.min():
            drops.append(drop)
            arms.add(arm)
    if not drops:
        return []
    span = f"{min(drops):.1%}" if len(drops) == 1 else f"{min(drops):.1%} to {max(drops):.1%}"
    return [
        f"- Caveat: validation perplexity was still falling when training stopped in {len(drops)} of "
        f"{curves} runs ({len(arms)} of {data.completed['arm'].nunique()} arms; by {span} in the last "
        "epoch), so the effects above are those of this training budget; more epochs may change them."
    ]
