"""`s2s sweep run|worker|status|wandb` and `s2s dashboard`: an ablation file as an Optuna study.

`s2s sweep run ABLATION` is the coordinator: it opens (or resumes) the study named after the file
(`addition`, or `addition-quick` for a budget other than `full`), enqueues every missing tuning slot
and grid point x seed (studies.reconcile), then runs N worker processes (sweep_worker) that each
claim trials until none is waiting. It supervises them: a worker that dies (kill -9) has its trial
failed as stale, re-enqueued and resumed from the run's last checkpoint by a fresh worker. Running it
again starts only what is missing, so a finished study starts nothing. More nodes can join a shared
RDB study with `s2s sweep worker`.

Run directories: `<runs-dir>/<study>/<arm>/seed<k>` (grid) and `<runs-dir>/<study>/<arm>/tune-t<n>`
(nuisance trials); W&B runs are grouped by study and named `<arm>-seed<k>`.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shlex
import signal
import socket
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

from optuna.trial import TrialState

from .ablation import FULL, Plan, count, expand, grid_text, load_ablation
from .errors import S2SError
from .records import atomic_write_text, check_writable, pid_lock
from .studies import (
    ARM,
    RAN_IN,
    SLOT,
    foreign_run_dirs,
    grid_key,
    is_stale,
    open_storage,
    open_studies,
    reconcile,
    storage_label,
)
from .sweep_worker import ADOPTED, adoptable, grid_run_dir, train_args, worker_process
from .wandb_sweep import render_sweep

RECONCILE_S = 30.0  # how often the coordinator looks for trials whose worker died elsewhere
MAX_ROUNDS = 3  # worker rounds per `sweep run`; later rounds only retry trials whose worker died
PROGRESS_S = 5.0  # how often the coordinator looks at the counts behind its progress line


def parse_gpus(
    spec: str | None, workers: int | None, per_gpu: int = 1, per_trial: int = 1
) -> tuple[int, list[str | None]]:
    """(workers, CUDA_VISIBLE_DEVICES per worker). GPUs are split evenly: one trial per GPU group,
    `per_gpu` concurrent trials on each GPU (small LSTMs leave a large GPU mostly idle), or groups of
    `per_trial` GPUs, one trial (DDP over the group) each."""
    if per_gpu < 1:
        raise S2SError(f"--trials-per-gpu must be at least 1 (got {per_gpu})")
    if per_trial < 1:
        raise S2SError(f"--gpus-per-trial must be at least 1 (got {per_trial})")
    if per_trial > 1:
        if spec is None or workers is not None or per_gpu > 1:
            raise S2SError("--gpus-per-trial goes with --gpus, without --workers and --trials-per-gpu")
        n, _ = parse_gpus(spec, None)
        if n % per_trial:
            raise S2SError(f"--gpus-per-trial {per_trial} cannot split {n} GPUs evenly")
        return parse_gpus(spec, n // per_trial)
    if per_gpu > 1:
        if spec is None or workers is not None:
            raise S2SError("--trials-per-gpu goes with --gpus and without --workers (K workers per GPU)")
        n, groups = parse_gpus(spec, None)
        return n * per_gpu, [g for g in groups for _ in range(per_gpu)]
    if spec is None:
        n = 1 if workers is None else workers
        if n < 1:
            raise S2SError(f"--workers must be at least 1 (got {n})")
        return n, [None] * n
    given = visible_gpus(all_of_them=spec == "all")
    if spec == "all":
        ids = given or []
        if not ids:
            raise S2SError("--gpus all: no CUDA device is visible")
    else:
        ids = [g.strip() for g in spec.split(",") if g.strip()]
        if not ids or not all(g.isdigit() for g in ids) or len(set(ids)) != len(ids):
            raise S2SError(f"--gpus takes distinct GPU indices like 0,1,3 or 'all' (got '{spec}')")
        if given is not None:  # indices count the GPUs this job was given, as torch numbers them
            if max(int(g) for g in ids) >= len(given):
                raise S2SError(f"--gpus {spec}: only {len(given)} are visible (CUDA_VISIBLE_DEVICES={given_env()})")
            ids = [given[int(g)] for g in ids]
    n = len(ids) if workers is None else workers
    if n < 1 or len(ids) % n:
        raise S2SError(f"--workers {n} cannot split {len(ids)} GPUs evenly; one trial per GPU (or GPU group)")
    size = len(ids) // n
    return n, [",".join(ids[i * size : (i + 1) * size]) for i in range(n)]


def given_env() -> str | None:
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    return value if value is not None and value.strip() else None


def visible_gpus(all_of_them: bool) -> list[str] | None:
    """The GPUs this process was given, as CUDA_VISIBLE_DEVICES names them (indices, GPU or MIG UUIDs), in
    torch's order: a scheduler that hands out GPUs 4-7 without confining the job must see its trials on
    4-7, not on 0-3. None when nothing restricts the process and `all_of_them` is False (then indices
    are the machine's own and torch need not be imported)."""
    names = given_env()
    if names is None and not all_of_them:
        return None
    count = None
    if all_of_them:
        import torch  # seconds to import, for the coordinator only when it must count the GPUs

        count = torch.cuda.device_count()
    if names is None:
        return [str(i) for i in range(count or 0)]
    listed = [g.strip() for g in names.split(",") if g.strip()]
    return listed[:count] if count is not None else listed


def coordinator_lock(runs_dir: Path, study: str):
    """One `sweep run` per study and node; the kernel drops the lock when its holder dies (kill -9)."""
    return pid_lock(
        Path(runs_dir) / "optuna" / f"{study}.lock",
        lambda pid: S2SError(
            f"study '{study}' is already being run (pid {pid}); to add workers on another node use `s2s sweep worker`"
        ),
    )


def _waiting(main, tuning) -> bool:
    return any(s.get_trials(deepcopy=False, states=(TrialState.WAITING,)) for s in [main, *tuning.values()])


def _spawner(
    plan: Plan,
    budget: str,
    storage: str | None,
    runs_dir: Path,
    run_id: str,
    gpu_groups: list,
    train_command: list[str] | None,
    poll_s: float,
):
    """spawn(i): start worker process i (its own GPU group, an even share of the CPU threads)."""
    threads = max(1, (os.cpu_count() or 1) // len(gpu_groups))
    ctx = multiprocessing.get_context("spawn")  # no inherited storage connections or locks

    def spawn(i: int):
        p = ctx.Process(
            target=worker_process,
            name=f"w{i}",
            args=(
                str(plan.ablation.path),
                budget,
                storage,
                str(runs_dir),
                run_id,
                gpu_groups[i],
                threads,
                train_command,
                poll_s,
                f"w{i}",
            ),
        )
        p.start()
        return p

    return spawn


class Progress:
    """`progress: 3/8 grid points done, 2 running; ETA 12 min`, printed when the counts change (checked
    every few seconds), the ETA from the pace of the trials finished by this `sweep run`."""

    def __init__(self, plan: Plan, main, run_id: str):
        self.plan, self.main, self.run_id = plan, main, run_id
        self.start, self.checked, self.last = time.monotonic(), 0.0, None

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
            t.state.is_finished() and t.user_attrs.get(RAN_IN) == self.run_id and not t.user_attrs.get(ADOPTED)
            for t in trials
        )  # adopted trials took no time: they would make the ETA 0
        if done >= total:
            eta = "done"
        elif finished_here:
            per_trial = (time.monotonic() - self.start) / finished_here  # wall time per trial, workers in parallel
            eta = f"ETA {per_trial * (total - done) / 60:.0f} min"
        else:
            eta = "ETA once a trial has finished"
        print(f"progress: {done}/{total} grid points done, {running} running; {eta}", flush=True)

    def stop_if_all_refused(self, trials) -> None:
        error = shared_refusal(trials, self.run_id)
        if error is not None:
            raise S2SError(
                f"every trial is refused the same way, so the sweep stopped (the rest would repeat it): {error}"
            )


INTERRUPTED_EXITS = (128 + signal.SIGINT, 128 + signal.SIGTERM)  # a worker's exit after Ctrl-C or kill


class SweepInterrupted(Exception):
    """Ctrl-C or SIGTERM stopped the sweep: its running trials were closed as interrupted, resumable."""


def interrupted_line(args: argparse.Namespace, what: str) -> str:
    """One line for stderr: what was stopped and the command that continues it."""
    flags = "" if args.budget == FULL else f" --budget {args.budget}"
    flags += f" --storage {args.storage}" if args.storage else ""
    flags += f" --runs-dir {args.runs_dir}" if str(args.runs_dir) != "runs" else ""
    return (
        f"s2s: sweep interrupted: running trials were stopped and keep their last checkpoint (finished ones are "
        f"kept); continue with: s2s sweep {what} {args.ablation}{flags}"
    )


REFUSED = 2  # the exit code of `s2s train` refusing a run before it starts (bad config, data, device)


def shared_refusal(trials, run_id: str) -> str | None:
    """The error every trial of this `sweep run` is refused with, once two trials of different arms were
    refused before they started with the same message and none completed; else None."""
    mine = [t for t in trials if t.user_attrs.get(RAN_IN) == run_id]
    if any(t.state == TrialState.COMPLETE and not t.user_attrs.get(ADOPTED) for t in mine):
        return None
    refused: dict[str, set] = {}
    for t in mine:
        if t.state == TrialState.FAIL and t.user_attrs.get("exit_code") == REFUSED and t.user_attrs.get("error"):
            refused.setdefault(t.user_attrs["error"], set()).add(t.user_attrs.get(ARM))
    return next((error for error, arms in refused.items() if len(arms) >= 2), None)


def _supervise(n: int, spawn, poll_s: float, on_death=None, tick=None, progress=None) -> None:
    """Run workers 0..n-1 until each has found nothing left waiting. A worker killed by a signal is
    replaced (its trial goes stale: `on_death` lets the coordinator retry it); `tick` runs every
    RECONCILE_S; SIGTERM or Ctrl-C stops the workers cleanly (their trials stay resumable)."""
    # `kill PID` stops the workers cleanly; only the main thread may set handlers (library use from a thread)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler) if in_main else None
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
                    interrupted.append(i)
                elif p.exitcode:  # a bug or a broken environment, not a trial's failure
                    broken.append(f"w{i} exit code {p.exitcode}")
            if progress:
                progress()
            if tick and time.monotonic() - last > RECONCILE_S:
                tick()
                last = time.monotonic()
        if interrupted:
            raise SweepInterrupted(f"{len(interrupted)} worker(s) stopped by a signal")
        if broken:
            raise S2SError(
                f"sweep workers failed ({', '.join(broken)}); see their errors above. "
                "Finished trials are kept; rerun to continue"
            )
    except BaseException as exc:  # Ctrl-C, or a failure every trial shares (Progress): stop the workers cleanly
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            p.join(30)
            if p.is_alive():
                p.kill()
        if isinstance(exc, KeyboardInterrupt):
            raise SweepInterrupted("the coordinator was stopped by a signal") from None
        raise
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def _ran(run_id: str, main, tuning: dict) -> int:
    return sum(t.user_attrs.get(RAN_IN) == run_id for s in [main, *tuning.values()] for t in s.trials)


def run_sweep(
    ablation: str | Path,
    budget: str = FULL,
    storage: str | None = None,
    workers: int | None = None,
    gpus: str | None = None,
    trials_per_gpu: int = 1,
    runs_dir: str | Path = "runs",
    train_command: list[str] | None = None,
    poll_s: float = 1.0,
    gpus_per_trial: int = 1,
) -> dict:
    """Run every missing trial of the ablation at `budget`; returns {"started": n, "status": rows}
    where `started` counts the trials this invocation ran (0 when the study was already complete)."""
    plan = expand(load_ablation(ablation), budget)
    n, gpu_groups = parse_gpus(gpus, workers, trials_per_gpu, gpus_per_trial)
    runs_dir = Path(runs_dir)
    for line in preflight(plan, fetch=True):  # missing data fail here, once, not in every trial
        print(line, flush=True)
    check_writable(runs_dir)  # like an unreachable storage, fails here, before any work
    store, label = open_storage(storage, runs_dir), storage_label(storage, runs_dir)
    run_id = uuid.uuid4().hex[:12]
    spawn = _spawner(plan, budget, storage, runs_dir, run_id, gpu_groups, train_command, poll_s)

    with coordinator_lock(runs_dir, plan.study):
        main, tuning = open_studies(store, plan, create=True, label=label, runs=runs_dir)
        foreign = [
            d for d in foreign_run_dirs(runs_dir / plan.study, [main, *tuning.values()]) if not adoptable(d, plan)
        ]
        if foreign:
            raise S2SError(
                f"{runs_dir / plan.study} holds {len(foreign)} run(s) that study '{plan.study}' in {label} did not "
                f"make (e.g. {foreign[0]}), likely from a study of that name in another storage: run with that "
                f"--storage, or move {runs_dir / plan.study} away first (nothing was moved or started)"
            )
        print(
            f"study {plan.study}: {grid_text(plan)}"
            + (f", {plan.nuisance_trials} nuisance trials per arm" if plan.nuisance_trials else "")
            + f"; storage {label}; {n} worker(s)",
            flush=True,
        )
        retry = lambda: reconcile(store, plan, main, tuning, run_id)  # noqa: E731 - also fails stale trials
        progress = Progress(plan, main, run_id)
        for _ in range(MAX_ROUNDS):
            added = retry()
            if not _waiting(main, tuning):
                break
            print(f"enqueued {added} trial(s)" if added else "resuming enqueued trials", flush=True)
            _supervise(n, spawn, poll_s, on_death=retry, tick=retry, progress=progress)
        started = _ran(run_id, main, tuning)
        rows = status_rows(plan, main, tuning)
    print(format_status(plan, rows, label), flush=True)
    return {"started": started, "status": rows}


def join_sweep(
    ablation: str | Path,
    budget: str = FULL,
    storage: str | None = None,
    workers: int | None = None,
    gpus: str | None = None,
    trials_per_gpu: int = 1,
    runs_dir: str | Path = "runs",
    train_command: list[str] | None = None,
    poll_s: float = 1.0,
    gpus_per_trial: int = 1,
) -> int:
    """`s2s sweep worker`: add workers (one per GPU with --gpus) to a study that `s2s sweep run` created,
    e.g. from another node sharing its RDB storage. They claim waiting trials until none is left; only
    the coordinator enqueues and retries. Returns how many trials they ran."""
    plan = expand(load_ablation(ablation), budget)
    n, gpu_groups = parse_gpus(gpus, workers, trials_per_gpu, gpus_per_trial)
    runs_dir = Path(runs_dir)
    check_writable(runs_dir)
    store, label = open_storage(storage, runs_dir), storage_label(storage, runs_dir)
    main, tuning = open_studies(store, plan, create=False, label=label)
    if main is None:
        raise S2SError(
            f"study '{plan.study}' does not exist in {label}; create it with `s2s sweep run "
            f"{ablation}" + ("" if budget == FULL else f" --budget {budget}") + f" --storage {label}`"
        )
    run_id = uuid.uuid4().hex[:12]
    print(f"joining study {plan.study}; storage {label}; {n} worker(s)", flush=True)
    _supervise(n, _spawner(plan, budget, storage, runs_dir, run_id, gpu_groups, train_command, poll_s), poll_s)
    return _ran(run_id, main, tuning)


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
            attempts = sorted((t for t in trials if grid_key(t) == (arm.name, seed)), key=lambda t: order[t.state])
            t = attempts[0] if attempts else None
            state = (
                "-"
                if t is None
                else "stale"
                if is_stale(t)
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
                "value": t.value if state == "done" else None,
                "trial": None if t is None else t.number,
            }
        if arm.name in tuning:
            tt = [t for t in tuning[arm.name].get_trials(deepcopy=False) if t.user_attrs.get(SLOT) is not None]
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
    cols = ["arm"] + (["tuning"] if plan.nuisance_trials else []) + [f"seed{s}" for s in plan.seeds] + ["mean", "sd"]
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
            line.append(f"{cell['state']} {cell['value']:.4g}" if cell["value"] is not None else cell["state"])
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
        for k in ("done", "running", "waiting", "failed", "stale", "-")
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
    store, label = open_storage(storage, runs_dir), storage_label(storage, runs_dir)
    main, tuning = open_studies(store, plan, create=False, label=label)
    text = format_status(plan, status_rows(plan, main, tuning), label)
    return text if main is not None else text + f"\n(study {plan.study} not started)"


# --- command line ----------------------------------------------------------------------------------


def preflight(plan: Plan, fetch: bool) -> list[str]:
    """What every trial will need, checked once before anything is enqueued: the data (present, fetched
    now with `fetch`, or downloadable). A problem all trials would share fails here, whole, instead of
    once per trial. Returns a line per distinct data source."""
    from .config import build_config
    from .data import check_data  # imports torch: only for a study whose data are files

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
    lines = [f"study {plan.study}: {grid_text(plan)} = "
             f"{len(plan.arms) * len(plan.seeds)} runs (nothing started)", *preflight(plan, fetch=False)]  # fmt: skip
    if plan.nuisance_trials:
        lines.append(
            f"first {plan.nuisance_trials} tuning trials per arm ({', '.join(plan.nuisance)}, sampled when they run, "
            f"seed {plan.ablation.spec.nuisance.seed}); every run below then trains with its arm's best values"
        )
    for arm in plan.arms:
        for seed in plan.seeds:
            name = f"{arm.name}-seed{seed}"
            overrides = plan.overrides(arm, seed, name=name, group=plan.study)
            run_dir = grid_run_dir(Path(runs_dir), plan, arm.name, seed)
            lines.append(shlex.join(["s2s", "train", *train_args(plan, run_dir, False, overrides)]))
    return "\n".join(lines)


def _launch(args: argparse.Namespace, what: str, launch):
    """`launch` (run_sweep or join_sweep) with the command's arguments; None, after one line on stderr,
    when Ctrl-C or SIGTERM stopped it."""
    try:
        return launch(
            args.ablation,
            args.budget,
            args.storage,
            args.workers,
            args.gpus,
            args.trials_per_gpu,
            runs_dir=args.runs_dir,
            gpus_per_trial=args.gpus_per_trial,
        )
    except (SweepInterrupted, KeyboardInterrupt):
        print(interrupted_line(args, what), file=sys.stderr)
        return None


def _cmd_run(args: argparse.Namespace) -> int:
    if args.dry_run:
        print(dry_run(args.ablation, args.budget, args.runs_dir))
        return 0
    out = _launch(args, "run", run_sweep)
    if out is None:
        return 130
    missing = sum(c["state"] != "done" for r in out["status"] for c in r["seeds"].values())
    return 0 if not missing else 1


def _cmd_worker(args: argparse.Namespace) -> int:
    n = _launch(args, "worker", join_sweep)
    if n is None:
        return 130
    print(f"workers ran {n} trial(s); nothing left waiting")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    print(sweep_status(args.ablation, args.budget, args.storage, args.runs_dir))
    return 0


def _cmd_wandb(args: argparse.Namespace) -> int:
    text = render_sweep(expand(load_ablation(args.ablation), args.budget), args.output)
    if args.output:
        atomic_write_text(Path(args.output), text)
        print(f"wrote {args.output}; start it with: wandb sweep {args.output}")
    else:
        print(text, end="")
    return 0


def run_dashboard(args: argparse.Namespace) -> int:
    """`s2s dashboard`: optuna-dashboard on the sweep's storage."""
    import optuna_dashboard  # a web server's worth of imports, for this command only

    check_port(args.port)
    try:
        store = open_storage(args.storage, args.runs_dir, create=False)  # a typo'd --runs-dir is an error
    except S2SError as exc:
        if args.storage:
            raise
        raise S2SError(
            f"{exc}: no sweep has run with --runs-dir {args.runs_dir}; name the runs folder of a "
            "sweep, or its --storage"
        ) from None
    print(f"optuna-dashboard for {storage_label(args.storage, args.runs_dir)} on http://127.0.0.1:{args.port}/")
    optuna_dashboard.run_server(store, host="127.0.0.1", port=args.port)
    return 0


def check_port(port: int) -> None:
    """Refuse a port that is out of range or taken, before saying where the dashboard listens."""
    if not 1 <= port <= 65535:
        raise S2SError(f"--port {port} is not a TCP port (1 to 65535)")
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise S2SError(
                f"--port {port}: 127.0.0.1:{port} is not free ({exc.strerror}); pass another --port"
            ) from None


# `s2s sweep ACTION` (parsers in cli.py)
COMMANDS = {"run": _cmd_run, "worker": _cmd_worker, "status": _cmd_status, "wandb": _cmd_wandb}
