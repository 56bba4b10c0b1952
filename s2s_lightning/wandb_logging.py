"""W&B through Lightning's WandbLogger: online when a key is configured, offline otherwise.

A run never fails for lack of network: an online start that cannot reach the server falls back to
offline (sync later with `wandb sync RUN_DIR/wandb/offline-run-*`).
"""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.loggers import WandbLogger

from .analysis import run_word_f
from .config import Config
from .records import ANALYSIS_FILE, COMPLETED, RunKey, RunRecord, read_json

SAMPLES = 10  # validation sentences whose translations every validation logs


def _api_key_configured() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        auth = netrc.netrc().authenticators(
            os.environ.get("WANDB_BASE_URL", "api.wandb.ai").removeprefix("https://").removeprefix("http://")
        )
        return bool(auth and auth[2])
    except (OSError, netrc.NetrcParseError):
        return False


_RANK = {"disabled": 0, "offline": 1, "online": 2}


def wandb_mode(cfg: Config) -> str:
    """online | offline | disabled.

    An explicit `tracking.wandb` is honoured; WANDB_MODE in the environment decides under `auto` and
    can only downgrade an explicit choice (offline/disabled are kill switches, never upgrades).
    """
    given = os.environ.get("WANDB_MODE", "")
    given = {"dryrun": "offline"}.get(given, given)
    env = given if given in _RANK else None
    if cfg.tracking.wandb == "auto":
        return env or ("online" if _api_key_configured() else "offline")
    if env and _RANK[env] < _RANK[cfg.tracking.wandb]:
        return env
    return cfg.tracking.wandb


def run_tags(record: RunRecord) -> list[str]:
    """W&B tags that filter a project the way a study is read: each axis value and the study."""
    tags = [f"{axis.rsplit('.', 1)[-1]}={value}" for axis, value in (record.get(RunKey.AXES) or {}).items()]
    return tags + ([f"study={record[RunKey.STUDY]}"] if record.get(RunKey.STUDY) else [])


def make_wandb_logger(cfg: Config, run_dir: Path, record: RunRecord, previous: dict | None = None):
    """(WandbLogger or None, the record's `wandb` entry). The W&B config is the resolved config; the tags
    name the run's axis values and study; the run is named `<arm>-seed<k>` by default; the best
    checkpoint is uploaded as an artifact with tracking.log_checkpoint."""
    mode = wandb_mode(cfg)
    if mode == "disabled":
        return None, {"mode": "disabled"}
    t = cfg.tracking
    run_id = (previous or {}).get("id")  # resuming a run continues its W&B run
    arm = record[RunKey.ARM]
    kwargs = dict(
        project=t.project,
        entity=t.entity,
        group=t.group,
        tags=list(dict.fromkeys([*t.tags, *run_tags(record)])) or None,
        name=t.name or f"{arm}-seed{cfg.seed}",
        save_dir=str(run_dir),
        config=cfg.to_dict(),
        id=run_id,
        resume="allow" if run_id else None,
        log_model=t.log_checkpoint,  # Lightning uploads the checkpoints at the end of training
    )
    os.environ.setdefault("WANDB_SILENT", "true")
    try:
        logger, experiment, mode = _start(mode, kwargs)
    except Exception:
        if not run_id:
            raise
        # A run killed mid-write can leave its id unusable (offline: "run ID is in use"): continue
        # the record in a fresh W&B run rather than failing the resumed training.
        kwargs.update(id=None, resume=None)
        logger, experiment, mode = _start(mode, kwargs)
    info = {
        "mode": mode,
        "id": experiment.id,
        "project": t.project,
        "entity": t.entity,
        "group": t.group,
        "name": experiment.name,
        "dir": str(Path(experiment.dir).parent),
        "previous_id": run_id if run_id and run_id != experiment.id else None,
    }
    return logger, info


def _start(mode: str, kwargs: dict):
    """(logger, run, mode); an online start that cannot reach the server falls back to offline."""
    import wandb  # about a second to import: only runs that track pay for it

    try:
        logger = _logger(mode, kwargs)
        return logger, logger.experiment, mode  # .experiment starts the run: failures surface here
    except Exception:
        wandb.finish()
        if mode != "online":
            raise
    logger = _logger("offline", kwargs)
    return logger, logger.experiment, "offline"


def _logger(mode: str, kwargs: dict) -> WandbLogger:
    logger = WandbLogger(mode=mode, **kwargs)
    # Lightning passes W&B a deprecated `anonymous=None` that makes every run print the same warning.
    logger._wandb_init.pop("anonymous", None)
    return logger


class SampleTranslations(pl.Callback):
    """After each validation that decoded, a W&B table `val/samples` of the same few validation sentences
    (epoch, source, reference, hypothesis): the dashboard shows the model learning."""

    def __init__(self, logger: WandbLogger, scorer, n: int = SAMPLES):
        self.logger, self.scorer, self.n = logger, scorer, n

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        hyps = pl_module.hyps.get("val") or {}
        if trainer.sanity_checking or not trainer.is_global_zero or not hyps:
            return
        rows = [[pl_module.current_epoch + 1, *row] for row in self.scorer.samples("val", hyps, self.n)]
        columns = ["epoch", "source", "reference", "hypothesis"]
        self.logger.log_table("val/samples", columns=columns, data=rows, step=trainer.global_step)


def log_final_tables(logger: WandbLogger, run_dir: Path) -> None:
    """The test set's score by source length and (translation) word F-measure by training frequency, as
    W&B tables a user can plot from (`test/by_length`, `test/word_f`)."""
    analysis = Path(run_dir) / ANALYSIS_FILE
    if analysis.is_file():
        rows = read_json(analysis).get("by_length") or []
        columns = ["min_len", "max_len", "n", "score"]
        logger.log_table("test/by_length", columns=columns, data=[[r.get(c) for c in columns] for r in rows])
    word_f = run_word_f(Path(run_dir))
    if word_f:
        columns = list(word_f[0])
        logger.log_table("test/word_f", columns=columns, data=[[r[c] for c in columns] for r in word_f])


def finish_wandb(logger, record: RunRecord) -> None:
    """Write the final record and tables into the run's summary and close it."""
    import wandb  # loaded already by _start; local for the same reason

    if record.get(RunKey.STATUS) == COMPLETED:
        log_final_tables(logger, Path(record[RunKey.RUN_DIR]))

    summary: dict[str, Any] = dict(record.get(RunKey.METRICS, {}))
    for key in (
        "axes",
        "status",
        "error",
        "num_parameters",
        "wall_time_s",
        "peak_memory_mb",
        "epochs_completed",
        "bleu_signature",
        "arm",
        "seed",
        "device",
    ):
        if record.get(key) is not None:
            summary[key] = record[key]
    logger.experiment.summary.update(summary)
    wandb.finish(exit_code=0 if record.get(RunKey.STATUS) == COMPLETED else 1)
