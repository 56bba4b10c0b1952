"""A sweep worker process: claims trials of one plan until nothing is waiting, running each with a
TrialRunner (trial.py). `s2s sweep run` spawns these; `s2s sweep worker` adds more, from any node.
"""

from __future__ import annotations

import signal
import sys
import time
import zlib

import optuna

from ..config import build_config
from .launch import SweepLaunch, WorkerSlot
from .plan import Plan, expand, load_ablation
from .storage import SLOT, claim, open_storage, open_studies
from .trial import Interrupted, TrialRunner, die_with_parent


def _raise_interrupted(signum, frame):
    # Further signals must not break the clean-up that follows.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Interrupted(signum)


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


def work(plan: Plan, storage, launch: SweepLaunch, slot: WorkerSlot) -> int:
    """Claim and run trials until nothing is waiting; returns how many trials this worker ran."""
    main, tuning = open_studies(storage, plan, create=False, pruner=_pruner(plan))
    if main is None:
        return 0
    runner = TrialRunner(plan, storage, tuning, launch, slot)
    ran = 0
    while True:
        study, frozen, waiting = claim(storage, plan, main, tuning)
        if study is None:
            if not waiting:
                return ran
            time.sleep(launch.poll_s)  # grid trials wait for their arm's tuning, running elsewhere
            continue
        assert frozen is not None  # claimed with its study
        if study is not main:  # the arm's own study: TPE learns from this arm's trials only
            study.sampler = _sampler(plan, frozen.user_attrs[SLOT])
        try:
            runner.run(study, frozen)
        except optuna.exceptions.UpdateFinishedTrialError:
            # Finished elsewhere meanwhile (failed as stale by a coordinator): its run directory, not
            # this trial, holds the result, which a retry adopts or resumes. Never a reason to stop.
            runner.log(f"{study.study_name} trial {frozen.number}: finished elsewhere meanwhile; moving on")
        ran += 1


def worker_process(launch: SweepLaunch, slot: WorkerSlot) -> None:
    """Entry point of a worker process spawned by `s2s sweep run` (multiprocessing, spawn)."""
    die_with_parent(signal.SIGTERM)  # the coordinator died: stop the trial cleanly
    signal.signal(signal.SIGINT, _raise_interrupted)
    signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        plan = expand(load_ablation(launch.ablation), launch.budget)
        work(plan, open_storage(launch.storage, launch.runs_dir), launch, slot)
    except Interrupted as exc:
        sys.exit(128 + exc.signum)  # the shell's convention: 130 for SIGINT, 143 for SIGTERM
