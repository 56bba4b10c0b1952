"""Run records: the files a run directory holds, their names and readers, and atomic writes.

This module owns every file name of a run directory; other modules use the constants and readers
here, never string literals. A run directory written by `s2s train --run-dir DIR`:
  config.yaml       resolved config
  vocab.json        {"src": [...], "tgt": [...]} (ids are list positions)
  history.csv       one row per validation epoch (metric names from metrics.py)
  record.json       status, final metrics, cost, environment (train.base_record)
  train.log         the trial's output when a sweep ran it
  git.diff          a run from an edited tree: staged, unstaged and untracked package changes (s2s reproduce)
  environment.txt   installed distributions, name==version
  test.src.txt / test.ref.txt / test.hyp.txt   line-aligned, detokenized
  test.ref.tok.txt / test.hyp.tok.txt          Moses-tokenized, cased (the paper's tokenized BLEU)
  test.scores.tsv   sentence-level scores (index, src_len, avg_freq_rank, score)
  analysis.json     BLEU/exact match by length and frequency bucket, bootstrap interval (analysis.py)
  eval/{split}_beam{K}[_last]/   later `s2s evaluate` results (metrics.json + the same files)
  representations.json    encoder summaries of phrases (`s2s evaluate --represent`)
  checkpoints/      best.ckpt, last.ckpt
Every file is written to a temporary file and renamed, so no reader ever sees half a record.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import math
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Final, TypedDict, cast

import yaml

from .errors import S2SError

CONFIG_FILE = "config.yaml"
RECORD_FILE = "record.json"
HISTORY_FILE = "history.csv"
VOCAB_FILE = "vocab.json"
COUNTS_FILE = (
    "train_counts.json"  # training word counts, source and target: frequency analyses without the corpus
)
ANALYSIS_FILE = "analysis.json"
REPRESENTATIONS_FILE = "representations.json"
EVAL_FILE = "metrics.json"  # an evaluation record: RUN/eval/{split}_beam{K}/ or `s2s evaluate --out DIR`
LOG_FILE = "train.log"
GIT_DIFF_FILE = "git.diff"  # a run from an edited tree: its changes against git_commit (git apply)
ENVIRONMENT_FILE = "environment.txt"  # the installed distributions, name==version (pip -c)
LOCK_FILE = ".lock"  # held (flock) by the one process writing the run; the kernel drops it when that dies
CHECKPOINT_DIR = "checkpoints"
CHECKPOINTS = ("best", "last")
EVAL_DIR = "eval"

# record.json's status: "running" while `s2s train` runs, then always one of the other three.
RUNNING, COMPLETED, FAILED, INTERRUPTED = "running", "completed", "failed", "interrupted"


class RunRecord(TypedDict, total=False):
    """record.json: what `s2s train` writes (train.base_record, then train._finish) and every reader reads."""

    status: str  # RUNNING, COMPLETED, FAILED or INTERRUPTED
    error: str | None  # why a run failed or was interrupted
    task: str  # a key of metrics.TASKS
    data: str  # data.name
    src_lang: str | None
    tgt_lang: str | None
    seed: int
    arm: str  # config.arm_name over its study's axes
    axes: dict[str, Any]  # the scientific axes' values, dotted keys
    beam_size: int
    metrics: dict[str, float]  # final metrics (metrics.FINAL names)
    bleu_signature: str | None
    run_dir: str
    started_at: str
    finished_at: str | None
    versions: dict[str, str]
    git_commit: str | None
    git_dirty: bool | None
    git_diff: str | None  # GIT_DIFF_FILE when the tree was edited (git_dirty), else None
    untracked: list[str]  # untracked package files, in that diff as new files
    study: str | None  # the sweep's study, from S2S_STUDY
    storage: str | None  # the storage holding that study, from S2S_STORAGE (sweep.storage_identity)
    trial_number: int | None
    wandb: dict[str, Any] | None  # the W&B run's id, project, group, mode
    resumed_from: str | None
    num_parameters: int
    numerics: dict[str, Any]  # world size, threads, TF32, precision, dtypes the LSTMs ran in
    wall_time_s: float
    epochs_completed: int
    peak_memory_mb: float
    device: str


class RunKey:
    """record.json's keys (RunRecord's fields), named once for the code that reads or writes them."""

    STATUS: Final = "status"
    ERROR: Final = "error"
    TASK: Final = "task"
    DATA: Final = "data"
    SRC_LANG: Final = "src_lang"
    TGT_LANG: Final = "tgt_lang"
    SEED: Final = "seed"
    ARM: Final = "arm"
    AXES: Final = "axes"
    BEAM_SIZE: Final = "beam_size"
    METRICS: Final = "metrics"
    BLEU_SIGNATURE: Final = "bleu_signature"
    RUN_DIR: Final = "run_dir"
    STARTED_AT: Final = "started_at"
    FINISHED_AT: Final = "finished_at"
    VERSIONS: Final = "versions"
    GIT_COMMIT: Final = "git_commit"
    GIT_DIRTY: Final = "git_dirty"
    GIT_DIFF: Final = "git_diff"
    UNTRACKED: Final = "untracked"
    STUDY: Final = "study"
    STORAGE: Final = "storage"
    TRIAL_NUMBER: Final = "trial_number"
    WANDB: Final = "wandb"
    RESUMED_FROM: Final = "resumed_from"
    NUM_PARAMETERS: Final = "num_parameters"
    NUMERICS: Final = "numerics"
    WALL_TIME_S: Final = "wall_time_s"
    EPOCHS_COMPLETED: Final = "epochs_completed"
    PEAK_MEMORY_MB: Final = "peak_memory_mb"
    DEVICE: Final = "device"


class EvalInputs(TypedDict, total=False):
    """What an evaluation scored (evaluation.evaluation_inputs): the same inputs may replace it."""

    members: list[str]  # the runs, resolved paths
    split: str
    checkpoint: str  # best or last
    beam_size: int
    files_sha256: list[str] | str  # outside source and reference files, by content ("unknown": old)
    data_dir: str  # another data folder's split


class EvalRecord(TypedDict, total=False):
    """EVAL_FILE (metrics.json): what `s2s evaluate` writes (inference.evaluate_runs) and reports read."""

    beam_size: int
    split: str  # the runs' own split, another split of their data, or the name of outside files
    metrics: dict[str, float]  # final metrics (metrics.FINAL names; any held-out set scores as test/)
    bleu_signature: str | None
    members: list[str]  # the runs, as given (several: an ensemble)
    sentences_per_s: float
    checkpoint: str  # best or last
    checkpoint_positions: list[dict[str, int] | None]  # each member's {"epoch", "step"}
    length_normalize: bool
    signatures: dict[str, str]  # sacreBLEU signature of each metric
    num_sentences: int
    unknown: dict[str, Any]  # source and hypothesis tokens, how many were <unk>, empty source lines
    device: str
    files: dict[str, str]  # outside files: {"source", "reference"}
    inputs: EvalInputs


class EvalKey:
    """metrics.json's keys (EvalRecord's fields)."""

    BEAM_SIZE: Final = "beam_size"
    SPLIT: Final = "split"
    METRICS: Final = "metrics"
    BLEU_SIGNATURE: Final = "bleu_signature"
    MEMBERS: Final = "members"
    SENTENCES_PER_S: Final = "sentences_per_s"
    CHECKPOINT: Final = "checkpoint"
    CHECKPOINT_POSITIONS: Final = "checkpoint_positions"
    LENGTH_NORMALIZE: Final = "length_normalize"
    SIGNATURES: Final = "signatures"
    NUM_SENTENCES: Final = "num_sentences"
    UNKNOWN: Final = "unknown"
    DEVICE: Final = "device"
    FILES: Final = "files"
    INPUTS: Final = "inputs"


class InputKey:
    """EvalInputs' keys."""

    MEMBERS: Final = "members"
    SPLIT: Final = "split"
    CHECKPOINT: Final = "checkpoint"
    BEAM_SIZE: Final = "beam_size"
    FILES_SHA256: Final = "files_sha256"
    DATA_DIR: Final = "data_dir"


def is_evaluation(data: object) -> bool:
    """Is this parsed metrics.json an evaluation record (other tools write files called metrics.json)?"""
    return isinstance(data, dict) and isinstance(data.get(EvalKey.METRICS), dict) and EvalKey.MEMBERS in data


def read_eval(folder: str | Path) -> EvalRecord:
    """FOLDER/metrics.json, an evaluation record (refused when it is not one)."""
    path = Path(folder) / EVAL_FILE
    data = read_json(path)
    if not is_evaluation(data):
        raise S2SError(f"{path} is not an evaluation record (no '{EvalKey.METRICS}' and '{EvalKey.MEMBERS}')")
    return cast(EvalRecord, data)


def as_float(value: Any) -> float | None:
    """A number read from a record or a trial as a float; None when missing or not a number."""
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def checkpoint_path(run_dir: str | Path, which: str = "last") -> Path:
    """RUN/checkpoints/{best,last}.ckpt"""
    return Path(run_dir) / CHECKPOINT_DIR / f"{which}.ckpt"


def split_file(split: str, kind: str) -> str:
    """`test.hyp.txt`: kind is src, ref, hyp (detokenized) or ref.tok, hyp.tok (Moses-tokenized)."""
    return f"{split}.{kind}.txt"


def scores_file(split: str) -> str:
    return f"{split}.scores.tsv"


def eval_dir(run_dir: str | Path, split: str, beam_size: int, checkpoint: str = "best") -> Path:
    """Where `s2s evaluate RUN --beam K` writes by default: named by what it scored, the split (or the
    name given to outside files), the beam and, when not the best, the checkpoint (`test_beam12_last`)."""
    suffix = "" if checkpoint == "best" else f"_{checkpoint}"
    return Path(run_dir) / EVAL_DIR / f"{split}_beam{beam_size}{suffix}"


def current_umask() -> int:
    """The process's umask (reading it means setting it: set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes | memoryview) -> None:
    """`data` written to a temporary file beside `path`, synced and renamed onto it: a reader sees the
    old file or the new one, never part of one; a failed write (a full disk) leaves no temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes files owner-only; records are shared
        with os.fdopen(fd, "wb") as f:
            f.write(data)
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


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    atomic_write_text(path, json.dumps(_clean(data), indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(Path(path).read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise S2SError(f"{path} not found") from None
    except (ValueError, UnicodeDecodeError):
        raise S2SError(f"{path} is not valid JSON") from None


def read_record(run_dir: str | Path) -> RunRecord:
    """RUN/record.json; an S2SError when it is missing or unreadable."""
    return read_json(Path(run_dir) / RECORD_FILE)  # type: ignore[return-value]


def record_status(run_dir: str | Path) -> str | None:
    """The status in RUN/record.json, or None when there is no record yet."""
    path = Path(run_dir) / RECORD_FILE
    return read_json(path).get(RunKey.STATUS) if path.is_file() else None


def write_yaml(path: Path, data: dict[str, Any]) -> None:
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


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def read_history(path: Path) -> list[dict[str, Any]]:
    """history.csv as one dict per epoch: `epoch` and `step` ints, every other column a float or None.
    No file yet: no rows."""
    path = Path(path)
    if not path.is_file():
        return []
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return [{k: _history_value(k, v) for k, v in row.items()} for row in csv.DictReader(f)]
    except (ValueError, UnicodeDecodeError, csv.Error):
        raise S2SError(f"{path} is not a readable CSV file") from None


def _history_value(key: str, text: str | None) -> int | float | None:
    if text in ("", None):
        return None
    return int(float(text)) if key in ("epoch", "step") else float(text)


def write_counts(run_dir: str | Path, src: Counter[str], tgt: Counter[str]) -> None:
    write_json(Path(run_dir) / COUNTS_FILE, {"src": dict(src.most_common()), "tgt": dict(tgt.most_common())})


def read_counts(run_dir: str | Path) -> tuple[Counter[str], Counter[str]] | None:
    """(source, target) training word counts; None for a run written before they were recorded."""
    path = Path(run_dir) / COUNTS_FILE
    if not path.is_file():
        return None
    data = read_json(path)
    try:
        return Counter(data["src"]), Counter(data["tgt"])
    except (KeyError, TypeError):
        raise S2SError(f"{path} is corrupted") from None


class RunBusy(S2SError):
    """Another live process holds the run directory's lock."""


@contextmanager
def pid_lock(path: Path, busy: Callable[[str], BaseException]) -> Iterator[None]:
    """Hold an exclusive flock on `path` for the block, with the holder's pid in the file; when another
    live process holds it, raise `busy(pid)`. The kernel releases the lock when its holder dies, kill -9
    included; the file stays (removing it would let two holders in)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            raise busy(f.read().strip() or "?") from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def lock_holder(run_dir: str | Path) -> str | None:
    """The pid of the process writing `run_dir` (a run still training), or None; takes no lock itself."""
    path = Path(run_dir) / LOCK_FILE
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return f.read().strip() or "?"
        fcntl.flock(f, fcntl.LOCK_UN)
    return None


def run_lock(run_dir: str | Path) -> AbstractContextManager[None]:
    """RUN/.lock for the block: one writer per run directory, whatever started it (a sweep on any
    storage, a user's second `s2s train`)."""
    return pid_lock(
        Path(run_dir) / LOCK_FILE,
        lambda pid: RunBusy(
            f"{run_dir} is being written by another process (pid {pid}); wait for it to end or use a new "
            "--run-dir"
        ),
    )


def check_writable(run_dir: str | Path) -> None:
    """Fail before any work starts if the run directory cannot be written."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / ".write-test", "ok\n")
        (run_dir / ".write-test").unlink()
    except OSError as exc:
        raise S2SError(f"run directory {run_dir} is not writable ({exc.strerror or exc})") from None
