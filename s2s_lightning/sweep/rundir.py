"""The run directory of a trial: where it is, and what a trial does with what it finds there.

Grid runs live in `<runs-dir>/<study>/<arm>/seed<k>`. Before a trial trains, `decide` looks at that
directory under its lock (one writer per run, whatever the storage handed out): it adopts a completed
run of the same config, resumes an attempt whose worker died, or moves a failed attempt aside into
`<runs-dir>/<study>/.attempts/` and starts fresh.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial

from ..config import Config, build_config, read_yaml, science_differences
from ..errors import S2SError
from ..records import (
    COMPLETED,
    CONFIG_FILE,
    INTERRUPTED,
    LOCK_FILE,
    RECORD_FILE,
    RUNNING,
    RunBusy,
    RunKey,
    checkpoint_path,
    read_json,
    record_status,
    run_lock,
    write_json,
)
from .plan import Plan, format_overrides
from .storage import retryable

FRESH, RESUME, ADOPT = "fresh", "resume", "adopt"


def train_args(plan: Plan, run_dir: Path, resume: bool, overrides: dict[str, Any]) -> list[str]:
    """The `s2s train` arguments of one trial (after `s2s train`)."""
    axes = [word for axis in plan.extra_axes for word in ("--axis", axis)]
    return ["--run-dir", str(run_dir), *(["--resume"] if resume else []), *axes, *format_overrides(overrides)]


def grid_run_dir(runs_dir: Path, plan: Plan, arm: str, seed: int) -> Path:
    return Path(runs_dir) / plan.study / arm / f"seed{seed}"


def _same_run(run_dir: Path, config: Config | None) -> bool:
    """Whether the run in `run_dir` trained what `config` asks for (RUN_ONLY_KEYS aside)."""
    if config is None:
        return False
    try:
        saved = build_config(read_yaml(run_dir / CONFIG_FILE))
    except S2SError:
        return False
    return not science_differences(saved, config)


def adoptable(run_dir: Path, plan: Plan) -> bool:
    """Whether `run_dir` (RUNS/STUDY/ARM/seedN) holds a completed run that this plan's grid trial of
    that arm and seed would adopt: its config is the trial's (known in advance only without tuning)."""
    arm = next((a for a in plan.arms if a.name == run_dir.parent.name), None)
    seeds = {f"seed{s}": s for s in plan.seeds}
    if arm is None or run_dir.name not in seeds or plan.nuisance_trials:
        return False
    if record_status(run_dir) != COMPLETED:
        return False
    return _same_run(run_dir, build_config({}, plan.overrides(arm, seeds[run_dir.name])))


def _decide(
    run_dir: Path, previous: list[FrozenTrial], number: int, log, config: Config | None = None
) -> str:
    """What to do with a trial's run directory; called with the directory's lock held, so nothing here
    ever touches a run that a live process writes.

    ADOPT: it holds a completed run of this grid point, either one whose trial could not store it (its
    worker was judged dead while the run went on) or one whose config is the trial's `config` (the
    study was deleted and created again, or an ablation budget gained arms): the result is taken, not
    trained again. RESUME: an attempt whose worker died left a last checkpoint. FRESH: otherwise; a
    failed attempt, or a run of another config, is moved aside, and said so.
    """
    attic = run_dir.parent.parent / ".attempts" / f"{run_dir.parent.name}-{run_dir.name}-before-trial{number}"
    if not (run_dir / RECORD_FILE).exists():  # an attempt refused before it started: keep its log
        leftovers = [c for c in run_dir.iterdir() if c.name != LOCK_FILE] if run_dir.exists() else []
        if leftovers:
            attic.mkdir(parents=True, exist_ok=True)
            for child in leftovers:
                shutil.move(str(child), str(attic / child.name))
            log(
                f"moved what a failed attempt left in {run_dir} ({', '.join(c.name for c in leftovers)}) "
                f"to {attic}"
            )
        return FRESH
    if record_status(run_dir) == COMPLETED:
        if previous:
            return ADOPT
        if _same_run(run_dir, config):
            log(f"{run_dir} holds a completed run of this trial's config: adopted, not trained again")
            return ADOPT
    last_attempt = max(previous, key=lambda t: t.number, default=None)
    if last_attempt is not None and retryable(last_attempt) and checkpoint_path(run_dir, "last").is_file():
        return RESUME
    # A real failure is kept for inspection, out of the way of `<arm>/seed*/` globs.
    attic.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(run_dir), str(attic))
    log(f"moved the failed attempt in {run_dir} to {attic}")
    return FRESH


def close_record(run_dir: Path, why: str) -> None:
    """A killed `s2s train` cannot write its final status; say what happened so readers never see
    'running'."""
    path = run_dir / RECORD_FILE
    if path.is_file():
        record = read_json(path)
        if record.get(RunKey.STATUS) == RUNNING:
            record.update(status=INTERRUPTED, error=why)
            write_json(path, record)


def decide(
    run_dir: Path,
    previous: list[FrozenTrial],
    number: int,
    config: Config,
    log: Callable[[str], None],
    heartbeat: Callable[[], None],
    poll_s: float,
) -> str:
    """_decide under the run directory's lock, waiting (calling `heartbeat`) while another live process
    writes it: one writer per run, whatever the storage handed out."""
    waited = False
    while True:
        try:
            with run_lock(run_dir):
                return _decide(run_dir, previous, number, log, config)
        except RunBusy:
            if not waited:
                log(f"{run_dir} is being written by another process; waiting for it to end")
                waited = True
            heartbeat()
            time.sleep(poll_s)
