"""One run: build data, model and Trainer from a Config, train, evaluate, write the run record.

The record (records.py) is rewritten atomically at the start ("running"), after every validation
epoch (history.csv) and at the end ("completed", "failed" or "interrupted"), so a killed run leaves
a readable record and a last checkpoint to resume from.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

from . import metrics as M
from .checkpoint import load_state_dict, model_state
from .config import AXES, Config, arm_name, check_axes, load_config
from .data import DataBundle
from .errors import S2SError
from .evaluation import HypothesisScorer, evaluate_split
from .model import Seq2Seq, count_parameters
from .records import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    HISTORY_FILE,
    RECORD_FILE,
    VOCAB_FILE,
    check_writable,
    checkpoint_path,
    git_commit,
    git_dirty,
    library_versions,
    peak_memory_mb,
    read_history,
    read_json,
    read_vocabs,
    write_csv,
    write_json,
    write_vocabs,
    write_yaml,
)
from .system import DivergenceError, Seq2SeqSystem
from .wandb_logging import finish_wandb, make_wandb_logger


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def base_record(cfg: Config, run_dir: Path, axes: Sequence[str] = ()) -> dict:
    """The record a run starts with; `axes`: its study's scientific axes beyond the four paper AXES."""
    return {
        "status": "running",
        "error": None,
        "task": M.task_of(cfg.data.name),
        "data": cfg.data.name,
        "src_lang": cfg.data.src_lang if cfg.data.name != "addition" else None,
        "tgt_lang": cfg.data.tgt_lang if cfg.data.name != "addition" else None,
        "seed": cfg.seed,
        "arm": arm_name(cfg, axes),
        "axes": {k: cfg.get(k) for k in (*AXES, *check_axes(cfg, axes))},
        "beam_size": cfg.eval.beam_size,
        "metrics": {},
        "bleu_signature": None,
        "run_dir": str(run_dir),
        "started_at": _now(),
        "finished_at": None,
        "versions": library_versions(),
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "study": os.environ.get("S2S_STUDY"),
        "trial_number": _int_env("S2S_TRIAL_NUMBER"),
    }


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


def check_resume(cfg: Config, run_dir: Path) -> Path | None:
    """The checkpoint to resume from, after checking it belongs to this config."""
    last = checkpoint_path(run_dir, "last")
    if not last.is_file():
        return None
    saved = run_dir / CONFIG_FILE
    if saved.is_file():
        old = load_config(saved).to_dict()
        new = cfg.to_dict()
        for section in ("data", "model", "train"):
            if old[section] != new[section] or old["seed"] != new["seed"]:
                diff = [f"{section}.{k}" for k in new[section] if old[section].get(k) != new[section][k]]
                raise S2SError(
                    f"cannot resume {run_dir}: its config differs ({', '.join(diff) or 'seed'}); use a new --run-dir"
                )
    load_state_dict(last)  # fails with a clear message if the file is corrupted
    return last


def check_same_vocabularies(bundle: DataBundle, run_dir: Path) -> None:
    """Refuse to resume a run whose data now give other vocabularies than it was trained with
    (changed data files, or a run written before data.addition.seed existed, whose addition
    questions were drawn with its own seed)."""
    if not (run_dir / VOCAB_FILE).is_file():
        return
    for side, saved, now in zip(("source", "target"), read_vocabs(run_dir), (bundle.src_vocab, bundle.tgt_vocab)):
        difference = saved.difference(now)
        if difference:
            raise S2SError(
                f"cannot resume {run_dir}: its data now give another {side} vocabulary than it was "
                f"trained with ({difference}); use a new --run-dir"
            )


def train(cfg: Config, run_dir: str | Path, resume: bool = False, axes: Sequence[str] = ()) -> dict:
    """Train and evaluate `cfg`, writing the run record into run_dir. Returns the record.
    `axes`: the config keys beyond AXES that are scientific axes of the run's study (recorded)."""
    run_dir = Path(run_dir)
    check_axes(cfg, axes)
    check_writable(run_dir)
    ckpt_path = check_resume(cfg, run_dir) if resume else None
    if not resume and (run_dir / RECORD_FILE).is_file():
        raise S2SError(f"{run_dir} already holds a run; pass --resume to continue it or use a new --run-dir")

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    bundle = DataBundle(cfg)  # data errors surface before anything is written
    if ckpt_path is not None:
        check_same_vocabularies(bundle, run_dir)
    write_yaml(run_dir / CONFIG_FILE, cfg.to_dict())
    write_vocabs(run_dir, bundle.src_vocab, bundle.tgt_vocab)
    record = base_record(cfg, run_dir, axes)
    if ckpt_path is not None and (run_dir / RECORD_FILE).is_file():
        old = read_json(run_dir / RECORD_FILE)
        record["wandb"] = old.get("wandb")
        record["resumed_from"] = str(ckpt_path)
    write_json(run_dir / RECORD_FILE, record)

    model = Seq2Seq(len(bundle.src_vocab), len(bundle.tgt_vocab), cfg.model)
    train_loader = bundle.loader("train", shuffle=True)
    steps = len(train_loader)
    if cfg.train.limit_train_batches:
        limit = cfg.train.limit_train_batches
        steps = int(limit) if limit >= 1 else max(1, int(steps * limit))
    system = Seq2SeqSystem(cfg, model, HypothesisScorer(bundle), steps_per_epoch=steps)
    history = read_history(run_dir / HISTORY_FILE) if ckpt_path else []
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / CHECKPOINT_DIR,
        filename="best",
        monitor=M.VAL_PPL,
        mode="min",
        save_top_k=1,
        save_last=True,
        enable_version_counter=False,
    )
    callbacks = [checkpoint, HistoryWriter(run_dir / HISTORY_FILE, history)]
    if cfg.train.early_stopping_patience:
        callbacks.append(EarlyStopping(M.VAL_PPL, patience=cfg.train.early_stopping_patience, mode="min"))
    logger, wandb_info = make_wandb_logger(cfg, run_dir, record["arm"], record.get("wandb"))
    record["wandb"] = wandb_info
    record["num_parameters"] = count_parameters(model)
    write_json(run_dir / RECORD_FILE, record)

    trainer = pl.Trainer(
        default_root_dir=run_dir,
        max_epochs=cfg.train.max_epochs,
        accelerator=cfg.train.accelerator,
        devices=cfg.train.devices,
        strategy=cfg.train.strategy,
        precision=cfg.train.precision,
        gradient_clip_val=cfg.train.grad_clip,
        gradient_clip_algorithm="norm",
        logger=logger or False,
        callbacks=callbacks,
        enable_progress_bar=cfg.train.progress_bar,
        enable_model_summary=False,
        # "warn": deterministic kernels wherever torch has them, but a CUDA op without one warns instead
        # of failing the run; CPU runs stay exactly repeatable (tests/test_train.py).
        deterministic="warn" if cfg.train.deterministic else False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        limit_train_batches=cfg.train.limit_train_batches,
        log_every_n_steps=10,
    )
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            trainer.fit(
                system,
                train_loader,
                bundle.loader("val", batch_size=cfg.eval.batch_size),
                ckpt_path=str(ckpt_path) if ckpt_path else None,
                weights_only=True,
            )
        if checkpoint.best_model_path:
            system.model.load_state_dict(model_state(checkpoint.best_model_path))
        test_out = trainer.test(system, bundle.loader("test", batch_size=cfg.eval.batch_size), verbose=False)
        device = system.device
        result = (
            evaluate_split([system.model], bundle, "test", cfg.eval, run_dir, device)
            if trainer.is_global_zero
            else {"metrics": {}, "bleu_signature": None}
        )
    except DivergenceError as exc:
        return _finish(record, run_dir, start, trainer, "failed", str(exc), logger, system)
    except KeyboardInterrupt:
        _finish(record, run_dir, start, trainer, "interrupted", "interrupted by the user", logger, system)
        raise
    except Exception as exc:  # the record must never stay "running" after the process is gone
        first = str(exc).splitlines()[0] if str(exc) else ""
        _finish(record, run_dir, start, trainer, "failed", f"{type(exc).__name__}: {first}", logger, system)
        raise
    metrics = dict(test_out[0]) if test_out else {}
    best = min((r for r in history if r.get(M.VAL_PPL) is not None), key=lambda r: r[M.VAL_PPL], default={})
    metrics.update({k: v for k, v in best.items() if k.startswith("val/")})
    metrics.update(result["metrics"])
    record["metrics"] = {k: float(v) for k, v in metrics.items() if v is not None}
    record["bleu_signature"] = result.get("bleu_signature")
    if trainer.interrupted:
        return _finish(record, run_dir, start, trainer, "interrupted", "training was interrupted", logger, system)
    return _finish(record, run_dir, start, trainer, "completed", None, logger, system)


def _finish(record: dict, run_dir: Path, start: float, trainer, status: str, error: str | None, logger, system) -> dict:
    device = system.device
    record.update(
        {
            "status": status,
            "error": error,
            "wall_time_s": time.perf_counter() - start,
            "epochs_completed": int(trainer.current_epoch),
            "peak_memory_mb": peak_memory_mb(device),
            "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
            "finished_at": _now(),
        }
    )
    if trainer.is_global_zero:
        write_json(run_dir / RECORD_FILE, record)
        if logger is not None:
            finish_wandb(logger, record)
    return record


def exit_code(record: dict) -> int:
    return 0 if record["status"] == "completed" else 1


def run_train(args: argparse.Namespace) -> int:
    """`s2s train`: one configuration from --config and KEY=VALUE overrides."""
    cfg = load_config(args.config, args.overrides)
    run_dir = (
        args.run_dir
        or Path("runs") / "train" / f"{datetime.now():%Y%m%d-%H%M%S}-{arm_name(cfg, args.axis)}-s{cfg.seed}"
    )
    record = train(cfg, run_dir, resume=args.resume, axes=args.axis)
    metrics = " ".join(f"{k}={v:.4g}" for k, v in sorted(record["metrics"].items()) if k.startswith("test/"))
    print(f"{record['status']}: {run_dir} {metrics}")
    if record.get("error"):
        print(f"s2s: error: {record['error']}", file=sys.stderr)
    return exit_code(record)
