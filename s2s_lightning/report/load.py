"""The data of a report: where run records come from, and one `ReportData` built from them.

A report reads only run records (records.py), or the Optuna study / W&B project that mirrors them,
never logs. Every source becomes one `ReportData`: a DataFrame with a row per run (axis values, seed,
metrics, history), one with a row per extra evaluation (`eval/test_beam{K}`, ensembles), and the
trial states of a study. Arms are named and ordered here, by the axes the records carry (the four
paper axes, plus any other scientific axis of the study that ran them).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import optuna
import pandas as pd

from .. import metrics as M
from ..analysis import run_word_f
from ..config import AXES, read_yaml
from ..errors import S2SError
from ..records import (
    ANALYSIS_FILE,
    COMPLETED,
    CONFIG_FILE,
    EVAL_DIR,
    EVAL_FILE,
    FAILED,
    HISTORY_FILE,
    INTERRUPTED,
    RECORD_FILE,
    REPRESENTATIONS_FILE,
    RUNNING,
    EvalKey,
    RunKey,
    RunRecord,
    as_float,
    is_evaluation,
    read_eval,
    read_history,
    read_json,
    read_record,
)
from ..sweep.storage import RUN_DIR, WAS_INTERRUPTED, open_storage
from .arms import name_arms, undeclared_differences
from .labels import frequency_label


@dataclass(frozen=True)
class RunsSource:
    dirs: tuple[Path, ...]


@dataclass(frozen=True)
class StudySource:
    name: str
    storage: str


@dataclass(frozen=True)
class WandbSource:
    path: str  # ENTITY/PROJECT[/GROUP]


Source = RunsSource | StudySource | WandbSource


@dataclass
class ReportData:
    """Everything a report is made of. `runs.arm` is an ordered Categorical: the one arm order."""

    runs: pd.DataFrame  # one row per run record, every status
    evals: pd.DataFrame  # one row per metrics.json (beam sweeps; ensembles have n_members > 1)
    trials: pd.DataFrame | None  # Optuna trials (number, state, run_dir) for a study source
    task: str  # "addition" | "translation"
    axes: list[str]  # what arms are told apart by: the recorded axes, then any `undeclared` key
    undeclared: list[str]  # config keys, not a declared axis, in which runs of one declared arm differ
    varying: list[str]  # the axes whose values differ between arms (they name the arms)
    arm_axes: dict[str, dict[str, Any]]  # arm label -> axis values
    source: str  # how the records were found, for the README

    @property
    def arms(self) -> list[str]:
        return list(self.runs["arm"].cat.categories)

    @property
    def completed(self) -> pd.DataFrame:
        return self.runs[self.runs["status"] == COMPLETED]

    @property
    def spec(self) -> M.Task:
        """The task's description: its primary metric, Table 1's metrics, its curve, how it is scored."""
        return M.TASKS[self.task]


# --------------------------------------------------------------------------------------- loading
def dotted(tree: Any, key: str) -> Any:
    """`model.num_layers` from a nested dict, or from a flat one (W&B configs may be either)."""
    if isinstance(tree, dict) and key in tree:
        return tree[key]
    for part in key.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


# A run row's columns from its record.json: record key -> column, in the row's order. `arm` becomes
# `arm_name` (the name the run was trained under): the report's own `arm` column is made by name_arms.
COLUMNS: dict[str, str] = {
    RunKey.STATUS: "status",
    RunKey.ERROR: "error",
    RunKey.TASK: "task",
    RunKey.DATA: "data",
    RunKey.SRC_LANG: "src_lang",
    RunKey.TGT_LANG: "tgt_lang",
    RunKey.SEED: "seed",
    RunKey.ARM: "arm_name",
    RunKey.BEAM_SIZE: "beam_size",
    RunKey.BLEU_SIGNATURE: "bleu_signature",
    RunKey.NUM_PARAMETERS: "num_parameters",
    RunKey.WALL_TIME_S: "wall_time_s",
    RunKey.EPOCHS_COMPLETED: "epochs_completed",
    RunKey.PEAK_MEMORY_MB: "peak_memory_mb",
    RunKey.DEVICE: "device",
    RunKey.GIT_COMMIT: "git_commit",
    RunKey.GIT_DIRTY: "git_dirty",
    RunKey.VERSIONS: "versions",
    RunKey.STUDY: "study",
    RunKey.TRIAL_NUMBER: "trial_number",
}
_NUMBERS = (RunKey.WALL_TIME_S, RunKey.PEAK_MEMORY_MB)  # read as floats (None when not a number)


def record_axes(record: Mapping[str, Any]) -> list[str]:
    """The axes a record names: the four paper axes, then any other scientific axis of its study."""
    return [*AXES, *(a for a in (record.get(RunKey.AXES) or {}) if a not in AXES)]


def run_row(
    record: RunRecord,
    run_dir: str,
    config: dict[str, Any] | None = None,
    history: pd.DataFrame | None = None,
    analysis: dict[str, Any] | None = None,
    representations: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One DataFrame row from a record (any source); the record is trusted only for its documented keys.
    Axis values are columns named by their config keys; `axes` lists the record's."""
    if not isinstance(record, dict) or RunKey.STATUS not in record:
        raise S2SError(f"{run_dir}: {RECORD_FILE} is not a run record (it has no '{RunKey.STATUS}')")
    data = record.get(RunKey.DATA)
    task = record.get(RunKey.TASK) or (M.task_of(data) if data else None)
    if task not in M.TASKS:
        raise S2SError(f"{run_dir}: {RECORD_FILE} names no known task (got {task!r})")
    axes = record.get(RunKey.AXES) or {}
    metrics = record.get(RunKey.METRICS) or {}
    row: dict[str, Any] = {"run_dir": run_dir}
    for key, column in COLUMNS.items():
        row[column] = as_float(record.get(key)) if key in _NUMBERS else record.get(key)
    row.update(task=task, versions=row["versions"] or {}, axes=record_axes(record))
    for axis in row["axes"]:
        row[axis] = axes[axis] if axis in axes else dotted(config, axis)
    for name in M.FINAL:
        row[name] = as_float(metrics.get(name))
    # Training speed: the median over epochs of target tokens/s (the first epoch pays for warm-up).
    speed = (
        history[M.TRAIN_TOKENS_PER_S].dropna()
        if isinstance(history, pd.DataFrame) and M.TRAIN_TOKENS_PER_S in history
        else pd.Series(dtype=float)
    )
    row[M.TRAIN_TOKENS_PER_S] = float(speed.median()) if len(speed) else None
    row.update(config=config, history=history, analysis=analysis, representations=representations)
    return row


def _history(path: Path) -> pd.DataFrame | None:
    rows = read_history(path)
    return pd.DataFrame(rows).apply(pd.to_numeric) if rows else None


def load_run_dir(run_dir: Path) -> dict[str, Any]:
    """A row from a run directory written by `s2s train --run-dir`."""
    run_dir = Path(run_dir)
    config = read_yaml(run_dir / CONFIG_FILE) if (run_dir / CONFIG_FILE).is_file() else None
    optional = {
        name: read_json(run_dir / name) if (run_dir / name).is_file() else None
        for name in (ANALYSIS_FILE, REPRESENTATIONS_FILE)
    }
    row = run_row(
        read_record(run_dir),
        str(run_dir),
        config,
        _history(run_dir / HISTORY_FILE),
        optional[ANALYSIS_FILE],
        optional[REPRESENTATIONS_FILE],
    )
    row["word_f"] = run_word_f(run_dir)
    return row


def _evaluations(files: Iterable[Path]) -> list[Path]:
    """The folders of those metrics.json `files` that are evaluation records (other tools write files
    called metrics.json too)."""
    return sorted(f.parent for f in files if is_evaluation(read_json(f)))


def find_records(paths: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """Run directories (with record.json) and evaluation directories (with metrics.json) under `paths`."""
    runs: list[Path] = []
    evals: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise S2SError(f"{path} does not exist")
        if (path / RECORD_FILE).is_file():
            runs.append(path)
        elif (path / EVAL_FILE).is_file():
            read_eval(path)  # refuses a metrics.json that is not an evaluation record
            evals.append(path)
        elif path.is_dir():  # not inside hidden folders: `.attempts/` keeps failed attempts a sweep retried
            runs += sorted(f.parent for f in path.rglob(RECORD_FILE) if not _hidden(f, path))
            evals += _evaluations(f for f in path.rglob(EVAL_FILE) if not _hidden(f, path))
        else:
            raise S2SError(f"{path} is neither a run directory nor a folder of run directories")
    for run in runs:  # a run given directly still brings its beam evaluations
        evals += _evaluations((run / EVAL_DIR).glob(f"*/{EVAL_FILE}"))
    return _unique(runs), _unique(evals)


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def evaluations_beside(run_dirs: Sequence[Path]) -> list[Path]:
    """Evaluations anywhere under the run directories' common folder, such as an ensemble saved with
    `s2s evaluate ... --out runs/addition/ensembles/X` for a study whose runs are
    runs/addition/<arm>/seed<k>. `load` keeps those made of the study's runs only."""
    resolved = [Path(d).resolve() for d in run_dirs]
    root = Path(os.path.commonpath(resolved))
    if any(len(d.relative_to(root).parts) > 2 for d in resolved):
        return []  # runs scattered over unrelated folders: no study folder to search
    return _evaluations(f for f in root.rglob(EVAL_FILE) if not _hidden(f, root))


def _unique(paths: list[Path]) -> list[Path]:
    seen, out = set(), []
    for p in paths:
        if p.resolve() not in seen:
            seen.add(p.resolve())
            out.append(p)
    return out


def _match_member(member: str, eval_dir: Path, runs: pd.DataFrame) -> str | None:
    """The loaded run an evaluation member names (members are paths as typed when evaluating)."""
    by_path = {Path(r).resolve(): r for r in runs["run_dir"]}
    for candidate in (Path(member), eval_dir / member, eval_dir.parent / member):
        if candidate.resolve() in by_path:
            return str(by_path[candidate.resolve()])
    same_name = [r for r in runs["run_dir"] if Path(r).name == Path(member).name]
    return same_name[0] if len(same_name) == 1 else None


def eval_rows(eval_dirs: list[Path], runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for eval_dir in eval_dirs:
        data = read_eval(eval_dir)
        if data.get(EvalKey.CHECKPOINT, "best") != "best":
            continue  # a report's rows are the runs' best checkpoints; `--checkpoint last` is a look aside
        split = data.get(EvalKey.SPLIT, "test")
        files = data.get(EvalKey.FILES)
        if files and split in ("train", "val", "test"):
            # outside files scored under an own split's name (refused since): a test set of their own
            split = Path(files["source"]).name
        members = [str(m) for m in data.get(EvalKey.MEMBERS) or []]
        in_run = eval_dir.parent.name == EVAL_DIR and (eval_dir.parent.parent / RECORD_FILE).is_file()
        matched = (
            [_match_member(str(eval_dir.parent.parent), eval_dir, runs)]
            if in_run and len(members) <= 1
            else [_match_member(m, eval_dir, runs) for m in members]
        )
        row: dict[str, Any] = {
            "eval_dir": str(eval_dir),
            "split": split,
            "beam_size": data.get(EvalKey.BEAM_SIZE),
            "members": members,
            "n_members": max(len(members), 1),
            "member_runs": matched,
        }
        row.update({name: as_float(data[EvalKey.METRICS].get(name)) for name in M.FINAL})
        rows.append(row)
    return pd.DataFrame(
        rows, columns=["eval_dir", "split", "beam_size", "members", "n_members", "member_runs", *M.FINAL]
    )


def load_study(name: str, storage: str) -> tuple[list[Path], pd.DataFrame]:
    """Run directories of the study's trials (user attr `run_dir`), and every trial's state.

    A sweep keeps its grid trials (arm x seed) in study NAME and any nuisance tuning in per-arm studies
    `NAME/<arm>`. Only the grid runs are results; tuning trials count in sweep health and compute.
    """
    backend = open_storage(storage, create=False)
    names = optuna.get_all_study_names(storage=backend)
    if name not in names:
        raise S2SError(f"no study named '{name}' in {storage} (it has: {', '.join(sorted(names)) or 'none'})")
    rows = []
    for study_name in [name, *sorted(n for n in names if n.startswith(f"{name}/"))]:
        for t in optuna.load_study(study_name=study_name, storage=backend).get_trials(deepcopy=False):
            run_dir = t.user_attrs.get(RUN_DIR)
            record = read_record(run_dir) if run_dir and (Path(run_dir) / RECORD_FILE).is_file() else None
            rows.append(
                {
                    "study": study_name,
                    "tuning": study_name != name,
                    "number": t.number,
                    # a trial Ctrl-C or SIGTERM stopped is no failure of its config
                    "state": "INTERRUPTED"
                    if t.state.name == "FAIL" and t.user_attrs.get(WAS_INTERRUPTED)
                    else t.state.name,
                    "run_dir": run_dir,
                    "has_record": record is not None,
                    "wall_time_s": as_float(record.get(RunKey.WALL_TIME_S)) if record is not None else None,
                }
            )
    trials = pd.DataFrame(
        rows, columns=["study", "tuning", "number", "state", "run_dir", "has_record", "wall_time_s"]
    )
    # A retried trial shares its run directory with the attempts before it: each directory enters once,
    # as its record (written by the latest attempt) says.
    return _unique([Path(str(r["run_dir"])) for r in rows if r["has_record"] and not r["tuning"]]), trials


_WANDB_STATUS = {
    "finished": COMPLETED,
    "crashed": FAILED,
    "failed": FAILED,
    "killed": INTERRUPTED,
    "running": RUNNING,
}


def load_wandb(path: str) -> list[dict[str, Any]]:
    """Rows from W&B runs (config + summary); needs network access and `wandb login`."""
    parts = path.strip("/").split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise S2SError(f"--wandb wants ENTITY/PROJECT[/GROUP], got '{path}'")
    try:
        import wandb  # heavy (about a second), and only this source needs it

        api = wandb.Api(timeout=30)
        found = list(
            api.runs(f"{parts[0]}/{parts[1]}", filters={"group": parts[2]} if len(parts) == 3 else None)
        )
    except Exception as exc:  # offline, no API key, unknown project: all end the same way for the user
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise S2SError(f"cannot read W&B runs of {path} (needs network and `wandb login`): {first}") from None
    rows = []
    for run in found:
        config, summary = dict(run.config), dict(run.summary)
        record = {
            RunKey.STATUS: _WANDB_STATUS.get(run.state, run.state),
            RunKey.DATA: dotted(config, "data.name"),
            RunKey.SEED: config.get("seed"),
            # The axes the run recorded (its summary), else the four paper axes from its config.
            RunKey.AXES: summary.get(RunKey.AXES) or {a: dotted(config, a) for a in AXES},
            RunKey.BEAM_SIZE: dotted(config, "eval.beam_size"),
            RunKey.WALL_TIME_S: summary.get("_runtime"),
            RunKey.PEAK_MEMORY_MB: summary.get(RunKey.PEAK_MEMORY_MB),
            RunKey.DEVICE: summary.get(RunKey.DEVICE),
            RunKey.BLEU_SIGNATURE: summary.get(RunKey.BLEU_SIGNATURE),
            RunKey.METRICS: {m: summary.get(m) for m in M.FINAL},
        }
        try:
            history = run.history(keys=["epoch", M.VAL_PPL, M.TRAIN_TOKENS_PER_S], pandas=True)
        except Exception:  # a curve is a nicety; the summary metrics are the report
            history = None
        rows.append(run_row(cast(RunRecord, record), run.url, config, history))  # values may be None
    return rows


def load(source: Source) -> ReportData:
    trials = None
    if isinstance(source, RunsSource):
        run_dirs, eval_dirs = find_records(source.dirs)
        rows = [load_run_dir(d) for d in run_dirs]
        where = "--runs " + " ".join(str(d) for d in source.dirs)
    elif isinstance(source, StudySource):
        run_dirs, trials = load_study(source.name, source.storage)
        eval_dirs = _unique(find_records(run_dirs)[1] + evaluations_beside(run_dirs)) if run_dirs else []
        rows = [load_run_dir(d) for d in run_dirs]
        where = f"Optuna study '{source.name}' ({source.storage})"
    else:
        rows, eval_dirs = load_wandb(source.path), []
        where = f"W&B {source.path}"
    if not rows:
        raise S2SError(f"no run records found in {where}")
    runs = pd.DataFrame(rows)
    tasks = sorted(set(runs["task"]))
    if len(tasks) > 1:
        raise S2SError(f"records mix tasks ({', '.join(tasks)}); report one task at a time")
    datasets = sorted(
        {
            f"{d} {s}-{t}" if s else str(d)
            for d, s, t in runs[["data", "src_lang", "tgt_lang"]].itertuples(index=False)
        }
    )
    if len(datasets) > 1:
        raise S2SError(f"records mix data sets ({', '.join(datasets)}); report them separately")
    declared = list(dict.fromkeys(a for row_axes in runs["axes"] for a in row_axes))
    extra = undeclared_differences(runs["config"], runs[declared])
    runs = runs.assign(**{key: [dotted(c, key) for c in runs["config"]] for key in extra})
    axes = declared + extra
    runs, varying, arm_axes = name_arms(runs, axes)
    evals = eval_rows(eval_dirs, runs)
    if isinstance(source, StudySource):  # an evaluation found beside the study's runs must be of them
        made_of_study_runs = evals["member_runs"].map(lambda matched: None not in matched).astype(bool)
        evals = evals[made_of_study_runs].reset_index(drop=True)
    return ReportData(
        runs=runs,
        evals=evals,
        trials=trials,
        task=tasks[0],
        axes=axes,
        undeclared=extra,
        varying=varying,
        arm_axes=arm_axes,
        source=where,
    )


def word_f_rows(data: ReportData) -> pd.DataFrame:
    """One row per completed run and frequency bucket: word F-measure (compare-mt), from the runs' files."""
    rows = [
        {
            "arm": str(run.arm),
            "run_dir": run.run_dir,
            "bucket": frequency_label(b["min_freq"], b["max_freq"]),
            **b,
        }
        for run in data.completed.itertuples()
        for b in (run.word_f if isinstance(getattr(run, "word_f", None), list) else [])
    ]
    return pd.DataFrame(rows)


def val_history(data: ReportData, extra: tuple[str, ...] = ()) -> pd.DataFrame | None:
    """One row per completed run and epoch of its validation perplexity (and the `extra` columns it
    recorded), with `arm` and `run_dir`; None when no run has a validation curve."""
    frames = [
        h[[c for c in ("epoch", M.VAL_PPL, *extra) if c in h]].assign(arm=str(run.arm), run_dir=run.run_dir)
        for run in data.completed.itertuples()
        if isinstance(h := run.history, pd.DataFrame) and "epoch" in h and M.VAL_PPL in h
    ]
    return pd.concat(frames, ignore_index=True) if frames else None
