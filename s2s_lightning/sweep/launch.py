"""How a sweep is launched: the one set of launch parameters, and how the GPUs are split among workers.

`SweepLaunch` is what `s2s sweep run` / `s2s sweep worker` pass down to the coordinator and through it
to every worker process (which is spawned, so everything in it pickles); `WorkerSlot` is what one worker
process adds: its GPU group, its share of the CPU threads and its log tag.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import S2SError
from .plan import FULL


@dataclass(frozen=True)
class SweepLaunch:
    """One `s2s sweep run|worker`: the ablation at a budget, its storage and runs folder, and the workers."""

    ablation: str | Path
    budget: str = FULL
    storage: str | None = None  # None: the journal file under runs_dir
    workers: int | None = None  # None: 1, or one per GPU (group) with `gpus`
    gpus: str | None = None  # "all" or indices "0,1,3"
    trials_per_gpu: int = 1
    runs_dir: str | Path = "runs"
    train_command: Sequence[str] | None = None  # tests run a stand-in for `python -m s2s_lightning train`
    poll_s: float = 1.0
    gpus_per_trial: int = 1
    wait_s: float = 0.0  # `sweep worker --wait`: how long to wait for the coordinator to create the study

    def worker_slots(self, run_id: str) -> list[WorkerSlot]:
        """One slot per worker process: its GPU group and an even share of the CPUs this job has."""
        _, groups = parse_gpus(self.gpus, self.workers, self.trials_per_gpu, self.gpus_per_trial)
        threads = max(1, job_cpus() // len(groups))
        return [WorkerSlot(run_id, gpus, threads, f"w{i}") for i, gpus in enumerate(groups)]


def job_cpus() -> int:
    """The CPUs this process may use: a SLURM task's --cpus-per-task (SLURM binds no CPUs without a task
    plugin, so the machine's count would oversubscribe a shared node), else the CPU affinity mask."""
    try:
        return max(1, int(os.environ["SLURM_CPUS_PER_TASK"]))
    except (KeyError, ValueError):
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class WorkerSlot:
    """What one worker process of a launch adds: the launch's id (trials record it), its GPUs, threads,
    tag."""

    run_id: str
    gpus: str | None = None  # CUDA_VISIBLE_DEVICES of its trials
    threads: int | None = None  # OMP/MKL threads of its trials
    tag: str = "w0"  # its log lines' prefix


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
                raise S2SError(
                    f"--gpus {spec}: only {len(given)} are visible (CUDA_VISIBLE_DEVICES={given_env()})"
                )
            ids = [given[int(g)] for g in ids]
        else:  # nothing restricts this process: the machine's own GPUs (without any, trials ran on the CPU)
            count = len(visible_gpus(all_of_them=True) or [])
            if max(int(g) for g in ids) >= count:
                raise S2SError(
                    f"--gpus {spec}: this machine has {count} CUDA device{'s' if count != 1 else ''} "
                    "visible (drop --gpus to run on the CPU, with --workers N)"
                )
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
