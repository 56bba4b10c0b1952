"""One trial of a sweep, by job: choosing what it trains, running `s2s train` as a subprocess and
supervising it, and storing its result in the study.

A subprocess per trial means a crash kills one trial, not the sweep; DDP inside a trial works (a
fresh process); and it is the same command line a W&B agent runs. While it trains, the worker polls
the run's history.csv, reports the tuning metric per epoch (so optuna-dashboard plots learning curves
and the arm's pruner can stop a weak nuisance trial) and writes a heartbeat. Grid trials are never
pruned. The subprocess dies with its worker (PR_SET_PDEATHSIG), so a killed worker leaves no orphan
writing into a run directory that a retry is about to reuse.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from ..config import Config, build_config
from ..records import (
    COMPLETED,
    HISTORY_FILE,
    LOG_FILE,
    RECORD_FILE,
    RUNNING,
    RunKey,
    RunRecord,
    as_float,
    read_history,
    read_record,
)
from .launch import SweepLaunch, WorkerSlot
from .plan import SEED, Plan, SearchDim
from .rundir import ADOPT, RESUME, close_record, decide, grid_run_dir, train_args
from .storage import (
    ADOPTED,
    ARM,
    DUPLICATE_OF,
    ERROR,
    EXIT_CODE,
    FIXED_PARAMS,
    GRID,
    HEARTBEAT,
    HEARTBEAT_S,
    KIND,
    RAN_IN,
    RESUMED,
    RUN_DIR,
    STOPPED,
    TUNE,
    TUNED_BY,
    WALL_TIME_S,
    WANDB_ID,
    WAS_INTERRUPTED,
    WORKER,
    grid_key,
    is_stale,
    storage_identity,
    tuning_ready,
    tuning_study_name,
    worker_identity,
)

TRAIN_COMMAND = [sys.executable, "-m", "s2s_lightning", "train"]


class Interrupted(Exception):
    """SIGINT/SIGTERM reached the worker: stop the trial, leave it to be resumed."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Linux: deliver `sig` to this process when its parent dies; a no-op elsewhere."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(sig))  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def _suggest(trial: optuna.Trial, key: str, dim: SearchDim) -> Any:
    if dim.type == "categorical":
        assert dim.values is not None  # plan.py validates: a categorical has values, the others a range
        return trial.suggest_categorical(key, dim.values)
    assert dim.low is not None and dim.high is not None
    if dim.type in ("int", "log_int"):
        return trial.suggest_int(key, int(dim.low), int(dim.high), log=dim.type == "log_int")
    return trial.suggest_float(key, dim.low, dim.high, log=dim.type == "log_uniform")


def seed_choices(plan: Plan, study: optuna.Study | None = None) -> list:
    """The `seed` param's categorical choices: the plan's seeds (the tuning seed was one too, though no
    grid trial uses it, so dashboards offered it). Optuna wants one distribution per param for a study's
    lifetime: a study that already has a seed distribution keeps it."""
    for t in study.get_trials(deepcopy=False) if study is not None else []:
        if isinstance(seeds := t.distributions.get(SEED), CategoricalDistribution):
            return list(seeds.choices)
    return list(dict.fromkeys(plan.seeds))


def _stop(proc: subprocess.Popen) -> None:
    """Kill the trial's process group at once: Lightning saves nothing on a signal that last.ckpt lacks,
    and a graceful stop would run the whole test evaluation first."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    proc.wait()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


ATTR_LIMIT = 2000  # characters: an RDB storage keeps user attributes in columns of 2,048


def bounded(text: str) -> str:
    """`text` whole when it fits an attribute; else its whole sentences that fit, and a pointer onwards
    (never a word cut in half)."""
    if len(text) <= ATTR_LIMIT:
        return text
    cut = text[: ATTR_LIMIT - 40]
    cut = cut[: max(cut.rfind(". "), cut.rfind("; "), 0) + 1] or cut[: cut.rfind(" ")]
    return f"{cut} (the rest is in the run's train.log)"


def _last_line(path: Path) -> str | None:
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    return lines[-1].strip() if lines else None


@dataclass
class ChosenTrial:
    """What one claimed trial trains, chosen before anything is written: its parameters and run directory."""

    kind: str  # GRID or TUNE
    name: str  # W&B run name and log name: `<arm>-seed<k>` or `<arm>-tune-t<n>`
    run_dir: Path
    overrides: dict[str, Any]  # the `s2s train` overrides
    config: Config  # those overrides built
    previous: list[FrozenTrial] = field(default_factory=list)  # earlier attempts of the same grid point


@dataclass
class Outcome:
    """How a trial's `s2s train` ended: its exit code, the epoch the pruner stopped it after, its wall
    time."""

    returncode: int | None
    pruned_at: int | None
    wall_s: float


class TrialRunner:
    """Runs claimed trials of one plan; one instance per worker process."""

    def __init__(
        self, plan: Plan, storage, tuning: dict[str, optuna.Study], launch: SweepLaunch, slot: WorkerSlot
    ):
        self.plan, self.storage, self.tuning = plan, storage, tuning
        self.runs_dir, self.slot = Path(launch.runs_dir), slot
        self.train_command = list(launch.train_command or TRAIN_COMMAND)
        self.poll_s = launch.poll_s
        self.storage_identity = storage_identity(launch.storage, launch.runs_dir)  # runs record it

    def log(self, text: str) -> None:
        print(f"[{self.slot.tag}] {text}", flush=True)

    def _env(self, study_name: str, number: int) -> dict:
        env = dict(os.environ, S2S_STUDY=study_name, S2S_TRIAL_NUMBER=str(number), PYTHONUNBUFFERED="1")
        env["S2S_STORAGE"] = self.storage_identity
        if self.slot.gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.slot.gpus
        if self.slot.threads and "OMP_NUM_THREADS" not in os.environ:
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(self.slot.threads)  # no oversubscription
        return env

    def _devices(self) -> dict[str, Any]:
        """A worker given a group of K > 1 GPUs trains each trial over all of them (DDP, K ranks)."""
        k = len(self.slot.gpus.split(",")) if self.slot.gpus else 1
        if k == 1:
            return {}
        strategy = self.plan.constants.get("train.strategy", "auto")
        return {"train.devices": k, "train.strategy": "ddp" if strategy == "auto" else strategy}

    def run(self, study: optuna.Study, frozen: FrozenTrial) -> TrialState:
        tid = frozen._trial_id
        self.storage.set_trial_user_attr(tid, WORKER, worker_identity())
        self.storage.set_trial_user_attr(tid, HEARTBEAT, time.time())
        self.storage.set_trial_user_attr(tid, RAN_IN, self.slot.run_id)
        if frozen.user_attrs[KIND] == GRID:
            state = self._check_grid(study, frozen)
            if state is not None:
                return state
        trial = optuna.Trial(study, tid)  # after any fixed params are set: Trial reads them once
        chosen = self.choose(study, trial, frozen)
        trial.set_user_attr(RUN_DIR, str(chosen.run_dir))  # before anything is written there: the dir is ours
        action = decide(
            chosen.run_dir,
            chosen.previous,
            frozen.number,
            chosen.config,
            self.log,
            heartbeat=lambda: trial.set_user_attr(HEARTBEAT, time.time()),
            poll_s=self.poll_s,
        )
        if action == ADOPT:
            wall = as_float(read_record(chosen.run_dir).get(RunKey.WALL_TIME_S)) or 0.0
            trial.set_user_attr(ADOPTED, True)  # trained before: says nothing about this sweep's pace
            return self.store(
                study, trial, chosen, Outcome(0, None, wall), f"{chosen.name} (adopted: trained before)"
            )
        resume = action == RESUME
        trial.set_user_attr(RESUMED, resume)
        self.log(
            f"{study.study_name} trial {frozen.number} {chosen.name}: {'resumed' if resume else 'started'}"
        )
        cmd = self.train_command + train_args(self.plan, chosen.run_dir, resume, chosen.overrides)
        return self.store(study, trial, chosen, self.supervise(study, trial, chosen, cmd))

    def choose(self, study: optuna.Study, trial: optuna.Trial, frozen: FrozenTrial) -> ChosenTrial:
        """The trial's parameters (sampled nuisance values, or a grid point's fixed ones) and run
        directory."""
        plan, kind = self.plan, frozen.user_attrs[KIND]
        arm = plan.arm(frozen.user_attrs[ARM])
        if kind == TUNE:
            nuisance = {k: _suggest(trial, k, dim) for k, dim in plan.nuisance.items()}
            seed = plan.ablation.spec.nuisance.seed
            run_dir = self.runs_dir / plan.study / arm.name / f"tune-t{frozen.number}"
            name, group, previous = f"{arm.name}-tune-t{frozen.number}", f"{plan.study}-tuning", []
        else:
            for axis in plan.axes:
                trial.suggest_categorical(axis, list(dict.fromkeys(a.values[axis] for a in plan.arms)))
            seed = trial.suggest_categorical(SEED, seed_choices(plan, study))
            nuisance = {k: _suggest(trial, k, dim) for k, dim in plan.nuisance.items()} if self.tuning else {}
            run_dir = grid_run_dir(self.runs_dir, plan, arm.name, seed)
            name, group = f"{arm.name}-seed{seed}", plan.study
            previous = [
                t
                for t in study.get_trials(deepcopy=False)
                if grid_key(t) == (arm.name, seed) and t.number != frozen.number
            ]
        overrides = {**plan.overrides(arm, seed, nuisance, name=name, group=group), **self._devices()}
        return ChosenTrial(kind, name, run_dir, overrides, build_config({}, overrides), previous)

    def _check_grid(self, study: optuna.Study, frozen: FrozenTrial) -> TrialState | None:
        """Refuse duplicates; give the trial its arm's best nuisance values (as fixed params)."""
        # Only two coordinators (on two nodes) can enqueue a point twice: the finished or the earlier
        # live attempt wins, and the other never touches the run directory they would share.
        arm = frozen.user_attrs[ARM]
        done = [
            t
            for t in study.get_trials(deepcopy=False)
            if grid_key(t) == grid_key(frozen)
            and (
                t.state == TrialState.COMPLETE
                or (t.state == TrialState.RUNNING and t.number < frozen.number and not is_stale(t))
            )
        ]
        if done:
            self.storage.set_trial_user_attr(frozen._trial_id, DUPLICATE_OF, done[0].number)
            study.tell(frozen.number, state=TrialState.FAIL)
            return TrialState.FAIL
        if not self.tuning:
            return None
        _, best = tuning_ready(self.tuning.get(arm))
        if best is None:
            self.storage.set_trial_user_attr(frozen._trial_id, ERROR, f"arm {arm}: no tuning trial completed")
            study.tell(frozen.number, state=TrialState.FAIL)
            return TrialState.FAIL
        fixed = {**frozen.system_attrs.get(FIXED_PARAMS, {}), **best.params}
        self.storage.set_trial_system_attr(frozen._trial_id, FIXED_PARAMS, fixed)
        self.storage.set_trial_user_attr(
            frozen._trial_id, TUNED_BY, f"{tuning_study_name(self.plan, arm)}#{best.number}"
        )
        return None

    def supervise(
        self, study: optuna.Study, trial: optuna.Trial, chosen: ChosenTrial, cmd: list[str]
    ) -> Outcome:
        """Run `cmd` (s2s train) to its end, reporting each epoch's tuning metric and a heartbeat; a tuning
        trial the pruner stops is killed. Ctrl-C or SIGTERM kills it, closes its record and re-raises."""
        start, pruned_at, last_beat = time.perf_counter(), None, time.time()
        reported: set[int] = set()
        chosen.run_dir.mkdir(parents=True, exist_ok=True)
        with open(chosen.run_dir / LOG_FILE, "ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._env(study.study_name, trial.number),
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
            try:
                while True:
                    finished = proc.poll() is not None
                    pruned_at = self._report_epochs(trial, chosen, reported, finished)
                    if finished:
                        break
                    if pruned_at is not None:
                        _stop(proc)
                        close_record(chosen.run_dir, f"pruned by the sweep after epoch {pruned_at}")
                        break
                    if time.time() - last_beat > HEARTBEAT_S:
                        trial.set_user_attr(HEARTBEAT, time.time())
                        last_beat = time.time()
                    time.sleep(self.poll_s)
            except Interrupted:
                _stop(proc)
                close_record(chosen.run_dir, "interrupted by the sweep")
                trial.set_user_attr(WAS_INTERRUPTED, True)
                trial.set_user_attr(STOPPED, True)  # by a signal to the sweep (status: interrupted)
                study.tell(trial, state=TrialState.FAIL)
                self.log(f"{study.study_name} trial {trial.number} {chosen.name}: interrupted")
                raise
        return Outcome(proc.returncode, pruned_at, time.perf_counter() - start)

    def _report_epochs(
        self, trial: optuna.Trial, chosen: ChosenTrial, reported: set[int], finished: bool
    ) -> int | None:
        """Report the epochs history.csv gained; the epoch after which the pruner stops a tuning trial, or
        None."""
        pruned_at = None
        for row in read_history(chosen.run_dir / HISTORY_FILE):
            epoch, value = row["epoch"], as_float(row.get(self.plan.tuning_metric))
            if epoch not in reported and value is not None:
                trial.report(value, epoch)
                reported.add(epoch)
                # The last epoch is a finished result (it informs TPE); stopping it saves nothing.
                last = chosen.config.train.max_epochs - 1
                if chosen.kind == TUNE and not finished and epoch < last and trial.should_prune():
                    pruned_at = epoch
        return pruned_at

    def store(
        self, study: optuna.Study, trial: optuna.Trial, chosen: ChosenTrial, outcome: Outcome, label: str = ""
    ) -> TrialState:
        """Write the run's result into the trial (its metrics as user attributes) and finish it."""
        name, run_dir = label or chosen.name, chosen.run_dir
        record: RunRecord = read_record(run_dir) if (run_dir / RECORD_FILE).is_file() else {}
        metrics = record.get(RunKey.METRICS) or {}
        for key, number in metrics.items():
            trial.set_user_attr(key, number)
        trial.set_user_attr(WANDB_ID, (record.get(RunKey.WANDB) or {}).get("id"))
        trial.set_user_attr(EXIT_CODE, outcome.returncode)
        trial.set_user_attr(WALL_TIME_S, round(outcome.wall_s, 1))
        metric = self.plan.tuning_metric if chosen.kind == TUNE else self.plan.objective
        value = as_float(metrics.get(metric))
        head = f"{study.study_name} trial {trial.number} {name}"
        try:
            if outcome.pruned_at is not None:
                study.tell(trial, state=TrialState.PRUNED)
                self.log(f"{head}: pruned after epoch {outcome.pruned_at}")
                return TrialState.PRUNED
            # The record is the truth: a run that completed counts even if its process was killed after.
            if record.get(RunKey.STATUS) == COMPLETED and value is not None:
                study.tell(trial, value)
                self.log(f"{head}: {metric}={value:.4g} ({outcome.wall_s:.0f} s)")
                return TrialState.COMPLETE
            error = self._failure(trial, record, outcome.returncode, metric, run_dir)
            trial.set_user_attr(ERROR, bounded(str(error)))
            study.tell(trial, state=TrialState.FAIL)
            self.log(f"{head}: FAILED ({error}); log {run_dir / LOG_FILE}")
            return TrialState.FAIL
        except (ValueError, RuntimeError) as exc:  # failed as stale meanwhile: a retry owns the key now
            self.log(f"{head}: result not stored ({exc})")
            return TrialState.FAIL

    @staticmethod
    def _failure(
        trial: optuna.Trial, record: RunRecord, returncode: int | None, metric: str, run_dir: Path
    ) -> str:
        """Why a trial failed, in one line."""
        if returncode is not None and returncode < 0 and record.get(RunKey.STATUS) == RUNNING:
            # Killed by a signal (kill -9, the OOM killer): nothing is known against the config, so
            # the next `s2s sweep run` resumes it from its last checkpoint, as after a dead worker.
            error = f"s2s train was killed by {_signal_name(-returncode)}"
            close_record(run_dir, error)
            trial.set_user_attr(WAS_INTERRUPTED, True)
            return error
        return (
            record.get(RunKey.ERROR)
            or (f"{metric} missing from the record" if returncode == 0 else None)
            or _last_line(run_dir / LOG_FILE)
            or f"exit code {returncode}"
        )
