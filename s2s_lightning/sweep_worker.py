"""A sweep worker: claims trials of one plan and runs each as its own `s2s train` subprocess.

A subprocess per trial means a crash kills one trial, not the sweep; DDP inside a trial works (a
fresh process); and it is the same command line a W&B agent runs. While it trains, the worker polls
the run's history.csv, reports the tuning metric per epoch (so optuna-dashboard plots learning curves
and the arm's pruner can stop a weak nuisance trial) and writes a heartbeat. Grid trials are never
pruned. The subprocess dies with its worker (PR_SET_PDEATHSIG), so a killed worker leaves no orphan
writing into a run directory that a retry is about to reuse.
"""

from __future__ import annotations

import ctypes
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from .ablation import SEED, Plan, SearchDim, expand, format_overrides, load_ablation
from .config import Config, build_config, read_yaml, science_differences
from .errors import S2SError
from .records import (
    CONFIG_FILE,
    HISTORY_FILE,
    LOCK_FILE,
    LOG_FILE,
    RECORD_FILE,
    RunBusy,
    checkpoint_path,
    read_history,
    read_json,
    run_lock,
    write_json,
)
from .studies import (
    ARM,
    GRID,
    HEARTBEAT,
    HEARTBEAT_S,
    KIND,
    RAN_IN,
    SLOT,
    TUNE,
    WORKER,
    claim,
    grid_key,
    is_stale,
    open_storage,
    open_studies,
    retryable,
    tuning_ready,
    tuning_study_name,
    worker_identity,
)

TRAIN_COMMAND = [sys.executable, "-m", "s2s_lightning", "train"]


class Interrupted(Exception):
    """SIGINT/SIGTERM reached the worker: stop the trial, leave it to be resumed."""


def _raise_interrupted(signum, frame):
    # Further signals must not break the clean-up that follows.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Interrupted()


def _die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Linux: deliver `sig` to this process when its parent dies; a no-op elsewhere."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(sig))  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def _sampler(plan: Plan, slot: int):
    """A fresh sampler for tuning slot `slot`, seeded by study and slot: every arm draws the same
    random (and TPE start-up) points, and a rerun draws the same points given the same history."""
    seed = zlib.crc32(f"{plan.study}:{slot}".encode())
    if plan.ablation.spec.nuisance.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    startup = max(1, min(10, plan.nuisance_trials // 2))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=True)


def _pruner(plan: Plan):
    p = plan.ablation.spec.nuisance.pruner
    if p.type == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=p.startup_trials, n_warmup_steps=p.warmup_epochs)
    if p.type == "hyperband":
        max_epochs = build_config({}, plan.constants).train.max_epochs
        return optuna.pruners.HyperbandPruner(
            min_resource=p.min_epochs, max_resource=max_epochs, reduction_factor=p.reduction_factor
        )
    return optuna.pruners.NopPruner()


def _suggest(trial: optuna.Trial, key: str, dim: SearchDim) -> Any:
    if dim.type == "categorical":
        return trial.suggest_categorical(key, dim.values)
    if dim.type in ("int", "log_int"):
        return trial.suggest_int(key, int(dim.low), int(dim.high), log=dim.type == "log_int")
    return trial.suggest_float(key, dim.low, dim.high, log=dim.type == "log_uniform")


def seed_choices(plan: Plan) -> list[int]:
    """The `seed` param's categorical choices; fixed for the study's lifetime (Optuna requires it)."""
    return list(dict.fromkeys(plan.seeds + [plan.ablation.spec.nuisance.seed]))


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _stop(proc: subprocess.Popen) -> None:
    """Kill the trial's process group at once: Lightning saves nothing on a signal that last.ckpt lacks,
    and a graceful stop would run the whole test evaluation first."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    proc.wait()


def _close_record(run_dir: Path, why: str) -> None:
    """A killed `s2s train` cannot write its final status; say what happened so readers never see 'running'."""
    path = run_dir / RECORD_FILE
    if path.is_file():
        record = read_json(path)
        if record.get("status") == "running":
            record.update(status="interrupted", error=why)
            write_json(path, record)


FRESH, RESUME, ADOPT = "fresh", "resume", "adopt"
ADOPTED = "adopted"  # user attr of a trial that took a run trained before instead of training


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
    if read_json(run_dir / RECORD_FILE).get("status") != "completed":
        return False
    return _same_run(run_dir, build_config({}, plan.overrides(arm, seeds[run_dir.name])))


def _prepare_run_dir(run_dir: Path, previous: list[FrozenTrial], number: int, log, config: Config | None = None) -> str:
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
            log(f"moved what a failed attempt left in {run_dir} ({', '.join(c.name for c in leftovers)}) to {attic}")
        return FRESH
    if read_json(run_dir / RECORD_FILE).get("status") == "completed":
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


class TrialRunner:
    """Runs claimed trials of one plan; one instance per worker process."""

    def __init__(
        self,
        plan: Plan,
        storage,
        main: optuna.Study,
        tuning: dict[str, optuna.Study],
        runs_dir: Path,
        run_id: str,
        gpus: str | None = None,
        threads: int | None = None,
        train_command: list[str] | None = None,
        poll_s: float = 1.0,
        tag: str = "w0",
    ):
        self.plan, self.storage, self.main, self.tuning = plan, storage, main, tuning
        self.runs_dir, self.run_id, self.gpus, self.threads = Path(runs_dir), run_id, gpus, threads
        self.train_command = list(train_command or TRAIN_COMMAND)
        self.poll_s, self.tag = poll_s, tag

    def log(self, text: str) -> None:
        print(f"[{self.tag}] {text}", flush=True)

    def _env(self, study_name: str, number: int) -> dict:
        env = dict(os.environ, S2S_STUDY=study_name, S2S_TRIAL_NUMBER=str(number), PYTHONUNBUFFERED="1")
        if self.gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus
        if self.threads and "OMP_NUM_THREADS" not in os.environ:
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(self.threads)  # no oversubscription
        return env

    def _devices(self, plan: Plan) -> dict[str, Any]:
        """A worker given a group of K > 1 GPUs trains each trial over all of them (DDP, K ranks)."""
        k = len(self.gpus.split(",")) if self.gpus else 1
        if k == 1:
            return {}
        strategy = plan.constants.get("train.strategy", "auto")
        return {"train.devices": k, "train.strategy": "ddp" if strategy == "auto" else strategy}

    def run(self, study: optuna.Study, frozen: FrozenTrial) -> TrialState:
        plan, kind = self.plan, frozen.user_attrs[KIND]
        arm = plan.arm(frozen.user_attrs[ARM])
        tid = frozen._trial_id
        self.storage.set_trial_user_attr(tid, WORKER, worker_identity())
        self.storage.set_trial_user_attr(tid, HEARTBEAT, time.time())
        self.storage.set_trial_user_attr(tid, RAN_IN, self.run_id)
        if kind == GRID:
            state = self._check_grid(study, frozen, arm.name)
            if state is not None:
                return state
        trial = optuna.Trial(study, tid)  # after any fixed params are set: Trial reads them once
        if kind == TUNE:
            nuisance = {k: _suggest(trial, k, dim) for k, dim in plan.nuisance.items()}
            seed = plan.ablation.spec.nuisance.seed
            run_dir = self.runs_dir / plan.study / arm.name / f"tune-t{frozen.number}"
            name, group, previous = f"{arm.name}-tune-t{frozen.number}", f"{plan.study}-tuning", []
        else:
            for axis in plan.axes:
                trial.suggest_categorical(axis, list(dict.fromkeys(a.values[axis] for a in plan.arms)))
            seed = trial.suggest_categorical(SEED, seed_choices(plan))
            nuisance = {k: _suggest(trial, k, dim) for k, dim in plan.nuisance.items()} if self.tuning else {}
            run_dir = grid_run_dir(self.runs_dir, plan, arm.name, seed)
            name, group = f"{arm.name}-seed{seed}", plan.study
            previous = [
                t
                for t in study.get_trials(deepcopy=False)
                if grid_key(t) == (arm.name, seed) and t.number != frozen.number
            ]
        overrides = {**plan.overrides(arm, seed, nuisance, name=name, group=group), **self._devices(plan)}
        config = build_config({}, overrides)
        trial.set_user_attr("run_dir", str(run_dir))  # before anything is written there: the dir is this study's
        action = self._prepare(trial, run_dir, previous, frozen.number, config)
        if action == ADOPT:
            wall = _float(read_json(run_dir / RECORD_FILE).get("wall_time_s")) or 0.0
            trial.set_user_attr(ADOPTED, True)  # trained before: says nothing about this sweep's pace
            adopted = f"{name} (adopted: trained before)"
            return self._finish(study, trial, kind, 0, run_dir, adopted, None, wall)
        resume = action == RESUME
        cmd = self.train_command + train_args(plan, run_dir, resume, overrides)
        trial.set_user_attr("resumed", resume)
        self.log(f"{study.study_name} trial {frozen.number} {name}: {'resumed' if resume else 'started'}")
        return self._train(study, trial, kind, cmd, run_dir, name, config.train.max_epochs)

    def _prepare(
        self, trial: optuna.Trial, run_dir: Path, previous: list[FrozenTrial], number: int, config: Config
    ) -> str:
        """_prepare_run_dir under the run directory's lock, waiting (with heartbeats) while another live
        process writes it: one writer per run, whatever the storage handed out."""
        waited = False
        while True:
            try:
                with run_lock(run_dir):
                    return _prepare_run_dir(run_dir, previous, number, self.log, config)
            except RunBusy:
                if not waited:
                    self.log(f"{run_dir} is being written by another process; waiting for it to end")
                    waited = True
                trial.set_user_attr(HEARTBEAT, time.time())
                time.sleep(self.poll_s)

    def _check_grid(self, study: optuna.Study, frozen: FrozenTrial, arm: str) -> TrialState | None:
        """Refuse duplicates; give the trial its arm's best nuisance values (as fixed params)."""
        # Only two coordinators (on two nodes) can enqueue a point twice: the finished or the earlier
        # live attempt wins, and the other never touches the run directory they would share.
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
            self.storage.set_trial_user_attr(frozen._trial_id, "duplicate_of", done[0].number)
            study.tell(frozen.number, state=TrialState.FAIL)
            return TrialState.FAIL
        if not self.tuning:
            return None
        _, best = tuning_ready(self.tuning.get(arm))
        if best is None:
            self.storage.set_trial_user_attr(frozen._trial_id, "error", f"arm {arm}: no tuning trial completed")
            study.tell(frozen.number, state=TrialState.FAIL)
            return TrialState.FAIL
        fixed = {**frozen.system_attrs.get("fixed_params", {}), **best.params}
        self.storage.set_trial_system_attr(frozen._trial_id, "fixed_params", fixed)
        self.storage.set_trial_user_attr(
            frozen._trial_id, "tuned_by", f"{tuning_study_name(self.plan, arm)}#{best.number}"
        )
        return None

    def _train(
        self,
        study: optuna.Study,
        trial: optuna.Trial,
        kind: str,
        cmd: list[str],
        run_dir: Path,
        name: str,
        max_epochs: int,
    ) -> TrialState:
        plan, start = self.plan, time.perf_counter()
        run_dir.mkdir(parents=True, exist_ok=True)
        reported: set[int] = set()
        pruned_at = None
        last_beat = time.time()
        with open(run_dir / LOG_FILE, "ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._env(study.study_name, trial.number),
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
            try:
                while True:
                    finished = proc.poll() is not None
                    for row in read_history(run_dir / HISTORY_FILE):
                        epoch, value = row["epoch"], _float(row.get(plan.tuning_metric))
                        if epoch not in reported and value is not None:
                            trial.report(value, epoch)
                            reported.add(epoch)
                            # The last epoch is a finished result (it informs TPE); stopping it saves nothing.
                            if kind == TUNE and not finished and epoch < max_epochs - 1 and trial.should_prune():
                                pruned_at = epoch
                    if finished:
                        break
                    if pruned_at is not None:
                        _stop(proc)
                        _close_record(run_dir, f"pruned by the sweep after epoch {pruned_at}")
                        break
                    if time.time() - last_beat > HEARTBEAT_S:
                        trial.set_user_attr(HEARTBEAT, time.time())
                        last_beat = time.time()
                    time.sleep(self.poll_s)
            except Interrupted:
                _stop(proc)
                _close_record(run_dir, "interrupted by the sweep")
                trial.set_user_attr("interrupted", True)
                study.tell(trial, state=TrialState.FAIL)
                self.log(f"{study.study_name} trial {trial.number} {name}: interrupted")
                raise
        return self._finish(study, trial, kind, proc.returncode, run_dir, name, pruned_at, time.perf_counter() - start)

    def _finish(self, study, trial, kind, returncode, run_dir, name, pruned_at, wall) -> TrialState:
        plan = self.plan
        record = read_json(run_dir / RECORD_FILE) if (run_dir / RECORD_FILE).is_file() else {}
        metrics = record.get("metrics") or {}
        for key, value in metrics.items():
            trial.set_user_attr(key, value)
        trial.set_user_attr("wandb_id", (record.get("wandb") or {}).get("id"))
        trial.set_user_attr("exit_code", returncode)
        trial.set_user_attr("wall_time_s", round(wall, 1))
        metric = plan.tuning_metric if kind == TUNE else plan.objective
        value = _float(metrics.get(metric))
        try:
            if pruned_at is not None:
                study.tell(trial, state=TrialState.PRUNED)
                self.log(f"{study.study_name} trial {trial.number} {name}: pruned after epoch {pruned_at}")
                return TrialState.PRUNED
            # The record is the truth: a run that completed counts even if its process was killed after.
            if record.get("status") == "completed" and value is not None:
                study.tell(trial, value)
                self.log(f"{study.study_name} trial {trial.number} {name}: {metric}={value:.4g} ({wall:.0f} s)")
                return TrialState.COMPLETE
            if returncode is not None and returncode < 0 and record.get("status") == "running":
                # Killed by a signal (kill -9, the OOM killer): nothing is known against the config, so
                # the next `s2s sweep run` resumes it from its last checkpoint, as after a dead worker.
                error = f"s2s train was killed by {_signal_name(-returncode)}"
                _close_record(run_dir, error)
                trial.set_user_attr("interrupted", True)
            else:
                error = (
                    record.get("error")
                    or (f"{metric} missing from the record" if returncode == 0 else None)
                    or _last_line(run_dir / LOG_FILE)
                    or f"exit code {returncode}"
                )
            trial.set_user_attr("error", bounded(str(error)))
            study.tell(trial, state=TrialState.FAIL)
            self.log(f"{study.study_name} trial {trial.number} {name}: FAILED ({error}); log {run_dir / LOG_FILE}")
            return TrialState.FAIL
        except (ValueError, RuntimeError) as exc:  # failed as stale meanwhile: a retry owns the key now
            self.log(f"{study.study_name} trial {trial.number} {name}: result not stored ({exc})")
            return TrialState.FAIL


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


def work(
    plan: Plan,
    storage,
    runs_dir: Path,
    run_id: str,
    gpus: str | None = None,
    threads: int | None = None,
    train_command: list[str] | None = None,
    poll_s: float = 1.0,
    tag: str = "w0",
) -> int:
    """Claim and run trials until nothing is waiting; returns how many trials this worker ran."""
    main, tuning = open_studies(storage, plan, create=False, pruner=_pruner(plan))
    if main is None:
        return 0
    runner = TrialRunner(plan, storage, main, tuning, runs_dir, run_id, gpus, threads, train_command, poll_s, tag)
    ran = 0
    while True:
        study, frozen, waiting = claim(storage, plan, main, tuning)
        if study is None:
            if not waiting:
                return ran
            time.sleep(poll_s)  # grid trials wait for their arm's tuning, running elsewhere
            continue
        if study is not main:  # the arm's own study: TPE learns from this arm's trials only
            study.sampler = _sampler(plan, frozen.user_attrs[SLOT])
        try:
            runner.run(study, frozen)
        except optuna.exceptions.UpdateFinishedTrialError:
            # Finished elsewhere meanwhile (failed as stale by a coordinator): its run directory, not
            # this trial, holds the result, which a retry adopts or resumes. Never a reason to stop.
            runner.log(f"{study.study_name} trial {frozen.number}: finished elsewhere meanwhile; moving on")
        ran += 1


def worker_process(
    ablation_path: str,
    budget: str,
    storage_url: str | None,
    runs_dir: str,
    run_id: str,
    gpus: str | None,
    threads: int | None,
    train_command: list[str] | None,
    poll_s: float,
    tag: str,
) -> None:
    """Entry point of a worker process spawned by `s2s sweep run` (multiprocessing, spawn)."""
    _die_with_parent(signal.SIGTERM)  # the coordinator died: stop the trial cleanly
    signal.signal(signal.SIGINT, _raise_interrupted)
    signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        plan = expand(load_ablation(ablation_path), budget)
        work(
            plan, open_storage(storage_url, runs_dir), Path(runs_dir), run_id, gpus, threads, train_command, poll_s, tag
        )
    except Interrupted:
        sys.exit(130)
