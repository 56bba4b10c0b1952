"""What a study holds and what it would run: `s2s sweep status` (arms x seeds with their states and
objective values) and `s2s sweep run --dry-run` (every arm x seed's `s2s train` command, and the
checks made before anything is enqueued)."""

from __future__ import annotations

import os
import shlex
import statistics
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ..errors import S2SError
from .plan import FULL, Plan, count, expand, grid_text, load_ablation
from .rundir import grid_run_dir, train_args
from .storage import (
    SLOT,
    STOPPED,
    grid_key,
    is_stale,
    open_storage,
    open_studies,
    storage_exists,
    storage_label,
)


def status_rows(plan: Plan, main, tuning: dict) -> list[dict]:
    """One row per arm: its tuning progress and, per seed, the state and objective value."""
    order = {
        TrialState.COMPLETE: 0,
        TrialState.RUNNING: 1,
        TrialState.WAITING: 2,
        TrialState.FAIL: 3,
        TrialState.PRUNED: 4,
    }
    trials = main.get_trials(deepcopy=False) if main is not None else []
    rows = []
    for arm in plan.arms:
        row: dict = {"arm": arm.name, "seeds": {}}
        for seed in plan.seeds:
            attempts = sorted(
                (t for t in trials if grid_key(t) == (arm.name, seed)), key=lambda t: order[t.state]
            )
            t = attempts[0] if attempts else None
            state = (
                "-"
                if t is None
                else "stale"
                if is_stale(t)
                else "interrupted"  # the sweep was stopped by a signal: the next `sweep run` resumes it
                if t.state == TrialState.FAIL and t.user_attrs.get(STOPPED)
                else {
                    TrialState.COMPLETE: "done",
                    TrialState.RUNNING: "running",
                    TrialState.WAITING: "waiting",
                    TrialState.FAIL: "failed",
                    TrialState.PRUNED: "pruned",
                }[t.state]
            )
            row["seeds"][seed] = {
                "state": state,
                "value": t.value if t is not None and state == "done" else None,
                "trial": None if t is None else t.number,
            }
        if arm.name in tuning:
            tt = [
                t for t in tuning[arm.name].get_trials(deepcopy=False) if t.user_attrs.get(SLOT) is not None
            ]
            done = [t for t in tt if t.state == TrialState.COMPLETE]
            pick = max if plan.tuning_direction == "maximize" else min
            row["tuning"] = {
                "done": len(done),
                "pruned": sum(t.state == TrialState.PRUNED for t in tt),
                "failed": sum(t.state == TrialState.FAIL for t in tt),
                "running": sum(t.state == TrialState.RUNNING for t in tt),
                "best": pick(t.value for t in done) if done else None,
            }
        rows.append(row)
    return rows


def format_status(plan: Plan, rows: list[dict], storage: str) -> str:
    head = [f"study {plan.study}: objective {plan.objective} ({plan.direction}); storage {storage}"]
    cols = (
        ["arm"]
        + (["tuning"] if plan.nuisance_trials else [])
        + [f"seed{s}" for s in plan.seeds]
        + ["mean", "sd"]
    )
    table = []
    counts: dict[str, int] = {}
    for row in rows:
        line = [row["arm"]]
        if plan.nuisance_trials:
            t = row.get("tuning") or {"done": 0, "pruned": 0, "failed": 0, "running": 0, "best": None}
            finished = t["done"] + t["pruned"] + t["failed"]
            line.append(
                f"{finished}/{plan.nuisance_trials}"
                + (f" {t['pruned']}p" if t["pruned"] else "")
                + (f" {t['failed']}f" if t["failed"] else "")
                + (f" best {t['best']:.4g}" if t["best"] is not None else "")
            )
        values = []
        for seed in plan.seeds:
            cell = row["seeds"][seed]
            counts[cell["state"]] = counts.get(cell["state"], 0) + 1
            line.append(
                f"{cell['state']} {cell['value']:.4g}" if cell["value"] is not None else cell["state"]
            )
            if cell["value"] is not None:
                values.append(cell["value"])
        line.append(f"{statistics.mean(values):.4g}" if values else "")
        line.append(f"{statistics.stdev(values):.2g}" if len(values) > 1 else "")
        table.append(line)
    widths = [max(len(str(r[i])) for r in [cols] + table) for i in range(len(cols))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip() for r in [cols] + table]
    total = len(rows) * len(plan.seeds)
    summary = ", ".join(
        f"{counts[k]} {'not started' if k == '-' else k}"
        for k in ("done", "running", "waiting", "interrupted", "failed", "stale", "-")
        if counts.get(k)
    )
    return "\n".join(
        head
        + lines
        + [f"grid: {total} points ({count(len(rows), 'arm')} x {count(len(plan.seeds), 'seed')}): {summary}"]
    )


def sweep_status(
    ablation: str | Path, budget: str = FULL, storage: str | None = None, runs_dir: str | Path = "runs"
) -> str:
    plan = expand(load_ablation(ablation), budget)
    label = storage_label(storage, runs_dir)
    main, tuning = None, dict[str, optuna.Study]()
    if storage_exists(storage, runs_dir):  # read only: a status never creates or writes a storage
        main, tuning = open_studies(
            open_storage(storage, runs_dir, create=False), plan, create=False, label=label
        )
    text = format_status(plan, status_rows(plan, main, tuning), label)
    return text if main is not None else text + f"\n(study {plan.study} not started)"


def preflight(plan: Plan, fetch: bool) -> list[str]:
    """What every trial will need, checked once before anything is enqueued: the data (present, fetched
    now with `fetch`, or downloadable). A problem all trials would share fails here, whole, instead of
    once per trial. Returns a line per distinct data source."""
    from ..config import build_config
    from ..corpus import check_data

    seen, lines = set(), []
    for arm in plan.arms:
        cfg = build_config({}, plan.overrides(arm, plan.seeds[0]))
        key = repr(cfg.data.model_dump(exclude={"reverse_source"}))
        if key not in seen:
            seen.add(key)
            if cfg.data.name != "addition":
                lines.append(f"data: {check_data(cfg.data, cfg.seed, fetch)}")
    return lines


def check_creatable(folder: Path) -> None:
    """That `sweep run` could write `folder`, checked without creating anything (for --dry-run)."""
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise S2SError(f"runs folder {folder} is not writable ({existing} is not a writable folder)")


def dry_run(ablation: str | Path, budget: str = FULL, runs_dir: str | Path = "runs") -> str:
    """What `s2s sweep run` would train: one `s2s train` command line per arm x seed, and the tuning
    trials; nothing is started and no storage is opened."""
    plan = expand(load_ablation(ablation), budget)
    check_creatable(Path(runs_dir))
    lines = [
        f"study {plan.study}: {grid_text(plan)} = {len(plan.arms) * len(plan.seeds)} runs (nothing started)",
        *preflight(plan, fetch=False),
    ]
    if plan.nuisance_trials:
        lines.append(
            f"first {plan.nuisance_trials} tuning trials per arm ({', '.join(plan.nuisance)}, sampled "
            f"when they run, seed {plan.ablation.spec.nuisance.seed}); every run below then trains with "
            "its arm's best values"
        )
    for arm in plan.arms:
        for seed in plan.seeds:
            name = f"{arm.name}-seed{seed}"
            overrides = plan.overrides(arm, seed, name=name, group=plan.study)
            run_dir = grid_run_dir(Path(runs_dir), plan, arm.name, seed)
            lines.append(shlex.join(["s2s", "train", *train_args(plan, run_dir, False, overrides)]))
    return "\n".join(lines)
