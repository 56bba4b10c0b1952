"""The report's table type: numbers (written as CSV at full precision) next to display strings
(Markdown for the README, LaTeX booktabs for a paper), and how a score is shown (mean ± sd, n)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..records import atomic_write_text
from .labels import (
    DASH,
    decimals,
    is_fraction,
)


def fmt_score(mean: float, std: float, n: int, metric: str, n_expected: int | None = None) -> str:
    """`27.31 ± 0.52`; a lone seed has no deviation; a count differing from the arm's is shown."""
    if n == 0:
        return DASH
    d = decimals(metric)
    if is_fraction(metric) and mean < 1 and round(mean, d) == 1:
        d += 1  # a fraction short of 1 never reads as a perfect "1.000"
    text = f"{mean:.{d}f}" + (f" ± {std:.{d}f}" if n > 1 else "")
    return text + (f" (n={n})" if n_expected is not None and n != n_expected else "")


def stats(values) -> tuple[float, float, int]:
    v = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").dropna()
    return (float(v.mean()) if len(v) else math.nan, float(v.std(ddof=1)) if len(v) > 1 else math.nan, len(v))


@dataclass
class Table:
    name: str  # file stem under tables/
    title: str
    caption: str  # plain text: what the numbers are
    display: pd.DataFrame  # strings, as printed
    data: pd.DataFrame  # numbers, for the CSV
    text_columns: int = 1  # leading columns aligned left, the rest right
    bold: set[tuple[int, str]] = field(default_factory=set)  # (row, column) of best values

    def _cells(self, wrap) -> list[list[str]]:
        return [
            [wrap(str(v)) if (i, c) in self.bold else str(v) for c, v in row.items()]
            for i, row in enumerate(self.display.to_dict("records"))
        ]

    def markdown(self) -> str:
        header = [str(c) for c in self.display.columns]
        rows = [[c.replace("|", "\\|") for c in r] for r in self._cells(lambda v: f"**{v}**")]
        widths = [max([len(h)] + [len(r[j]) for r in rows]) for j, h in enumerate(header)]

        def line(cells):
            return (
                "| "
                + " | ".join(
                    c.ljust(w) if j < self.text_columns else c.rjust(w)
                    for j, (c, w) in enumerate(zip(cells, widths))
                )
                + " |"
            )

        rule = (
            "|"
            + "|".join(
                ":" + "-" * (w + 1) if j < self.text_columns else "-" * (w + 1) + ":"
                for j, w in enumerate(widths)
            )
            + "|"
        )
        return "\n".join([line(header), rule, *map(line, rows)])

    def latex(self) -> str:
        cols = "l" * self.text_columns + "r" * (len(self.display.columns) - self.text_columns)
        rows = self._cells(lambda v: "\x00" + v + "\x01")  # bold marks survive escaping

        def line(cells):
            return (
                " & ".join(tex_escape(c).replace("\x00", r"\textbf{").replace("\x01", "}") for c in cells)
                + r" \\"
            )

        return (
            "\n".join(
                [
                    r"\begin{table}[t]",
                    r"\centering",
                    rf"\caption{{{tex_escape(self.title)}. {tex_escape(self.caption)}}}",
                    rf"\label{{tab:{self.name}}}",
                    rf"\begin{{tabular}}{{{cols}}}",
                    r"\toprule",
                    line([str(c) for c in self.display.columns]),
                    r"\midrule",
                    *map(line, rows),
                    r"\bottomrule",
                    r"\end{tabular}",
                    r"\end{table}",
                ]
            )
            + "\n"
        )


_TEX = [
    ("\\", r"\textbackslash{}"),
    ("&", r"\&"),
    ("%", r"\%"),
    ("$", r"\$"),
    ("#", r"\#"),
    ("_", r"\_"),
    ("{", r"\{"),
    ("}", r"\}"),
    ("~", r"\textasciitilde{}"),
    ("^", r"\textasciicircum{}"),
    ("`", ""),
    ("±", r"$\pm$"),
    ("·", r"$\cdot$"),
    ("−", "$-$"),
    ("Δ", r"$\Delta$"),
    ("—", "--"),
    ("–", "--"),
    ("→", r"$\rightarrow$"),
    ("<", "$<$"),
    (">", "$>$"),
    ("×", r"$\times$"),
]


def tex_escape(text: str) -> str:
    # Specials first, then the Unicode that expands into $...$ (which must not be escaped again).
    for old, new in _TEX[:11]:
        text = text.replace(old, new)
    for old, new in _TEX[11:]:
        text = text.replace(old, new)
    return text


def write_tables(tables: dict[str, Table], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for old in [*folder.glob("*.md"), *folder.glob("*.tex"), *folder.glob("*.csv")]:
        old.unlink()  # a table that no longer applies must not survive from an earlier report
    for name, table in tables.items():
        atomic_write_text(
            folder / f"{name}.md", f"**{table.title}.** {table.caption}\n\n{table.markdown()}\n"
        )
        atomic_write_text(folder / f"{name}.tex", table.latex())
        atomic_write_text(folder / f"{name}.csv", table.data.to_csv(index=False))
