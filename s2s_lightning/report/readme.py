"""The report's README.md: a header that says what the runs are, then each section's tables and
figures, the provenance and the runs."""

from __future__ import annotations

import os
from pathlib import Path

from .labels import axis_name, axis_value_label, metric_label, short_path
from .load import ReportData, dotted


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def report_name(data: ReportData, out_dir: Path) -> str:
    """The study the runs came from (one study: its name), else the output folder's name."""
    studies = data.runs["study"].dropna().unique() if "study" in data.runs else []
    return f"study {studies[0]}" if len(studies) == 1 else out_dir.name


SECTIONS = [  # heading, tables, figures: in this order, each only when it has something
    ("Results", ["summary"], ["test_{primary}"]),
    ("Effects of the scientific axes", ["effects"], ["effects", "interactions"]),
    ("Table 1: single models and ensembles", ["table1"], []),
    ("Test sets", ["test_sets"], []),
    ("Beam size", ["beam"], []),
    ("Paired significance", ["significance_pooled", "significance"], []),
    ("Training curves", [], ["val_curves"]),
    (
        "Sentence length and word frequency",
        ["by_length", "by_frequency", "word_f"],
        ["by_length", "by_frequency", "word_f"],
    ),
    ("Teacher forcing", [], ["teacher_forcing"]),
    ("Sentence representations", [], ["representations"]),
    ("Sweep health", ["health", "failures"], []),
]


def render_readme(
    data: ReportData,
    tables: dict,
    figures: dict,
    out_dir: Path,
    *,
    title: str | None,
    command: str | None,
    findings: list[str] | None = None,
    note: str | None = None,
) -> str:
    """README.md: the header, the Findings, the command, `note` (how the runs were made), then each
    section's tables and figures, the provenance and the runs."""
    out = _header(data, out_dir, title)
    if findings:
        out += ["## Findings", "", *findings, ""]
    if command:
        out += ["This report was produced by:", "", "```sh", command, "```", ""]
    if note:
        out += ["## How the runs were made", "", note.strip(), ""]
    primary = data.spec.primary.split("/")[1]
    for heading, table_names, figure_names in SECTIONS:
        parts = [line for name in table_names if name in tables for line in _table_lines(name, tables[name])]
        for name in (f.format(primary=primary) for f in figure_names):
            if name in figures:
                f = figures[name]
                parts += [
                    f"![{f.title}](figures/{name}.png)",
                    "",
                    f"*{f.caption}* [PDF](figures/{name}.pdf)",
                    "",
                ]
        if parts:
            out += [f"## {heading}", "", *parts]
    if "representations" not in figures:  # the paper's Fig. 2 needs one manual step: say which
        out += _representations_hint(data)
    out += ["## Provenance", "", *_provenance(data, out_dir), ""]
    if "runs" in tables:
        t = tables["runs"]
        out += ["## Runs", "", t.caption, "", t.markdown(), ""]
    return "\n".join(out).rstrip() + "\n"


def _table_lines(name: str, t) -> list[str]:
    return [
        f"**{t.title}.** {t.caption}",
        "",
        t.markdown(),
        "",
        f"<sub>[CSV](tables/{name}.csv) · [LaTeX](tables/{name}.tex)</sub>",
        "",
    ]


def _header(data: ReportData, out_dir: Path, title: str | None) -> list[str]:
    """The title and the bullet list that says what the runs are."""
    runs, done = data.runs, data.completed
    seeds = done.groupby("arm", observed=False).size()
    seeds_text = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}–{seeds.max()}"
    fixed = [
        axis_value_label(a, data.arm_axes[data.arms[0]][a], long=True)
        for a in data.axes
        if a not in data.varying
    ]
    first = runs.iloc[0]
    data_text = (
        f"{first['data']} {first['src_lang']}→{first['tgt_lang']}"
        if not data.spec.exact_match
        else str(first["data"])
    )
    split = dotted(first["config"], "data.test_split") if not data.spec.exact_match else None
    out = [
        f"# {title or 'Report: ' + report_name(data, out_dir)}",
        "",
        f"- **Task**: {data.task}; primary metric: {metric_label(data.spec.primary)} (`{data.spec.primary}`)",
        f"- **Data**: {data_text}" + (f", test split `{split}`" if split else ""),
        f"- **Runs**: {_count(len(runs), 'record')}, {len(done)} completed: "
        f"{_count(len(data.arms), 'arm')} × {seeds_text} seed{'' if seeds_text == '1' else 's'}",
        f"- **Arms vary in**: {', '.join(axis_name(a) for a in data.varying) or 'nothing (one arm)'}"
        + (f"; **fixed**: {', '.join(fixed)}" if fixed and data.varying else ""),
    ]
    if data.undeclared:
        out.append(
            "- **Not a declared axis**: runs of one arm differed in "
            + ", ".join(f"`{k}`" for k in data.undeclared)
            + ", so these keys tell arms apart too; every other config key is the same in all runs "
            "(the seed and how or where they ran aside)"
        )
    out.append(f"- **Source**: {data.source}")
    if len(done) and seeds.max() == 1:
        out.append(
            "- **One seed per arm**: that is all this budget allows, so no difference between arms comes "
            "with an estimate of training variance (s_dev); only the test-set resampling intervals (s_sel) "
            "and per-run significance tests speak to it"
        )
    return out + [""]


def _representations_hint(data: ReportData) -> list[str]:
    """No run holds encoder vectors: how to get the paper's Figure 2."""
    best = data.completed.sort_values(data.spec.primary, ascending=False)["run_dir"].head(1).tolist()
    run = short_path(best[0]) if best else "RUN"
    return [
        "## Sentence representations",
        "",
        "No run holds encoder vectors yet. For the paper's Figure 2 (a 2-D PCA of sentence vectors), write a "
        "few phrases one per line (for translation, reorderings of one sentence and paraphrases; for "
        "addition, questions with the same sum; `reports/phrases.de.txt` and `reports/phrases.addition.txt` "
        f"in the repository are examples) and run `s2s evaluate {run} --represent PHRASES`, then generate "
        "this report again.",
        "",
    ]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _code_versions(done, out_dir: Path) -> list[str]:
    """Per commit: its runs, how many came from an edited tree, and links to their diffs (`s2s reproduce`
    rebuilds such a run's code from its commit and diff)."""
    commits = done["git_commit"].fillna("unknown").str[:10]
    parts, links = [], []
    for commit in commits.drop_duplicates():
        runs = done[commits == commit]
        dirty = runs[runs["git_dirty"].map(lambda d: d is True)]
        parts.append(
            f"`{commit}` ({_runs(len(runs))}"
            + (f", {len(dirty)} with uncommitted changes" if len(dirty) else "")
            + ")"
        )
        for run in dirty.itertuples():
            diff = Path(run.run_dir) / "git.diff"
            if diff.is_file():
                target = os.path.relpath(diff.resolve(), Path(out_dir).resolve())
                links.append(f"[{short_path(str(run.run_dir))}]({target})")
    lines = ["- Code: " + ", ".join(parts)]
    if links:
        lines.append("- Diffs of the runs from an edited tree (`s2s reproduce RUN`): " + ", ".join(links))
    return lines


def _provenance(data: ReportData, out_dir: Path) -> list[str]:
    done = data.completed if len(data.completed) else data.runs
    lines = []
    sigs = done["bleu_signature"].dropna().value_counts()
    for sig, n in sigs.items():
        lines.append(f"- sacreBLEU signature: `{sig}`" + (f" ({_runs(n)})" if len(sigs) > 1 else ""))
    if not data.spec.exact_match and sigs.empty:
        lines.append("- sacreBLEU signature: not recorded")
    if data.spec.exact_match:
        lines.append("- Exact match: a hypothesis scores 1 only if it equals the reference string")
    lines += _code_versions(done, out_dir)
    versions = done["versions"].map(
        lambda v: ", ".join(f"{k} {x}" for k, x in sorted(v.items())) or "unknown"
    )
    for text, n in versions.value_counts().items():
        lines.append(f"- Libraries: {text}" + (f" ({_runs(n)})" if versions.nunique() > 1 else ""))
    lines.append(
        "- Tables are also under `tables/` as CSV (full precision) and LaTeX (booktabs); "
        "figures under `figures/` as PNG and PDF"
    )
    return lines
