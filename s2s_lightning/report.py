"""`s2s report`: run records -> Markdown/LaTeX/CSV tables, PNG/PDF figures and a README.md.

The records are loaded by report_data.py, tables built by report_tables.py and figures drawn by
report_figures.py; this module puts them together into a report folder with its README.md, and holds
what `s2s report` runs (its parser lives in cli.py).
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Sequence
from pathlib import Path

from .errors import S2SError
from .records import atomic_write_text
from .report_data import ReportData, RunsSource, Source, StudySource, WandbSource, dotted, load
from .report_figures import arm_palette, build_figures
from .report_labels import PRIMARY, axis_name, axis_value_label, metric_label, short_path
from .report_tables import build_tables, write_tables
from .studies import default_storage, redact


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


# ---------------------------------------------------------------------------------------- README
def build_report(
    source: Source | Path | str | Sequence[Path | str],
    out_dir: Path | str,
    *,
    title: str | None = None,
    command: str | None = None,
    note: str | None = None,
) -> Path:
    """Load `source`, write tables/, figures/ and README.md into `out_dir`; return the README path.
    `note`: Markdown put under the header (how the runs were made, their wall time)."""
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
    text = render_readme(data, tables, figures, out_dir, title=title, command=command)
    if note:
        head, sep, rest = text.partition("\n## ")
        text = f"{head.rstrip()}\n\n## How the runs were made\n\n{note.strip()}\n\n## {rest}" if sep else text
    atomic_write_text(readme, text)
    return readme


def report_name(data: ReportData, out_dir: Path) -> str:
    """The study the runs came from (one study: its name), else the output folder's name."""
    studies = data.runs["study"].dropna().unique() if "study" in data.runs else []
    return f"study {studies[0]}" if len(studies) == 1 else out_dir.name


def render_readme(
    data: ReportData, tables: dict, figures: dict, out_dir: Path, *, title: str | None, command: str | None
) -> str:
    runs, done = data.runs, data.completed
    seeds = done.groupby("arm", observed=False).size()
    seeds_text = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}–{seeds.max()}"
    fixed = [axis_value_label(a, data.arm_axes[data.arms[0]][a], long=True) for a in data.axes if a not in data.varying]
    first = runs.iloc[0]
    data_text = (
        f"{first['data']} {first['src_lang']}→{first['tgt_lang']}" if data.task == "translation" else str(first["data"])
    )
    split = dotted(first["config"], "data.test_split") if data.task == "translation" else None
    out = [
        f"# {title or 'Report: ' + report_name(data, out_dir)}",
        "",
        f"- **Task**: {data.task}; primary metric: {metric_label(PRIMARY[data.task])} (`{PRIMARY[data.task]}`)",
        f"- **Data**: {data_text}" + (f", test split `{split}`" if split else ""),
        f"- **Runs**: {_count(len(runs), 'record')}, {len(done)} completed: {_count(len(data.arms), 'arm')} × "
        f"{seeds_text} seed{'' if seeds_text == '1' else 's'}",
        f"- **Arms vary in**: {', '.join(axis_name(a) for a in data.varying) or 'nothing (one arm)'}"
        + (f"; **fixed**: {', '.join(fixed)}" if fixed and data.varying else ""),
        *(
            [
                "- **Not a declared axis**: runs of one arm differed in "
                + ", ".join(f"`{k}`" for k in data.undeclared)
                + ", so these keys tell arms apart too; every other config key is the same in all runs "
                "(the seed and how or where they ran aside)"
            ]
            if data.undeclared
            else []
        ),
        f"- **Source**: {data.source}",
        *(
            [
                "- **One seed per arm**: that is all this budget allows, so no difference between arms comes "
                "with an estimate of training variance (s_dev); only the test-set resampling intervals (s_sel) "
                "and per-run significance tests speak to it"
            ]
            if len(done) and seeds.max() == 1
            else []
        ),
        "",
    ]
    if command:
        out += ["This report was produced by:", "", "```sh", command, "```", ""]
    sections = [
        ("Results", ["summary"], [f"test_{PRIMARY[data.task].split('/')[1]}"]),
        ("Table 1: single models and ensembles", ["table1"], []),
        ("Test sets", ["test_sets"], []),
        ("Beam size", ["beam"], []),
        ("Paired significance", ["significance_pooled", "significance"], []),
        ("Training curves", [], ["val_curves"]),
        ("Sentence length and word frequency", ["word_f"], ["by_length", "by_frequency", "word_f"]),
        ("Teacher forcing", [], ["teacher_forcing"]),
        ("Sentence representations", [], ["representations"]),
        ("Sweep health", ["health", "failures"], []),
    ]
    for heading, table_names, figure_names in sections:
        parts = []
        for name in table_names:
            if name in tables:
                t = tables[name]
                parts += [
                    f"**{t.title}.** {t.caption}",
                    "",
                    t.markdown(),
                    "",
                    f"<sub>[CSV](tables/{name}.csv) · [LaTeX](tables/{name}.tex)</sub>",
                    "",
                ]
        for name in figure_names:
            if name in figures:
                f = figures[name]
                parts += [f"![{f.title}](figures/{name}.png)", "", f"*{f.caption}* [PDF](figures/{name}.pdf)", ""]
        if parts:
            out += [f"## {heading}", "", *parts]
    if "representations" not in figures:  # the paper's Fig. 2 needs one manual step: say which
        best = data.completed.sort_values(PRIMARY[data.task], ascending=False)["run_dir"].head(1).tolist()
        run = short_path(best[0]) if best else "RUN"
        out += ["## Sentence representations", "",
                "No run holds encoder vectors yet. For the paper's Figure 2 (a 2-D PCA of sentence vectors), write a "
                "few phrases one per line (for translation, reorderings of one sentence and paraphrases; for "
                "addition, questions with the same sum; `reports/phrases.de.txt` and `reports/phrases.addition.txt` "
                f"in the repository are examples) and run `s2s evaluate {run} --represent PHRASES`, then generate "
                "this report again.", ""]  # fmt: skip
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
    code = done["git_commit"].fillna("unknown").str[:10].map(lambda c: f"`{c}`") + done["git_dirty"].map(
        lambda d: " with uncommitted changes" if d is True else ""
    )
    lines.append("- Code: " + ", ".join(f"{c} ({_runs(n)})" for c, n in code.value_counts().items()))
    versions = done["versions"].map(lambda v: ", ".join(f"{k} {x}" for k, x in sorted(v.items())) or "unknown")
    for text, n in versions.value_counts().items():
        lines.append(f"- Libraries: {text}" + (f" ({_runs(n)})" if versions.nunique() > 1 else ""))
    lines.append(
        "- Tables are also under `tables/` as CSV (full precision) and LaTeX (booktabs); "
        "figures under `figures/` as PNG and PDF"
    )
    return lines


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
    return "s2s report " + shlex.join(words)


def run_report(args: argparse.Namespace) -> int:
    note = None
    if args.note:
        try:
            note = Path(args.note).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise S2SError(f"cannot read --note {args.note}: {exc}") from None
    readme = build_report(source_from_args(args), args.out, title=args.title, command=command_line(args), note=note)
    print(f"wrote {readme}")
    return 0
