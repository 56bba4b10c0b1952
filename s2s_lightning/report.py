"""`s2s report`: run records -> Markdown/LaTeX/CSV tables, PNG/PDF figures and a README.md.

A report reads only run records (records.py), or the Optuna study / W&B project that mirrors them,
never logs. Every source becomes one `ReportData`: a DataFrame with a row per run (axis values, seed,
metrics, history), one with a row per extra evaluation (`eval/test_beam{K}`, ensembles), and the
trial states of a study. Tables are built in report_tables.py, figures in report_figures.py; this
module loads the records, names and orders the arms, writes the README and holds the CLI entry.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, Union

import pandas as pd

from . import metrics as M
from .config import AXES, read_yaml
from .errors import S2SError
from .records import ANALYSIS_FILE, CONFIG_FILE, HISTORY_FILE, RECORD_FILE, atomic_write_text, read_json
from .report_figures import arm_palette, build_figures
from .studies import DEFAULT_JOURNAL
from .report_tables import AXIS_NAMES, PRIMARY, axis_value_label, build_tables, metric_label, write_tables

# The sweep's default storage (`s2s sweep` without --storage, under --runs-dir runs).
DEFAULT_STORAGE = str(Path("runs") / DEFAULT_JOURNAL)  # the sweep's default storage
EVAL_FILE = "metrics.json"  # written by `s2s evaluate` into RUN/eval/test_beam{K}/ or --out DIR
REPRESENTATIONS_FILE = "representations.json"

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


Source = Union[RunsSource, StudySource, WandbSource]


@dataclass
class ReportData:
    """Everything a report is made of. `runs.arm` is an ordered Categorical: the one arm order."""

    runs: pd.DataFrame  # one row per run record, every status
    evals: pd.DataFrame  # one row per metrics.json (beam sweeps; ensembles have n_members > 1)
    trials: pd.DataFrame | None  # Optuna trials (number, state, run_dir) for a study source
    task: str  # "addition" | "translation"
    varying: list[str]  # the axes whose values differ between arms (they name the arms)
    arm_axes: dict[str, dict[str, Any]]  # arm label -> axis values
    source: str  # how the records were found, for the README
    palette: dict[str, Any] = field(default_factory=dict)  # arm label -> colour (report_figures)

    @property
    def arms(self) -> list[str]:
        return list(self.runs["arm"].cat.categories)

    @property
    def completed(self) -> pd.DataFrame:
        return self.runs[self.runs["status"] == "completed"]


# --------------------------------------------------------------------------------------- loading
def _dotted(tree: Any, key: str) -> Any:
    """`model.num_layers` from a nested dict, or from a flat one (W&B configs may be either)."""
    if isinstance(tree, dict) and key in tree:
        return tree[key]
    for part in key.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def run_row(record: dict, run_dir: str, config: dict | None = None, history: pd.DataFrame | None = None,
            analysis: dict | None = None, representations: dict | None = None) -> dict:
    """One DataFrame row from a record (any source); the record is trusted only for its documented keys."""
    if not isinstance(record, dict) or "status" not in record:
        raise S2SError(f"{run_dir}: {RECORD_FILE} is not a run record (it has no 'status')")
    task = record.get("task") or (M.task_of(record["data"]) if record.get("data") else None)
    if task not in M.TASK_METRICS:
        raise S2SError(f"{run_dir}: {RECORD_FILE} names no known task (got {task!r})")
    axes = record.get("axes") or {}
    metrics = record.get("metrics") or {}
    row = {
        "run_dir": run_dir, "status": record["status"], "error": record.get("error"), "task": task,
        "data": record.get("data"), "src_lang": record.get("src_lang"), "tgt_lang": record.get("tgt_lang"),
        "seed": record.get("seed"), "arm_name": record.get("arm"), "beam_size": record.get("beam_size"),
        "bleu_signature": record.get("bleu_signature"), "num_parameters": record.get("num_parameters"),
        "wall_time_s": _float(record.get("wall_time_s")), "epochs_completed": record.get("epochs_completed"),
        "peak_memory_mb": _float(record.get("peak_memory_mb")), "device": record.get("device"),
        "git_commit": record.get("git_commit"), "git_dirty": record.get("git_dirty"),
        "versions": record.get("versions") or {},
        "study": record.get("study"), "trial_number": record.get("trial_number"),
    }
    for axis in AXES:
        row[axis] = axes[axis] if axis in axes else _dotted(config, axis)
    for name in M.FINAL:
        row[name] = _float(metrics.get(name))
    # Training speed: the median over epochs of target tokens/s (the first epoch pays for warm-up).
    speed = history[M.TRAIN_TOKENS_PER_S].dropna() if isinstance(history, pd.DataFrame) \
        and M.TRAIN_TOKENS_PER_S in history else pd.Series(dtype=float)
    row[M.TRAIN_TOKENS_PER_S] = float(speed.median()) if len(speed) else None
    row.update(config=config, history=history, analysis=analysis, representations=representations)
    return row


def _read_history(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError):
        raise S2SError(f"{path} is not a readable CSV file") from None


def load_run_dir(run_dir: Path) -> dict:
    """A row from a run directory written by `s2s train --run-dir`."""
    run_dir = Path(run_dir)
    config = read_yaml(run_dir / CONFIG_FILE) if (run_dir / CONFIG_FILE).is_file() else None
    optional = {name: read_json(run_dir / name) if (run_dir / name).is_file() else None
                for name in (ANALYSIS_FILE, REPRESENTATIONS_FILE)}
    return run_row(read_json(run_dir / RECORD_FILE), str(run_dir), config, _read_history(run_dir / HISTORY_FILE),
                   optional[ANALYSIS_FILE], optional[REPRESENTATIONS_FILE])


def _is_evaluation(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("metrics"), dict) and "members" in data


def _evaluations(files) -> list[Path]:
    """The folders of those metrics.json `files` that are evaluation records (other tools write files
    called metrics.json too)."""
    return sorted(f.parent for f in files if _is_evaluation(read_json(f)))


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
            if not _is_evaluation(read_json(path / EVAL_FILE)):
                raise S2SError(f"{path / EVAL_FILE} is not an evaluation record (no 'metrics' and 'members')")
            evals.append(path)
        elif path.is_dir():
            runs += sorted(f.parent for f in path.rglob(RECORD_FILE))
            evals += _evaluations(path.rglob(EVAL_FILE))
        else:
            raise S2SError(f"{path} is neither a run directory nor a folder of run directories")
    for run in runs:  # a run given directly still brings its beam evaluations
        evals += _evaluations((run / "eval").glob(f"*/{EVAL_FILE}"))
    return _unique(runs), _unique(evals)


def evaluations_beside(run_dirs: Sequence[Path]) -> list[Path]:
    """Evaluations anywhere under the run directories' common folder, such as an ensemble saved with
    `s2s evaluate ... --out runs/addition/ensembles/X` for a study whose runs are
    runs/addition/<arm>/seed<k>. `load` keeps those made of the study's runs only."""
    resolved = [Path(d).resolve() for d in run_dirs]
    root = Path(os.path.commonpath(resolved))
    if any(len(d.relative_to(root).parts) > 2 for d in resolved):
        return []  # runs scattered over unrelated folders: no study folder to search
    return _evaluations(root.rglob(EVAL_FILE))


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
            return by_path[candidate.resolve()]
    same_name = [r for r in runs["run_dir"] if Path(r).name == Path(member).name]
    return same_name[0] if len(same_name) == 1 else None


def eval_rows(eval_dirs: list[Path], runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for eval_dir in eval_dirs:
        data = read_json(eval_dir / EVAL_FILE)
        members = [str(m) for m in data.get("members") or []]
        in_run = eval_dir.parent.name == "eval" and (eval_dir.parent.parent / RECORD_FILE).is_file()
        matched = ([_match_member(str(eval_dir.parent.parent), eval_dir, runs)] if in_run and len(members) <= 1
                   else [_match_member(m, eval_dir, runs) for m in members])
        row = {"eval_dir": str(eval_dir), "split": data.get("split", "test"), "beam_size": data.get("beam_size"),
               "members": members, "n_members": max(len(members), 1), "member_runs": matched}
        row.update({name: _float(data["metrics"].get(name)) for name in M.FINAL})
        rows.append(row)
    return pd.DataFrame(rows, columns=["eval_dir", "split", "beam_size", "members", "n_members", "member_runs",
                                       *M.FINAL])


def load_study(name: str, storage: str) -> tuple[list[Path], pd.DataFrame]:
    """Run directories of the study's trials (user attr `run_dir`), and every trial's state.

    A sweep keeps its grid trials (arm x seed) in study NAME and any nuisance tuning in per-arm studies
    `NAME/<arm>`. Only the grid runs are results; tuning trials count in sweep health and compute.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if "://" in storage:
        if storage.startswith("sqlite:///") and not Path(storage.removeprefix("sqlite:///")).is_file():
            raise S2SError(f"storage {storage} does not exist")  # sqlite would silently create it
        backend: Any = storage
    else:  # a path: Optuna's journal file (JournalFileBackend), the sweep's default storage
        if not Path(storage).is_file():
            raise S2SError(f"storage {storage} is neither a database URL nor an existing journal file")
        backend = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage))
    names = optuna.get_all_study_names(storage=backend)
    if name not in names:
        raise S2SError(f"no study named '{name}' in {storage} (it has: {', '.join(sorted(names)) or 'none'})")
    rows = []
    for study_name in [name, *sorted(n for n in names if n.startswith(f"{name}/"))]:
        for t in optuna.load_study(study_name=study_name, storage=backend).get_trials(deepcopy=False):
            run_dir = t.user_attrs.get("run_dir")
            record = Path(run_dir) / RECORD_FILE if run_dir else None
            has_record = record is not None and record.is_file()
            rows.append({"study": study_name, "tuning": study_name != name, "number": t.number,
                         "state": t.state.name, "run_dir": run_dir, "has_record": has_record,
                         "wall_time_s": _float(read_json(record).get("wall_time_s")) if has_record else None})
    trials = pd.DataFrame(rows, columns=["study", "tuning", "number", "state", "run_dir", "has_record", "wall_time_s"])
    return [Path(r["run_dir"]) for r in rows if r["has_record"] and not r["tuning"]], trials


_WANDB_STATUS = {"finished": "completed", "crashed": "failed", "failed": "failed", "killed": "interrupted",
                 "running": "running"}


def load_wandb(path: str) -> list[dict]:
    """Rows from W&B runs (config + summary); needs network access and `wandb login`."""
    parts = path.strip("/").split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise S2SError(f"--wandb wants ENTITY/PROJECT[/GROUP], got '{path}'")
    try:
        import wandb

        api = wandb.Api(timeout=30)
        found = list(api.runs(f"{parts[0]}/{parts[1]}", filters={"group": parts[2]} if len(parts) == 3 else None))
    except Exception as exc:  # offline, no API key, unknown project: all end the same way for the user
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise S2SError(f"cannot read W&B runs of {path} (needs network and `wandb login`): {first}") from None
    rows = []
    for run in found:
        config, summary = dict(run.config), dict(run.summary)
        record = {"status": _WANDB_STATUS.get(run.state, run.state), "data": _dotted(config, "data.name"),
                  "seed": config.get("seed"), "axes": {a: _dotted(config, a) for a in AXES},
                  "beam_size": _dotted(config, "eval.beam_size"), "wall_time_s": summary.get("_runtime"),
                  "peak_memory_mb": summary.get("peak_memory_mb"), "device": summary.get("device"),
                  "bleu_signature": summary.get("bleu_signature"), "metrics": {m: summary.get(m) for m in M.FINAL}}
        try:
            history = run.history(keys=["epoch", M.VAL_PPL, M.TRAIN_TOKENS_PER_S], pandas=True)
        except Exception:  # a curve is a nicety; the summary metrics are the report
            history = None
        rows.append(run_row(record, run.url, config, history))
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
    datasets = sorted({f"{d} {s}-{t}" if s else str(d) for d, s, t in
                       runs[["data", "src_lang", "tgt_lang"]].itertuples(index=False)})
    if len(datasets) > 1:
        raise S2SError(f"records mix data sets ({', '.join(datasets)}); report them separately")
    runs, varying, arm_axes = name_arms(runs)
    evals = eval_rows(eval_dirs, runs)
    if isinstance(source, StudySource):  # an evaluation found beside the study's runs must be of them
        made_of_study_runs = evals["member_runs"].map(lambda matched: None not in matched).astype(bool)
        evals = evals[made_of_study_runs].reset_index(drop=True)
    return ReportData(runs=runs, evals=evals, trials=trials, task=tasks[0], varying=varying,
                      arm_axes=arm_axes, source=where)


def _sort_key(values: tuple) -> tuple:
    return tuple((v is None, v if v is not None else 0) for v in values)


def name_arms(runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str], dict[str, dict]]:
    """Label every run's arm by the axes that vary; order arms by axis values (False < True, small first)."""
    keys = [tuple(None if pd.isna(v) else v for v in row) for row in runs[list(AXES)].itertuples(index=False)]
    varying = [a for i, a in enumerate(AXES) if len({k[i] for k in keys}) > 1]
    shown = [AXES.index(a) for a in (varying or AXES)]
    labels, arm_axes = [], {}
    for key, name in zip(keys, runs["arm_name"]):
        if all(v is None for v in key):  # a record without axes: its own arm name is all we have
            label = str(name) if isinstance(name, str) else "unknown arm"
        else:
            label = " · ".join(axis_value_label(AXES[i], key[i]) for i in shown)
        labels.append(label)
        arm_axes[label] = dict(zip(AXES, key))
    order = sorted(set(labels), key=lambda lab: (_sort_key(tuple(arm_axes[lab].values())), lab))
    runs = runs.assign(arm=pd.Categorical(labels, categories=order, ordered=True),
                       _seed=pd.to_numeric(runs["seed"], errors="coerce"))
    runs = runs.sort_values(["arm", "_seed", "run_dir"], na_position="last").drop(columns="_seed")
    return runs.reset_index(drop=True), varying, arm_axes


# ---------------------------------------------------------------------------------------- README
def build_report(source: Source | Path | str | Sequence[Path | str], out_dir: Path | str, *,
                 title: str | None = None, command: str | None = None) -> Path:
    """Load `source`, write tables/, figures/ and README.md into `out_dir`; return the README path."""
    if isinstance(source, (str, Path)):
        source = RunsSource((Path(source),))
    elif not isinstance(source, (RunsSource, StudySource, WandbSource)):
        source = RunsSource(tuple(Path(s) for s in source))
    data = load(source)
    out_dir = Path(out_dir)
    data.palette = arm_palette(data.arms)
    tables = build_tables(data)
    write_tables(tables, out_dir / "tables")
    figures = build_figures(data, out_dir / "figures")
    readme = out_dir / "README.md"
    atomic_write_text(readme, render_readme(data, tables, figures, out_dir, title=title, command=command))
    return readme


def render_readme(data: ReportData, tables: dict, figures: dict, out_dir: Path, *, title: str | None,
                  command: str | None) -> str:
    runs, done = data.runs, data.completed
    seeds = done.groupby("arm", observed=False).size()
    seeds_text = (f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}–{seeds.max()}")
    fixed = [axis_value_label(a, data.arm_axes[data.arms[0]][a], long=True) for a in AXES if a not in data.varying]
    first = runs.iloc[0]
    data_text = (f"{first['data']} {first['src_lang']}→{first['tgt_lang']}" if data.task == "translation"
                 else str(first["data"]))
    split = _dotted(first["config"], "data.test_split") if data.task == "translation" else None
    out = [f"# {title or 'Report: ' + out_dir.name}", "",
           f"- **Task**: {data.task}; primary metric: {metric_label(PRIMARY[data.task])} (`{PRIMARY[data.task]}`)",
           f"- **Data**: {data_text}" + (f", test split `{split}`" if split else ""),
           f"- **Runs**: {_count(len(runs), 'record')}, {len(done)} completed: {_count(len(data.arms), 'arm')} × "
           f"{seeds_text} seed{'' if seeds_text == '1' else 's'}",
           f"- **Arms vary in**: {', '.join(AXIS_NAMES[a] for a in data.varying) or 'nothing (one arm)'}"
           + (f"; **fixed**: {', '.join(fixed)}" if fixed and data.varying else ""),
           f"- **Source**: {data.source}", ""]
    if command:
        out += ["This report was produced by:", "", "```sh", command, "```", ""]
    sections = [
        ("Results", ["summary"], [f"test_{PRIMARY[data.task].split('/')[1]}"]),
        ("Table 1: single models and ensembles", ["table1"], []),
        ("Beam size", ["beam"], []),
        ("Paired significance", ["significance"], []),
        ("Training curves", [], ["val_curves"]),
        ("Sentence length and word frequency", [], ["by_length", "by_frequency"]),
        ("Teacher forcing", [], ["teacher_forcing"]),
        ("Sentence representations", [], ["representations"]),
        ("Sweep health", ["health", "failures"], []),
    ]
    for heading, table_names, figure_names in sections:
        parts = []
        for name in table_names:
            if name in tables:
                t = tables[name]
                parts += [f"**{t.title}.** {t.caption}", "", t.markdown(), "",
                          f"<sub>[CSV](tables/{name}.csv) · [LaTeX](tables/{name}.tex)</sub>", ""]
        for name in figure_names:
            if name in figures:
                f = figures[name]
                parts += [f"![{f.title}](figures/{name}.png)", "",
                          f"*{f.caption}* [PDF](figures/{name}.pdf)", ""]
        if parts:
            out += [f"## {heading}", "", *parts]
    out += ["## Provenance", "", *_provenance(data), ""]
    if "runs" in tables:
        t = tables["runs"]
        out += ["## Runs", "", t.caption, "", t.markdown(), ""]
    return "\n".join(out).rstrip() + "\n"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _provenance(data: ReportData) -> list[str]:
    done = data.completed if len(data.completed) else data.runs
    lines = []
    sigs = done["bleu_signature"].dropna().value_counts()
    for sig, n in sigs.items():
        lines.append(f"- sacreBLEU signature: `{sig}`" + (f" ({_runs(n)})" if len(sigs) > 1 else ""))
    if data.task == "translation" and sigs.empty:
        lines.append("- sacreBLEU signature: not recorded")
    if data.task == "addition":
        lines.append("- Exact match: a hypothesis scores 1 only if it equals the reference string")
    code = done["git_commit"].fillna("unknown").str[:10].map(lambda c: f"`{c}`") \
        + done["git_dirty"].map(lambda d: " with uncommitted changes" if d is True else "")
    lines.append("- Code: " + ", ".join(f"{c} ({_runs(n)})" for c, n in code.value_counts().items()))
    versions = done["versions"].map(lambda v: ", ".join(f"{k} {x}" for k, x in sorted(v.items())) or "unknown")
    for text, n in versions.value_counts().items():
        lines.append(f"- Libraries: {text}" + (f" ({_runs(n)})" if versions.nunique() > 1 else ""))
    lines.append("- Tables are also under `tables/` as CSV (full precision) and LaTeX (booktabs); "
                 "figures under `figures/` as PNG and PDF")
    return lines


# ------------------------------------------------------------------------------------------- CLI
def add_report_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `report` to the CLI's subparsers; the parsed args carry `func=run_report`."""
    p = subparsers.add_parser(
        "report", help="tables, figures and a README from run records",
        description="Write tables (Markdown, LaTeX, CSV), figures (PNG, PDF) and README.md from run records.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--runs", nargs="+", type=Path, metavar="DIR",
                     help="run directories, evaluation directories, or folders searched for record.json")
    src.add_argument("--study", metavar="NAME", help="an Optuna study whose trials carry the user attr run_dir")
    src.add_argument("--wandb", metavar="ENTITY/PROJECT[/GROUP]", help="W&B runs (needs network)")
    p.add_argument("--storage", metavar="URL",
                   help="storage of --study: a journal file path or a database URL such as sqlite:///runs/optuna.db "
                        f"(default: the sweep's {DEFAULT_STORAGE})")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="DIR", help="report folder, e.g. reports/NAME")
    p.add_argument("--title", help="README title (default: 'Report: NAME')")
    p.set_defaults(func=run_report)
    return p


def source_from_args(args: argparse.Namespace) -> Source:
    if args.storage and not args.study:
        raise S2SError("--storage goes with --study")
    if args.study:
        return StudySource(args.study, args.storage or DEFAULT_STORAGE)
    if args.wandb:
        return WandbSource(args.wandb)
    return RunsSource(tuple(args.runs))


def command_line(args: argparse.Namespace) -> str:
    """The report command, spelled canonically, for the README."""
    if args.study:
        from .studies import redact  # a report is committed: never a storage password in it

        words = ["--study", args.study, "--storage", redact(args.storage or DEFAULT_STORAGE)]
    elif args.wandb:
        words = ["--wandb", args.wandb]
    else:
        words = ["--runs", *map(str, args.runs)]
    words += ["-o", str(args.out)] + (["--title", args.title] if args.title else [])
    return "s2s report " + shlex.join(words)


def run_report(args: argparse.Namespace) -> int:
    readme = build_report(source_from_args(args), args.out, title=args.title, command=command_line(args))
    print(f"wrote {readme}")
    return 0


def main_report(argv: Sequence[str] | None = None) -> int:
    """`python -m s2s_lightning.report --runs DIR -o OUT`: the same as `s2s report`."""
    parser = argparse.ArgumentParser(prog="s2s")
    add_report_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["report", *(sys.argv[1:] if argv is None else argv)])
    try:
        return run_report(args)
    except S2SError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main_report())
