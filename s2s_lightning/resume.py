"""`s2s train --resume`: what a run may continue from (its last checkpoint, its own config with only
longer or relocated training, the same vocabularies), and when there is nothing left to do."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .checkpoint import load_state_dict
from .config import RESUMABLE_KEYS, Config, load_config, resume_changes
from .data import DataBundle
from .errors import S2SError
from .records import COMPLETED, CONFIG_FILE, RECORD_FILE, VOCAB_FILE, checkpoint_path, read_record
from .text import read_vocabs


def check_resume(cfg: Config, run_dir: Path) -> Path | None:
    """The checkpoint to resume from, after checking `cfg` changes nothing but how long the run trains."""
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
        return None  # it never finished an epoch: start it again, same config, same directory
    load_state_dict(last)  # fails with a clear message if the file is corrupted
    return last


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
    if record.get("status") != COMPLETED or not (run_dir / CONFIG_FILE).is_file():
        return None
    saved = load_config(run_dir / CONFIG_FILE)
    trained = saved.train.max_epochs
    if cfg.train.max_epochs > trained or resume_changes(saved, cfg):
        return None  # more to train, or a change that train() refuses with its own message
    return (
        f"{run_dir} is complete ({record.get('epochs_completed', trained)} epochs of "
        f"train.max_epochs={trained}): nothing to do; resume with train.max_epochs={trained + 1} or more "
        "to train it further"
    )
