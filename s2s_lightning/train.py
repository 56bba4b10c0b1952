"""One run: build data, model and Trainer from a Config, train, evaluate, write the run record.

The record (records.py) is rewritten atomically at the start ("running"), after every validation
epoch (history.csv) and at the end ("completed", "failed" or "interrupted"), so a killed run leaves
a readable record and a last checkpoint to resume from.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.plugins.environments import LightningEnvironment, SLURMEnvironment
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from . import metrics as M
from .checkpoint import model_state
from .config import (
    AXES,
    Config,
    arm_name,
    check_axes,
    cpu_threads,
    load_config,
)
from .data import DataBundle
from .environment import (
    git_commit,
    git_diff,
    git_dirty,
    installed_distributions,
    library_versions,
    peak_memory_mb,
    untracked_files,
)
from .errors import S2SError
from .evaluation import HypothesisScorer, evaluate_split
from .model import (
    Seq2Seq,
    check_precision,
    count_parameters,
    decode_batch_size,
    use_deterministic,
    use_tf32,
)
from .records import (
    COMPLETED,
    CONFIG_FILE,
    ENVIRONMENT_FILE,
    FAILED,
    GIT_DIFF_FILE,
    HISTORY_FILE,
    INTERRUPTED,
    RECORD_FILE,
    RUNNING,
    RunKey,
    RunRecord,
    atomic_write_text,
    check_writable,
    read_history,
    read_record,
    run_lock,
    write_counts,
    write_csv,
    write_json,
    write_yaml,
)
from .resume import (
    AtomicCheckpointIO,
    DiskFull,
    RandomState,
    check_resume,
    check_same_vocabularies,
    checkpoint_callbacks,
    nothing_to_resume,
    resume_config,
)
from .system import DIVERGENCE_CHECK_EVERY, DivergenceError, Seq2SeqSystem, numerics
from .text import write_vocabs
from .wandb_logging import SampleTranslations, finish_wandb, make_wandb_logger


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def base_record(cfg: Config, run_dir: Path, axes: Sequence[str] = ()) -> RunRecord:
    """The record a run starts with; `axes`: its study's scientific axes beyond the four paper AXES."""
    return RunRecord(
        status=RUNNING,
        error=None,
        task=M.task_of(cfg.data.name),
        data=cfg.data.name,
        src_lang=cfg.data.src_lang if cfg.data.name != "addition" else None,
        tgt_lang=cfg.data.tgt_lang if cfg.data.name != "addition" else None,
        seed=cfg.seed,
        arm=arm_name(cfg, axes),
        axes={k: cfg.get(k) for k in (*AXES, *check_axes(cfg, axes))},
        beam_size=cfg.eval.beam_size,
        metrics={},
        bleu_signature=None,
        run_dir=str(run_dir),
        started_at=_now(),
        finished_at=None,
        versions=library_versions(),
        git_commit=git_commit(),
        git_dirty=git_dirty(),
        git_diff=None,
        untracked=[],
        study=os.environ.get("S2S_STUDY"),
        storage=os.environ.get("S2S_STORAGE"),
        trial_number=_int_env("S2S_TRIAL_NUMBER"),
    )


def _int_env(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value and value.isdigit() else None


class HistoryWriter(pl.Callback):
    """Rewrites history.csv after each epoch (validation runs before on_train_epoch_end)."""

    def __init__(self, path: Path, rows: list[dict]):
        self.path, self.rows = path, rows

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.is_global_zero and pl_module.epoch_metrics:
            row = dict(pl_module.epoch_metrics)
            self.rows[:] = [r for r in self.rows if r["epoch"] != row["epoch"]] + [row]
            write_csv(self.path, self.rows)
            print(epoch_line(row, trainer.max_epochs), flush=True)  # train.log's line per epoch


def epoch_line(row: dict, max_epochs: int) -> str:
    """`epoch 3/8: train loss 3.121, val ppl 20.13, val bleu 12.31; 250 s (val decoding 1%)`"""
    shown = [
        (M.TRAIN_LOSS, "train loss", ".4g"),
        (M.VAL_PPL, "val ppl", ".4g"),
        (M.VAL_BLEU, "val bleu", ".2f"),
        (M.VAL_EXACT_MATCH, "val exact match", ".4f"),
    ]
    parts = [f"{label} {row[key]:{spec}}" for key, label, spec in shown if row.get(key) is not None]
    seconds = row.get(M.EPOCH_S)
    share = row.get(M.VAL_DECODE_SHARE)
    time_text = f"; {seconds:.0f} s" if seconds is not None else ""
    time_text += f" (val decoding {share:.0%})" if share else ""
    return f"epoch {row['epoch'] + 1}/{max_epochs}: {', '.join(parts)}{time_text}"


# Quiet by default: Lightning's device lines and product tips, once per run, say nothing about the run.
for _name in ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero"):
    logging.getLogger(_name).setLevel(logging.WARNING)
# A logging handler that cannot write (W&B's debug log on a full disk) prints a traceback per message;
# the run's own failure is said once, in its record and on stderr.
logging.raiseExceptions = False
# Warnings every run printed that say nothing about it: data loader workers (batches are built in the
# main process on purpose), a deprecation inside Lightning, and the checkpoint folder a resume reuses.
# Lightning warns wherever SLURM's srun is installed but unused; runs start their own ranks (make_trainer).
warnings.filterwarnings("ignore", message="The `srun` command is available on your system but is not used")
QUIET_WARNINGS = (
    ".*does not have many workers.*",
    r".*isinstance\(treespec, LeafSpec\).*",
    "Checkpoint directory .* exists",
    ".*is smaller than the logging interval.*",
)


class RunInterrupted(Exception):
    """SIGINT or SIGTERM stopped a run; its record says "interrupted" and `--resume` continues it."""

    def __init__(self, run_dir: Path, signum: int):
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.run_dir, self.signum = run_dir, signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


@contextmanager
def _signals_interrupt() -> Iterator[list[int]]:
    """SIGINT and SIGTERM raise KeyboardInterrupt (Lightning stops fitting on it) and are noted in the
    yielded list, so the run can tell an interrupt from a crash; later ones are ignored so the record
    is closed undisturbed. Outside the main thread (library use) nothing changes."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum, frame):
        received.append(signum)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def make_trainer(cfg: Config, run_dir: Path, callbacks: list) -> pl.Trainer:
    """The Trainer, built before the run directory is touched so that an impossible device or strategy
    (train.accelerator=gpu without one) is refused without leaving a run behind."""
    t = cfg.train
    # Inside a SLURM job Lightning would take its ranks from SLURM_NTASKS and expect srun to start each
    # one: a trial with train.devices=K then hangs or trains on one rank. Runs start their own ranks.
    plugins: list = [LightningEnvironment()] if SLURMEnvironment.detect() else []
    plugins.append(AtomicCheckpointIO())  # no truncated checkpoint under its real name, ever
    try:
        trainer = pl.Trainer(
            default_root_dir=run_dir,
            max_epochs=t.max_epochs,
            accelerator=t.accelerator,
            devices=t.devices,
            strategy=t.strategy,
            precision=cast(Any, t.precision),  # a str Lightning validates
            gradient_clip_val=t.grad_clip,
            gradient_clip_algorithm="norm",
            logger=False,  # the W&B logger joins once the run is recorded (train)
            callbacks=callbacks,
            enable_progress_bar=t.progress_bar and sys.stdout.isatty(),  # a bar in a log is 80 KB of \r
            enable_model_summary=False,
            deterministic=False,  # a policy that depends on the device: use_deterministic, below
            num_sanity_val_steps=0,
            use_distributed_sampler=False,
            limit_train_batches=t.limit_train_batches,
            # the steps whose loss is read back (Seq2SeqSystem._step)
            log_every_n_steps=DIVERGENCE_CHECK_EVERY,
            plugins=plugins,
        )
    except (MisconfigurationException, ValueError, RuntimeError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise S2SError(
            f"train.accelerator={t.accelerator} train.devices={t.devices} train.strategy={t.strategy} "
            f"train.precision={t.precision}: {first}"
        ) from None
    device_type = trainer.strategy.root_device.type
    check_precision(t.precision, device_type)
    use_deterministic(t.deterministic, device_type)
    use_tf32(t.tf32, device_type)
    return trainer


def train(cfg: Config, run_dir: str | Path, resume: bool = False, axes: Sequence[str] = ()) -> RunRecord:
    """Train and evaluate `cfg`, writing the run record into run_dir. Returns the record.
    `axes`: the config keys beyond AXES that are scientific axes of the run's study (recorded).

    Bad input (config, device, data, a busy or foreign run directory) raises S2SError before any record
    is written. Once running, the run always ends with a true status: "completed", "failed" (with the
    reason; a divergence returns, anything else is re-raised) or "interrupted" (SIGINT/SIGTERM raise
    RunInterrupted; `--resume` continues the run)."""
    run_dir = Path(run_dir)
    check_axes(cfg, axes)
    torch.set_num_threads(cpu_threads(cfg.train.threads))
    history: list[dict] = []
    checkpoint, random_state, saving = checkpoint_callbacks(run_dir)
    callbacks = [HistoryWriter(run_dir / HISTORY_FILE, history), *saving]
    if cfg.train.early_stopping_patience:
        callbacks.append(EarlyStopping(M.VAL_PPL, patience=cfg.train.early_stopping_patience, mode="min"))
    trainer = make_trainer(cfg, run_dir, callbacks)
    if launched_by_lightning():
        # A DDP rank that Lightning started by running this command again: rank 0 holds the run directory
        # (its lock, its record); this process only joins the training.
        with _signals_interrupt() as received:
            run = RunContext(
                cfg, run_dir, axes, trainer, checkpoint, history, received, False, random_state=random_state
            )
            return _train(run, resume)
    new_dir = not run_dir.exists()
    check_writable(run_dir)
    try:
        with run_lock(run_dir), _signals_interrupt() as received:
            run = RunContext(
                cfg, run_dir, axes, trainer, checkpoint, history, received, random_state=random_state
            )
            return _train(run, resume)
    except S2SError:
        if new_dir and not (run_dir / RECORD_FILE).exists():
            shutil.rmtree(run_dir, ignore_errors=True)  # refused before it started: leave nothing behind
        raise


def launched_by_lightning() -> bool:
    """Whether this process is a DDP rank > 0 that Lightning's `ddp` strategy started by running the
    command line again (it sets LOCAL_RANK for those; the process the user started has none)."""
    return int(os.environ.get("LOCAL_RANK", "0") or 0) > 0


@dataclass
class RunContext:
    """One training run as train() set it up: what its stages (_start, _fit_and_test, _finish) share."""

    cfg: Config
    run_dir: Path
    axes: Sequence[str]  # its study's scientific axes beyond AXES (recorded)
    trainer: pl.Trainer
    checkpoint: ModelCheckpoint
    history: list[dict]  # history.csv's rows (HistoryWriter appends)
    received: list[int]  # the signals that arrived (SIGINT/SIGTERM)
    writer: bool = True  # False for a DDP rank that only trains: rank 0 writes records, W&B, evaluation
    record: RunRecord = field(default_factory=dict)  # type: ignore[assignment]
    start: float = field(default_factory=time.perf_counter)
    logger: Any = None  # the W&B logger, when there is one
    system: Seq2SeqSystem | None = None
    random_state: RandomState = field(default_factory=RandomState)  # the trainer's, to restore on resume


def _train(run: RunContext, resume: bool) -> RunRecord:
    """train() once the run directory is locked and signals are watched."""
    bundle, ckpt_path = _start(run, resume)
    run.start = time.perf_counter()
    try:
        test_out, result = _fit_and_test(run, bundle, ckpt_path)
    except BaseException as exc:  # the record must never stay "running" after the process is gone
        if run.received:
            name = signal.Signals(run.received[0]).name
            _finish(run, INTERRUPTED, f"interrupted by {name}")
            raise RunInterrupted(run.run_dir, run.received[0]) from None
        if isinstance(exc, (DivergenceError, DiskFull)):  # the run's own failure, said in one line
            return _finish(run, FAILED, str(exc))
        if isinstance(exc, SystemExit):
            why = f"exited with code {exc.code}"
        else:
            why = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
        _finish(run, FAILED, why)
        raise
    metrics = dict(test_out[0]) if test_out else {}
    rows = (r for r in run.history if r.get(M.VAL_PPL) is not None)
    best = min(rows, key=lambda r: r[M.VAL_PPL], default={})
    metrics.update({k: v for k, v in best.items() if k.startswith("val/")})
    metrics.update(result["metrics"])
    run.record[RunKey.METRICS] = {k: float(v) for k, v in metrics.items() if v is not None}
    run.record[RunKey.BLEU_SIGNATURE] = result.get("bleu_signature")
    return _finish(run, COMPLETED, None)


def _start(run: RunContext, resume: bool) -> tuple[DataBundle, Path | None]:
    """The data, the checkpoint to resume from, and (as the writer) the run's first files and record."""
    cfg, run_dir = run.cfg, run.run_dir
    ckpt_path, trained = check_resume(cfg, run_dir) if resume else (None, 0)
    if run.writer and not resume and (run_dir / RECORD_FILE).is_file():
        raise S2SError(f"{run_dir} already holds a run; pass --resume to continue it or use a new --run-dir")
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    bundle = DataBundle(cfg)  # data errors surface before anything is written
    if ckpt_path is not None:
        check_same_vocabularies(bundle, run_dir)
        # Rows of epochs after the checkpoint (written before a kill could save it) are trained again.
        run.history[:] = [r for r in read_history(run_dir / HISTORY_FILE) if r["epoch"] < trained]
    run.record = base_record(cfg, run_dir, run.axes)
    if run.writer:
        write_yaml(run_dir / CONFIG_FILE, cfg.to_dict())
        write_vocabs(run_dir, bundle.src_vocab, bundle.tgt_vocab)
        write_counts(run_dir, bundle.src_freq, bundle.tgt_freq)
        _write_provenance(run)
        if resume and (run_dir / RECORD_FILE).is_file():
            run.record[RunKey.WANDB] = read_record(run_dir).get(RunKey.WANDB)
            run.record[RunKey.RESUMED_FROM] = str(ckpt_path) if ckpt_path else None
        write_json(run_dir / RECORD_FILE, run.record)
    return bundle, ckpt_path


def _write_provenance(run: RunContext) -> None:
    """RUN/environment.txt always; RUN/git.diff (named in the record) when the tree was edited."""
    atomic_write_text(run.run_dir / ENVIRONMENT_FILE, installed_distributions())
    diff = git_diff() if run.record.get(RunKey.GIT_DIRTY) else None
    if diff:
        atomic_write_text(run.run_dir / GIT_DIFF_FILE, diff)
        run.record[RunKey.GIT_DIFF], run.record[RunKey.UNTRACKED] = GIT_DIFF_FILE, untracked_files()


def _fit_and_test(run: RunContext, bundle: DataBundle, ckpt_path: Path | None) -> tuple[list, dict]:
    """Fit, reload the best checkpoint, test (Lightning's loss, then decoding and its metrics on rank 0)."""
    cfg, trainer, record = run.cfg, run.trainer, run.record
    model = Seq2Seq(len(bundle.src_vocab), len(bundle.tgt_vocab), cfg.model)
    device_type = trainer.strategy.root_device.type
    eval_batch = decode_batch_size(cfg.eval, device_type)
    train_loader = bundle.loader("train", shuffle=True, device_type=device_type)
    run.random_state.sampler = train_loader.batch_sampler
    # steps per epoch: from the trainer
    scorer = HypothesisScorer(bundle)
    run.system = system = Seq2SeqSystem(cfg, model, scorer)
    if run.writer:  # one W&B run per training run, not per rank
        run.logger, record[RunKey.WANDB] = make_wandb_logger(
            cfg, run.run_dir, record, record.get(RunKey.WANDB)
        )
        if run.logger is not None:
            trainer.loggers = [run.logger]
            trainer.callbacks.append(SampleTranslations(run.logger, scorer))  # type: ignore[attr-defined]
        record[RunKey.NUM_PARAMETERS] = count_parameters(model)
        write_json(run.run_dir / RECORD_FILE, record)
    with warnings.catch_warnings():
        for message in QUIET_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        trainer.fit(
            system,
            train_loader,
            bundle.loader("val", batch_size=eval_batch, device_type=device_type),
            ckpt_path=str(ckpt_path) if ckpt_path else None,
            weights_only=True,
        )
        if run.checkpoint.best_model_path:
            system.model.load_state_dict(model_state(run.checkpoint.best_model_path))
        record[RunKey.NUMERICS] = numerics(cfg, trainer, model)  # training's dtypes, before any evaluation
        test_loader = bundle.loader("test", batch_size=eval_batch, device_type=device_type)
        test_out = trainer.test(system, test_loader, verbose=False)
    # Under `ddp` the ranks are still joined: each decodes its share of the test set, as in validation.
    ranks = (trainer.global_rank, trainer.world_size) if torch.distributed.is_initialized() else (0, 1)
    record[RunKey.NUMERICS]["test_decoded_by"] = ranks[1]  # ranks
    result = None
    if trainer.is_global_zero or ranks[1] > 1:
        args = ([system.model], bundle, "test", cfg.eval, run.run_dir, system.device)
        result = evaluate_split(*args, ranks=ranks)
    return test_out, result or {"metrics": {}, "bleu_signature": None}


def _finish(run: RunContext, status: str, error: str | None) -> RunRecord:
    device = run.system.device if run.system is not None else torch.device("cpu")
    run.record.update(
        RunRecord(
            status=status,
            error=error,
            wall_time_s=time.perf_counter() - run.start,
            epochs_completed=int(run.trainer.current_epoch),
            peak_memory_mb=peak_memory_mb(device),
            device=str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
            finished_at=_now(),
        )
    )
    if run.trainer.is_global_zero:
        write_json(run.run_dir / RECORD_FILE, run.record)
        if run.logger is not None:
            finish_wandb(run.logger, run.record)
    return run.record


def run_train(args: argparse.Namespace) -> int:
    """`s2s train`: one configuration from --config and KEY=VALUE overrides, or `--resume` of a run
    from its own config.yaml (overrides may then only extend training)."""
    if args.resume:
        if args.run_dir is None:
            raise S2SError("--resume needs --run-dir: the run directory to continue")
        if args.config:
            raise S2SError("--resume reads the run's own config.yaml; drop --config")
        cfg = resume_config(args.run_dir, args.overrides)
    else:
        cfg = load_config(args.config, args.overrides)
    stamp = f"{datetime.now():%Y%m%d-%H%M%S}-{arm_name(cfg, args.axis)}-s{cfg.seed}"
    run_dir = args.run_dir or Path("runs") / "train" / stamp
    if args.resume:
        done = nothing_to_resume(cfg, run_dir)
        if done:
            print(done)
            return 0
    try:
        record = train(cfg, run_dir, resume=args.resume, axes=args.axis)
    except RunInterrupted as exc:
        print(
            f"s2s: {exc}; the run is kept: continue it with s2s train --run-dir {run_dir} --resume",
            file=sys.stderr,
        )
        return exc.exit_code
    metrics = " ".join(
        f"{k}={v:.4g}" for k, v in sorted(record[RunKey.METRICS].items()) if k.startswith("test/")
    )
    print(f"{record[RunKey.STATUS]}: {run_dir} {metrics}")
    if record.get(RunKey.ERROR):
        print(f"s2s: error: {record[RunKey.ERROR]}", file=sys.stderr)
    return 0 if record[RunKey.STATUS] == COMPLETED else 1
