"""Run records: atomic writes and the files a run directory holds.

A run directory written by `s2s train --run-dir DIR`:
  config.yaml       resolved config
  vocab.json        {"src": [...], "tgt": [...]} (ids are list positions)
  history.csv       one row per validation epoch (metric names from metrics.py)
  record.json       status, final metrics, cost, environment (see `base_record`)
  test.src.txt / test.ref.txt / test.hyp.txt   line-aligned, detokenized
  test.ref.tok.txt / test.hyp.tok.txt          Moses-tokenized, cased (the paper's tokenized BLEU)
  test.scores.tsv   sentence-level scores (index, src_len, avg_freq_rank, score)
  analysis.json     BLEU/exact match by length and frequency bucket, bootstrap interval (analysis.py)
  eval/{split}_beam{K}/   later `s2s evaluate` results (metrics.json + the same files)
  representations.json    encoder summaries of phrases (`s2s evaluate --represent`)
  checkpoints/      best.ckpt, last.ckpt
Every file is written to a temporary file and renamed, so no reader ever sees half a record.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterable

import yaml

from .errors import S2SError

CONFIG_FILE = "config.yaml"
RECORD_FILE = "record.json"
HISTORY_FILE = "history.csv"
ANALYSIS_FILE = "analysis.json"
CHECKPOINT_DIR = "checkpoints"


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: store them as null so every reader can parse the record."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(_clean(data), indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise S2SError(f"{path} not found") from None
    except (ValueError, UnicodeDecodeError):
        raise S2SError(f"{path} is not valid JSON") from None


def write_yaml(path: Path, data: dict) -> None:
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))


def as_line(text: str) -> str:
    """`text` as write_lines stores it: one line, a newline inside it turned into a space."""
    return text.replace("\n", " ")


def write_lines(path: Path, lines: Iterable[str]) -> None:
    atomic_write_text(path, "".join(as_line(line) + "\n" for line in lines))


def read_lines(path: Path) -> list[str]:
    """The lines write_lines wrote. Split on "\n" only: str.splitlines would also split on \r, \x85
    or \u2028 inside a sentence and misalign a file with its partner."""
    with open(path, encoding="utf-8", newline="") as f:  # newline="": keep a \r as it was written
        return f.read().split("\n")[:-1]


def write_csv(path: Path, rows: list[dict]) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def check_writable(run_dir: Path) -> None:
    """Fail before any work starts if the run directory cannot be written."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / ".write-test", "ok\n")
        (run_dir / ".write-test").unlink()
    except OSError as exc:
        raise S2SError(f"run directory {run_dir} is not writable ({exc.strerror or exc})") from None


def _git(*args: str) -> str | None:
    """stdout of a git command run in the package's checkout; None outside one or without git."""
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_commit() -> str | None:
    return (_git("rev-parse", "HEAD") or "").strip() or None


def git_dirty() -> bool | None:
    """Whether tracked files differ from the commit (None outside a git checkout): a run from an edited
    tree is not reproducible from its commit alone."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status.strip())


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("s2s-lightning", "torch", "pytorch-lightning", "wandb", "optuna", "sacrebleu", "sacremoses"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out
