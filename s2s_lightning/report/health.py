"""Sweep health: run directories by status next to Optuna trials by state, the failed runs with their
errors, and every run with its cost."""

from __future__ import annotations

import pandas as pd

from .. import metrics as M
from ..records import COMPLETED, FAILED, INTERRUPTED, RUNNING
from .labels import (
    DASH,
    decimals,
    metric_label,
    short_path,
)
from .load import ReportData
from .table import Table

# -------------------------------------------------------------------------------- health and runs
_TRIAL_STATES = {
    "COMPLETE": COMPLETED,
    "FAIL": FAILED,
    "INTERRUPTED": INTERRUPTED,
    "PRUNED": "pruned",
    "RUNNING": RUNNING,
    "WAITING": "waiting",
}


def health_table(data: ReportData) -> Table:
    """Run directories by their record's status, next to Optuna trials by state (grid and tuning) for a
    study source: a retried trial shares its run directory with the attempts before it, so trials can
    outnumber run directories."""
    # title -> (statuses, wall times or None, trials without a run record or None)
    columns: dict[str, tuple[pd.Series, pd.Series | None, int | None]] = {
        "Run directories": (data.runs["status"], data.runs["wall_time_s"], None)
    }
    if data.trials is not None:
        for title, part in [
            ("Optuna trials", data.trials[~data.trials["tuning"]]),
            ("Tuning trials", data.trials[data.trials["tuning"]]),
        ]:
            if title == "Optuna trials" or len(part):
                states = part["state"].map(lambda s: _TRIAL_STATES.get(s, s.lower()))
                walls = (
                    part["wall_time_s"] if title == "Tuning trials" else None
                )  # grid runs: in Run directories
                columns[title] = (states, walls, int((~part["has_record"]).sum()))
    statuses = [COMPLETED, FAILED, "pruned", INTERRUPTED, RUNNING, "waiting"]
    seen = set().union(*(set(c[0]) for c in columns.values()))
    statuses = [s for s in statuses if s in (COMPLETED, FAILED, RUNNING) or s in seen]
    statuses += sorted(seen - set(statuses))
    items = ["total", *statuses]
    if data.trials is not None:
        items.append("without a run record")
    items.append("compute hours (sum of wall_time_s)")
    values = {}
    for title, (states, walls, missing) in columns.items():
        counts = states.value_counts()
        hours = None if walls is None else float(round(walls.fillna(0).sum() / 3600, 3))
        unrecorded = [missing] if data.trials is not None else []
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
    bad = data.runs[data.runs["status"].isin([FAILED, INTERRUPTED])]
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
    metric = data.spec.primary
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
            "Minutes": [
                num(v / 60 if v is not None and not pd.isna(v) else None, 1) for v in runs["wall_time_s"]
            ],
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
