"""The coordinator of `s2s sweep run` (and `s2s sweep worker`): an ablation file as an Optuna study.

`s2s sweep run ABLATION` is the coordinator: it opens (or resumes) the study named after the file
(`addition`, or `addition-quick` for a budget other than `full`), enqueues every missing tuning slot
and grid point x seed (storage.reconcile), then runs N worker processes (worker.py) that each
claim trials until none is waiting. It supervises them: a worker that dies (kill -9) has its trial
failed as stale, re-enqueued and resumed from the run's last checkpoint by a fresh worker. Running it
again starts only what is missing, so a finished study starts nothing. More nodes can join a shared
RDB study with `s2s sweep worker`.

Run directories: `<runs-dir>/<study>/<arm>/seed<k>` (grid) and `<runs-dir>/<study>/<arm>/tune-t<n>`
(nuisance trials); W&B runs are grouped by study and named `<arm>-seed<k>`.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
import time
import uuid
from pathlib import Path

from optuna.trial import TrialState

from ..errors import S2SError
from ..records import RunKey, check_writable, pid_lock, read_record
from .launch import SweepLaunch, WorkerSlot
from .plan import FULL, Plan, expand, grid_text, load_ablation
from .rundir import adoptable
from .status import format_status, preflight, status_rows
from .storage import (
    ADOPTED,
    ARM,
    ERROR,
    EXIT_CODE,
    RAN_IN,
    foreign_run_dirs,
    grid_key,
    open_storage,
    open_studies,
    reconcile,
    storage_identity,
    storage_label,
)
from .worker import worker_process

RECONCILE_S = 30.0  # how often the coordinator looks for trials whose worker died elsewhere


MAX_ROUNDS = 3  # worker rounds per `sweep run`; later rounds only retry trials whose worker died


PROGRESS_S = 5.0  # how often the coordinator looks at the counts behind its progress line


def coordinator_lock(runs_dir: Path, study: str):
    """One `sweep run` per study and node; the kernel drops the lock when its holder dies (kill -9)."""
    return pid_lock(
        Path(runs_dir) / "optuna" / f"{study}.lock",
        lambda pid: S2SError(
            f"study '{study}' is already being run (pid {pid}); to add workers on another node use `s2s "
            "sweep worker`"
        ),
    )


def _waiting(main, tuning) -> bool:
    return any(s.get_trials(deepcopy=False, states=(TrialState.WAITING,)) for s in [main, *tuning.values()])


def _spawner(launch: SweepLaunch, slots: list[WorkerSlot]):
    """spawn(i): start worker process i in its slot (its own GPU group, an even share of the CPU threads)."""
    ctx = multiprocessing.get_context("spawn")  # no inherited storage connections or locks

    def spawn(i: int):
        p = ctx.Process(target=worker_process, name=slots[i].tag, args=(launch, slots[i]))
        p.start()
        return p

    return spawn


class Progress:
    """`progress: 3/8 grid points done, 2 running; ETA 12 min`, printed when the counts change (checked
    every few seconds), the ETA from the pace of the trials finished by this `sweep run`."""

    def __init__(self, plan: Plan, main, run_id: str):
        self.plan, self.main, self.run_id = plan, main, run_id
        self.last: tuple[int, int] | None = None  # (done, running) when progress was last printed
        self.start, self.checked = time.monotonic(), 0.0

    def __call__(self) -> None:
        if time.monotonic() - self.checked < PROGRESS_S:
            return
        self.checked = time.monotonic()
        trials = self.main.get_trials(deepcopy=False)
        self.stop_if_all_refused(trials)
        total = len(self.plan.arms) * len(self.plan.seeds)
        done = len({grid_key(t) for t in trials if t.state == TrialState.COMPLETE})
        running = sum(t.state == TrialState.RUNNING for t in trials)
        if (done, running) == self.last:
            return
        self.last = (done, running)
        finished_here = sum(
            t.state.is_finished()
            and t.user_attrs.get(RAN_IN) == self.run_id
            and not t.user_attrs.get(ADOPTED)
            for t in trials
        )  # adopted trials took no time: they would make the ETA 0
        if done >= total:
            eta = "done"
        elif finished_here:
            per_trial = (
                time.monotonic() - self.start
            ) / finished_here  # wall time per trial, workers in parallel
            eta = f"ETA {per_trial * (total - done) / 60:.0f} min"
        else:
            eta = "ETA once a trial has finished"
        print(f"progress: {done}/{total} grid points done, {running} running; {eta}", flush=True)

    def stop_if_all_refused(self, trials) -> None:
        error = shared_refusal(trials, self.run_id)
        if error is not None:
            raise S2SError(
                "every trial is refused the same way, so the sweep stopped (the rest would repeat it): "
                f"{error}"
            )


INTERRUPTED_EXITS = (128 + signal.SIGINT, 128 + signal.SIGTERM)  # a worker's exit after Ctrl-C or kill


class SweepInterrupted(Exception):
    """Ctrl-C or SIGTERM stopped the sweep: its running trials were closed as interrupted, resumable."""

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.signum = signum  # the exit code is 128 + signum, the shell's convention


REFUSED = 2  # the exit code of `s2s train` refusing a run before it starts (bad config, data, device)


def shared_refusal(trials, run_id: str) -> str | None:
    """The error every trial of this `sweep run` is refused with, once two trials of different arms were
    refused before they started with the same message and none completed; else None."""
    mine = [t for t in trials if t.user_attrs.get(RAN_IN) == run_id]
    if any(t.state == TrialState.COMPLETE and not t.user_attrs.get(ADOPTED) for t in mine):
        return None
    refused: dict[str, set] = {}
    for t in mine:
        if t.state == TrialState.FAIL and t.user_attrs.get(EXIT_CODE) == REFUSED and t.user_attrs.get(ERROR):
            refused.setdefault(t.user_attrs[ERROR], set()).add(t.user_attrs.get(ARM))
    return next((error for error, arms in refused.items() if len(arms) >= 2), None)


def _supervise(n: int, spawn, poll_s: float, on_death=None, tick=None, progress=None) -> None:
    """Run workers 0..n-1 until each has found nothing left waiting. A worker killed by a signal is
    replaced (its trial goes stale: `on_death` lets the coordinator retry it); `tick` runs every
    RECONCILE_S; SIGTERM or Ctrl-C stops the workers cleanly (their trials stay resumable)."""
    # `kill PID` stops the workers cleanly; only the main thread may set handlers (library use from a thread)
    in_main = threading.current_thread() is threading.main_thread()
    received: list[int] = []

    def on_term(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term) if in_main else None
    procs: dict[int, multiprocessing.Process] = {}
    try:
        procs = {i: spawn(i) for i in range(n)}
        last, broken, interrupted = time.monotonic(), [], []
        while procs:
            time.sleep(poll_s)
            for i, p in list(procs.items()):
                if p.is_alive():
                    continue
                del procs[i]
                if p.exitcode is not None and p.exitcode < 0:  # killed: its trial goes stale
                    print(f"worker w{i} died (signal {-p.exitcode}); replacing it", flush=True)
                    if on_death:
                        on_death()
                    procs[i] = spawn(i)
                elif p.exitcode in INTERRUPTED_EXITS:  # Ctrl-C or kill reached the worker first
                    interrupted.append(p.exitcode - 128)
                elif p.exitcode:  # a bug or a broken environment, not a trial's failure
                    broken.append(f"w{i} exit code {p.exitcode}")
            if progress:
                progress()
            if tick and time.monotonic() - last > RECONCILE_S:
                tick()
                last = time.monotonic()
        if interrupted:
            raise SweepInterrupted(f"{len(interrupted)} worker(s) stopped by a signal", interrupted[0])
        if broken:
            raise S2SError(
                f"sweep workers failed ({', '.join(broken)}); see their errors above. "
                "Finished trials are kept; rerun to continue"
            )
    except (
        BaseException
    ) as exc:  # Ctrl-C, or a failure every trial shares (Progress): stop the workers cleanly
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            p.join(30)
            if p.is_alive():
                p.kill()
        if isinstance(exc, KeyboardInterrupt):
            signum = received[0] if received else signal.SIGINT
            raise SweepInterrupted("the coordinator was stopped by a signal", signum) from None
        raise
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def _running(main, tuning) -> int:
    return sum(
        len(s.get_trials(deepcopy=False, states=(TrialState.RUNNING,))) for s in [main, *tuning.values()]
    )


def _await_others(main, tuning, retry, progress, launch: SweepLaunch) -> bool:
    """Nothing waits, but trials run in other workers (`s2s sweep worker`, e.g. another SLURM task): the
    coordinator stays, since it alone retries them if they stop (interrupted, or stale: a dead pid here,
    no heartbeat for STALE_AFTER_S from another host). Returns True once a retry waits, False once none
    runs."""
    print(f"waiting for {_running(main, tuning)} trial(s) running in other workers", flush=True)
    last = time.monotonic()
    while _running(main, tuning):
        time.sleep(launch.poll_s)
        progress()
        if time.monotonic() - last > RECONCILE_S:
            retry()
            last = time.monotonic()
        if _waiting(main, tuning):
            return True
    return bool(retry()) or _waiting(main, tuning)


def _ran(run_id: str, main, tuning: dict) -> int:
    return sum(t.user_attrs.get(RAN_IN) == run_id for s in [main, *tuning.values()] for t in s.trials)


def run_sweep(launch: SweepLaunch) -> dict:
    """Run every missing trial of the ablation at its budget; returns {"started": n, "status": rows}
    where `started` counts the trials this invocation ran (0 when the study was already complete)."""
    plan = expand(load_ablation(launch.ablation), launch.budget)
    run_id = uuid.uuid4().hex[:12]
    slots = launch.worker_slots(run_id)  # a bad --gpus/--workers fails here, first
    n = len(slots)
    runs_dir = Path(launch.runs_dir)
    for line in preflight(plan, fetch=True):  # missing data fail here, once, not in every trial
        print(line, flush=True)
    check_writable(runs_dir)  # like an unreachable storage, fails here, before any work
    store, label = open_storage(launch.storage, runs_dir), storage_label(launch.storage, runs_dir)
    spawn = _spawner(launch, slots)

    with coordinator_lock(runs_dir, plan.study):
        main, tuning = open_studies(store, plan, create=True, label=label, runs=runs_dir)
        assert main is not None  # create=True
        _refuse_foreign(
            plan, runs_dir, [main, *tuning.values()], label, storage_identity(launch.storage, runs_dir)
        )
        print(
            f"study {plan.study}: {grid_text(plan)}"
            + (f", {plan.nuisance_trials} nuisance trials per arm" if plan.nuisance_trials else "")
            + f"; storage {label}; {n} worker(s)",
            flush=True,
        )
        retry = lambda: reconcile(store, plan, main, tuning, run_id)  # noqa: E731 - also fails stale trials
        progress = Progress(plan, main, run_id)
        rounds = 0
        while rounds < MAX_ROUNDS:
            added = retry()
            if not _waiting(main, tuning):
                if not _running(main, tuning) or not _await_others(main, tuning, retry, progress, launch):
                    break
                continue
            rounds += 1
            print(f"enqueued {added} trial(s)" if added else "resuming enqueued trials", flush=True)
            _supervise(n, spawn, launch.poll_s, on_death=retry, tick=retry, progress=progress)
        started = _ran(run_id, main, tuning)
        rows = status_rows(plan, main, tuning)
    print(format_status(plan, rows, label), flush=True)
    return {"started": started, "status": rows}


def _refuse_foreign(plan: Plan, runs_dir: Path, studies: list, label: str, identity: str) -> None:
    """Refuse a runs folder holding runs this study did not make: runs it would not adopt, and runs a
    study of this name in another storage made (this study, deleted and made again, adopts its own)."""
    foreign = [
        d
        for d in foreign_run_dirs(runs_dir / plan.study, studies)
        if not adoptable(d, plan) or read_record(d).get(RunKey.STORAGE) not in (None, identity)
    ]
    if foreign:
        raise S2SError(
            f"{runs_dir / plan.study} holds {len(foreign)} run(s) that study '{plan.study}' in {label} "
            f"did not make (e.g. {foreign[0]}), likely from a study of that name in another storage: run "
            f"with that --storage, or move {runs_dir / plan.study} away first (nothing was moved or started)"
        )


def _wait_for_study(store, plan: Plan, label: str, wait_s: float):
    """The plan's studies once they exist and hold trials (the coordinator creates the study, then
    enqueues: a worker that came in between would find nothing waiting and leave), polling for up to
    `wait_s` seconds; main is None when the study never appeared."""
    deadline = time.monotonic() + wait_s
    while True:
        main, tuning = open_studies(store, plan, create=False, label=label)
        if main is not None and (main.trials or wait_s <= 0):
            return main, tuning
        if time.monotonic() >= deadline:
            return main, tuning
        time.sleep(min(2.0, max(0.1, deadline - time.monotonic())))


def join_sweep(launch: SweepLaunch) -> int:
    """`s2s sweep worker`: add workers (one per GPU with --gpus) to a study that `s2s sweep run` created,
    e.g. from another node sharing its RDB storage. They claim waiting trials until none is left; only
    the coordinator enqueues and retries. Returns how many trials they ran."""
    plan = expand(load_ablation(launch.ablation), launch.budget)
    run_id = uuid.uuid4().hex[:12]
    slots = launch.worker_slots(run_id)
    runs_dir = Path(launch.runs_dir)
    check_writable(runs_dir)
    store, label = open_storage(launch.storage, runs_dir), storage_label(launch.storage, runs_dir)
    main, tuning = _wait_for_study(store, plan, label, launch.wait_s)
    if main is None:
        budget = "" if launch.budget == FULL else f" --budget {launch.budget}"
        waited = f" after waiting {launch.wait_s:g} s" if launch.wait_s else ""
        raise S2SError(
            f"study '{plan.study}' does not exist in {label}{waited}; create it with `s2s sweep run "
            f"{launch.ablation}{budget} --storage {label}`"
        )
    print(f"joining study {plan.study}; storage {label}; {len(slots)} worker(s)", flush=True)
    _supervise(len(slots), _spawner(launch, slots), launch.poll_s)
    return _ran(run_id, main, tuning)
