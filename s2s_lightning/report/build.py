"""`s2s report`: run records -> Markdown/LaTeX/CSV tables, PNG/PDF figures and a README.md.

The records are loaded by load.py, tables built by tables.py (with significance.py and health.py) and
figures drawn by figures.py; this module puts them together into a report folder, its README.md
written by readme.py, and holds what `s2s report` runs (its parser lives in cli.py).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import shlex
from collections.abc import Iterator, Sequence
from pathlib import Path

from .. import metrics as M
from ..errors import S2SError
from ..records import atomic_write_text
from ..sweep.storage import default_storage, redact
from .archive import check_source, pack, unpacked
from .buckets import KEYS, bucket_scores, bucket_table
from .dashboard import publish
from .figures import build_figures
from .findings import effects_of, effects_table, findings
from .html import write_page
from .load import RunsSource, Source, StudySource, WandbSource, load
from .readme import render_readme
from .table import write_tables
from .tables import build_tables
from .workspace import write_workspace


# ---------------------------------------------------------------------------------------- README
def build_report(
    source: Source | Path | str | Sequence[Path | str],
    out_dir: Path | str,
    *,
    title: str | None = None,
    command: str | None = None,
    note: str | None = None,
    metric: str | None = None,
    save_records: bool = False,
    wandb_workspace: str | None = None,
) -> Path:
    """Load `source`, write tables/, figures/ and README.md into `out_dir`; return the README path.
    `note`: Markdown put under the Findings (how the runs were made, their wall time); `metric`: the
    metric of the effects table and the Findings (default: the task's primary metric); `save_records`:
    also write OUT/records.tar.gz, the records the report was built from (archive.py);
    `wandb_workspace`: ENTITY/PROJECT of the study's saved W&B workspace (workspace.py)."""
    if isinstance(source, (str, Path)):
        source = RunsSource((Path(source),))
    elif not isinstance(source, (RunsSource, StudySource, WandbSource)):
        source = RunsSource(tuple(Path(s) for s in source))
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise S2SError(f"-o {out_dir} is a file, not a folder: name a folder for the report")
    data = load(source)
    if data.completed.empty:
        counts = data.runs["status"].value_counts() if "status" in data.runs else {}
        states = ", ".join(f"{n} {state}" for state, n in dict(counts).items()) or "no run records"
        raise S2SError(f"no run completed ({states}): a report needs at least one completed run")
    effects = _effects(data, metric or data.spec.primary)
    buckets = {key: bucket_scores(data, key) for key in KEYS}
    tables = build_tables(data) | ({"effects": effects_table(effects[0])} if effects else {})
    tables |= {key: t for key, df in buckets.items() if (t := bucket_table(data, key, df)) is not None}
    write_tables(tables, out_dir / "tables")
    figures = build_figures(data, out_dir / "figures", effects, buckets)
    readme = out_dir / "README.md"
    found = findings(effects[0], data) if effects else None
    text = render_readme(
        data, tables, figures, out_dir, title=title, command=command, findings=found, note=note
    )
    atomic_write_text(readme, text)
    write_page(out_dir)
    if save_records:
        pack(data, source, out_dir)
    if wandb_workspace:
        if not isinstance(source, StudySource):
            raise S2SError("--wandb-workspace goes with --study: the workspace shows a study's runs")
        for line in write_workspace(data, source.name, wandb_workspace, out_dir):
            print(line)
    return readme


def _effects(data, metric: str) -> list:
    """The effects on `metric` (an error when no run records it), then on test perplexity for the forest
    plot's second panel; [] when no axis varies."""
    first = effects_of(data, metric)
    if first is None:
        return []
    ppl = M.TEST_PPL != metric and M.TEST_PPL in data.runs and data.completed[M.TEST_PPL].notna().any()
    return [first, *([effects_of(data, M.TEST_PPL)] if ppl else [])]


# ------------------------------------------------------------------------------------------- CLI
def source_from_args(args: argparse.Namespace) -> Source:
    if args.storage and not args.study:
        raise S2SError("--storage goes with --study")
    if args.study:
        return StudySource(args.study, args.storage or default_storage())
    if args.wandb:
        return WandbSource(args.wandb)
    return RunsSource(tuple(args.runs))


def command_line(args: argparse.Namespace) -> str:
    """The report command, spelled canonically, for the README."""
    if args.study:  # a report is committed: never a storage password in it
        words = ["--study", args.study, "--storage", redact(args.storage or default_storage())]
    elif args.wandb:
        words = ["--wandb", args.wandb]
    else:
        words = ["--runs", *map(str, args.runs)]
    words += ["-o", str(args.out)] + (["--title", args.title] if args.title else [])
    words += ["--note", str(args.note)] if args.note else []
    words += ["--metric", args.metric] if args.metric else []
    words = (["--records", str(args.records)] if args.records else []) + words
    words += ["--save-records"] if args.save_records else []
    return "s2s report " + shlex.join(words)


def run_report(args: argparse.Namespace) -> int:
    note = None
    if args.note:
        try:
            note = Path(args.note).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise S2SError(f"cannot read --note {args.note}: {exc}") from None
    source, out = source_from_args(args), Path(args.out)
    build = functools.partial(
        build_report,
        source,
        title=args.title,
        command=command_line(args),
        note=note,
        metric=args.metric,
        save_records=args.save_records,
        wandb_workspace=args.wandb_workspace,
    )
    if args.records:  # the paths --runs / --study name, read inside the archive
        check_source(source)
        out = out.resolve()
        with unpacked(args.records) as root, _inside(root):
            readme = build(out)
    else:
        readme = build(out)
    print(f"wrote {readme}")
    if args.study and not args.records:  # the Optuna dashboard opens on the report
        try:
            lines = publish(args.study, args.storage or default_storage(), out)
        except OSError as exc:  # the report stands; only the dashboard's copy is missing
            lines = [f"the report was written, but not into study '{args.study}' for its dashboard: {exc}"]
        print("\n".join(lines))
    return 0


@contextlib.contextmanager
def _inside(folder: Path) -> Iterator[None]:
    """The working directory set to `folder` for the block (contextlib.chdir is Python 3.11+)."""
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)
