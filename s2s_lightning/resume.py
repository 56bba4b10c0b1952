"""`s2s train --resume`: what a run may continue from (its last checkpoint, its own config with only
longer or relocated training, the same vocabularies), when there is nothing left to do, and the
checkpointing that makes a resumed run the run it continues.

What a resume guarantees: `last.ckpt` is the state at the end of the last completed epoch (weights,
optimizer, schedule, early stopping, the best checkpoint's score and every random generator), written
every epoch to a temporary name and renamed. A run stopped anywhere (SIGTERM, SIGINT, SIGKILL, mid-epoch,
in validation or in the final test) resumes from there, losing at most the epoch it was in, and on CPU
with train.deterministic it then computes exactly what the uninterrupted run computes
(tests/core/test_resume.py).
"""

from __future__ import annotations

import errno
import io
import random
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.plugins import TorchCheckpointIO
from pytorch_lightning.callbacks import Checkpoint, ModelCheckpoint

from . import metrics as M
from .checkpoint import read_checkpoint
from .config import RESUMABLE_KEYS, Config, load_config, resume_changes
from .data import DataBundle
from .errors import S2SError
from .records import (
    CHECKPOINT_DIR,
    COMPLETED,
    CONFIG_FILE,
    RECORD_FILE,
    VOCAB_FILE,
    RunKey,
    atomic_write_bytes,
    checkpoint_path,
    read_record,
)
from .text import read_vocabs


class DiskFull(S2SError):
    """A checkpoint could not be written (no space, quota, I/O error); the last good one is kept."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file in the same folder and renamed: a crash or a full disk
    never leaves a truncated checkpoint under its real name (Lightning's own writer streams into it)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any = None) -> None:
        # Serialized in memory first: torch's zip writer reports a failed write as a bare RuntimeError.
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        try:
            atomic_write_bytes(Path(path), buffer.getbuffer())
        except OSError as exc:  # the temporary file is gone: its space is free for the record to say "failed"
            free = shutil.disk_usage(Path(path).parent).free
            reason = exc.strerror or errno.errorcode.get(exc.errno or 0, type(exc).__name__)
            raise DiskFull(
                f"could not write checkpoint {path} ({reason}; {free / 2**20:.1f} MiB free on its file "
                "system); the last good checkpoint is kept"
            ) from None


class LastCheckpoint(Checkpoint):
    """last.ckpt at the end of every training epoch, after validation, early stopping and the best
    checkpoint have updated their state (checkpoint callbacks run last, in list order). Lightning 2.6's
    `ModelCheckpoint(save_last=True)` writes it only when the best checkpoint improved."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        trainer.save_checkpoint(self.path, weights_only=False)  # the whole state, optimizer included


class RandomState(pl.Callback):
    """Every random generator a run draws from (torch's CPU and CUDA generators: dropout, scheduled
    sampling, the loaders' seeds; numpy's; Python's) and the training sampler's epoch, saved in each
    checkpoint and restored on resume. Lightning saves none of them, and it draws a resumed run's first
    batches before it tells the sampler the epoch (`FitLoop.setup_data` runs before `set_epoch`).
    `sampler`: the training loader's batch sampler (data.BucketBatchSampler), set once it is built."""

    def __init__(self) -> None:
        self.sampler: Any = None

    def state_dict(self) -> dict[str, Any]:
        version, state, gauss = random.getstate()
        np_state = cast(tuple, np.random.get_state())  # the legacy tuple form
        return {
            "sampler_epoch": self.sampler.epoch if self.sampler is not None else None,
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
            # Plain ints and tensors only: checkpoints are read with weights_only=True.
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
            "python": [version, list(state), gauss],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.sampler is not None and state.get("sampler_epoch") is not None:
            self.sampler.set_epoch(state["sampler_epoch"])  # the next epoch's: the sampler counts on
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        kind, keys, *rest = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
        version, python_state, gauss = state["python"]
        random.setstate((version, tuple(python_state), gauss))


def checkpoint_callbacks(run_dir: Path) -> tuple[ModelCheckpoint, RandomState, list[pl.Callback]]:
    """best.ckpt (the lowest validation perplexity), last.ckpt (every epoch's end) and the random state
    both hold. Lightning runs checkpoint callbacks after the others at an epoch's end, in list order: so
    last.ckpt holds the best checkpoint's and early stopping's updated state."""
    best = ModelCheckpoint(
        dirpath=Path(run_dir) / CHECKPOINT_DIR,
        filename="best",
        monitor=M.VAL_PPL,
        mode="min",
        save_top_k=1,
        enable_version_counter=False,
    )
    random_state = RandomState()
    return best, random_state, [random_state, best, LastCheckpoint(checkpoint_path(run_dir, "last"))]


def checkpoint_epochs(path: Path) -> int:
    """How many epochs a last.ckpt holds (written at an epoch's end: its 0-based epoch + 1)."""
    epoch = read_checkpoint(path).get("epoch")
    return epoch + 1 if isinstance(epoch, int) else 0


def check_resume(cfg: Config, run_dir: Path) -> tuple[Path | None, int]:
    """The checkpoint to resume from and the epochs it holds, after checking `cfg` changes nothing but
    how long the run trains; (None, 0) when the run never finished an epoch."""
    saved = run_dir / CONFIG_FILE
    if not saved.is_file():
        raise S2SError(f"{run_dir} holds no run to resume (no {CONFIG_FILE}); drop --resume to start one")
    changes = resume_changes(load_config(saved), cfg)
    if changes:
        raise S2SError(
            f"cannot resume {run_dir} with another {changes[0]}; a resume may change only "
            f"{', '.join(RESUMABLE_KEYS)} (use a new --run-dir for another config)"
        )
    last = checkpoint_path(run_dir, "last")
    if not last.is_file():
        return None, 0  # it never finished an epoch: start it again, same config, same directory
    trained = checkpoint_epochs(last)  # fails with a clear message if the file is corrupted
    asked, planned = cfg.train.max_epochs, load_config(saved).train.max_epochs
    if asked < trained or (asked == trained and asked != planned):
        raise S2SError(
            f"cannot resume {run_dir} with train.max_epochs={asked}: it has trained {trained} epochs "
            f"already (of {planned}); give more than {trained}, or no train.max_epochs to finish "
            f"its {planned}"
        )
    return last, trained


def resume_config(run_dir: Path, overrides: Sequence[str]) -> Config:
    """A run's own config.yaml with `overrides` applied; `check_resume` refuses any but RESUMABLE_KEYS."""
    saved = Path(run_dir) / CONFIG_FILE
    if not saved.is_file():
        raise S2SError(f"{run_dir} holds no run to resume (no {CONFIG_FILE}); drop --resume to start one")
    return load_config(saved, list(overrides))


def check_same_vocabularies(bundle: DataBundle, run_dir: Path) -> None:
    """Refuse to resume a run whose data now give other vocabularies than it was trained with
    (changed data files, or a run written before data.addition.seed existed, whose addition
    questions were drawn with its own seed)."""
    if not (run_dir / VOCAB_FILE).is_file():
        return
    for side, saved, now in zip(
        ("source", "target"), read_vocabs(run_dir), (bundle.src_vocab, bundle.tgt_vocab)
    ):
        difference = saved.difference(now)
        if difference:
            raise S2SError(
                f"cannot resume {run_dir}: its data now give another {side} vocabulary than it was "
                f"trained with ({difference}); use a new --run-dir"
            )


def nothing_to_resume(cfg: Config, run_dir: Path) -> str | None:
    """Why `--resume` of `run_dir` has nothing to do (it completed, and `cfg` trains no longer than it
    did), or None. A completed run is left as it is: no test re-run, no new timestamps, no W&B run."""
    record = read_record(run_dir) if (run_dir / RECORD_FILE).is_file() else {}
    if record.get(RunKey.STATUS) != COMPLETED or not (run_dir / CONFIG_FILE).is_file():
        return None
    saved = load_config(run_dir / CONFIG_FILE)
    trained = saved.train.max_epochs
    if cfg.train.max_epochs > trained or resume_changes(saved, cfg):
        return None  # more to train, or a change that train() refuses with its own message
    return (
        f"{run_dir} is complete ({record.get(RunKey.EPOCHS_COMPLETED, trained)} epochs of "
        f"train.max_epochs={trained}): nothing to do; resume with train.max_epochs={trained + 1} or more "
        "to train it further"
    )
