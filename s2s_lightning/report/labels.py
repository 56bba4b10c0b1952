"""How a report words things: axis names and values in arm labels, metric labels, decimals.

Shared by the report's data (arm naming), tables and figures. The four paper axes have short labels
(`reversed`, `peeky`, `tf=0.5`); any other scientific axis reads as `name=value` after its last key part.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from .. import metrics as M

_LABELS = {
    M.TEST_BLEU: "BLEU",
    M.TEST_BLEU_TOK: "BLEU (tok)",
    M.TEST_BLEU_TOK_LC: "BLEU (tok, lc)",
    M.TEST_CHRF: "chrF",
    M.TEST_EXACT_MATCH: "Exact match",
    M.TEST_TOKEN_ACC: "Token acc.",
    M.TEST_PPL: "Perplexity",
    M.VAL_PPL: "Validation perplexity",
    M.VAL_BLEU: "Validation BLEU",
    M.VAL_EXACT_MATCH: "Validation exact match",
}
_FRACTIONS = {M.TEST_EXACT_MATCH, M.TEST_TOKEN_ACC}  # 3 decimals; BLEU, chrF and perplexity get 2
DASH = "—"
# Figures: PNG resolution, and the smallest text any figure prints (report.html shows every figure at a
# size where that text is as large as the page's small print).
DPI = 150
MIN_FONT_PT = 8

# How each paper axis reads in the report; any other axis by its key's last part.
AXIS_NAMES = {
    "model.num_layers": "layers",
    "data.reverse_source": "source order",
    "model.peeky": "decoder",
    "train.teacher_forcing_ratio": "teacher forcing",
}


def axis_name(axis: str) -> str:
    return AXIS_NAMES.get(axis, axis.rsplit(".", 1)[-1])


def axis_value_label(axis: str, value: Any, long: bool = False) -> str:
    """`reversed`, `peeky`, `tf=0.5` in arm labels; `long` adds the noun where the label stands alone."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return f"{axis_name(axis)}=?"
    if axis == "model.num_layers":
        return f"{int(value)} layer{'s' if int(value) != 1 else ''}"
    if axis == "data.reverse_source":
        return ("reversed" if value else "forward") + (" source" if long else "")
    if axis == "model.peeky":
        return ("peeky" if value else "plain") + (" decoder" if long else "")
    if axis == "train.teacher_forcing_ratio":
        ratio = f"{float(value):g}"
        ratio += "" if "." in ratio or "e" in ratio else ".0"  # tf=1.0 reads as a ratio, tf=1 as a count
        return f"teacher forcing {ratio}" if long else f"tf={ratio}"
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{axis_name(axis)} {text}" if long else f"{axis_name(axis)}={text}"


def metric_label(name: str) -> str:
    return _LABELS.get(name, name)


def metric_phrase(name: str) -> str:
    """The label inside a sentence: "Test exact match", but "Test BLEU", "Test chrF"."""
    label = metric_label(name)
    return label if label[:2].isupper() or label[0].islower() else label[0].lower() + label[1:]


def is_fraction(metric: str) -> bool:
    return metric in _FRACTIONS


def metric_range(metric: str) -> tuple[float, float] | None:
    """The values a metric can take, where bounded: a fraction 0 to 1, BLEU and chrF 0 to 100 (an error
    bar stops there)."""
    if is_fraction(metric):
        return (0.0, 1.0)
    return (0.0, 100.0) if "bleu" in metric or "chrf" in metric else None


def decimals(metric: str) -> int:
    return 3 if is_fraction(metric) else 2


def frequency_label(low: float, high: float) -> str:
    """A word-frequency bucket (low, high] of training counts as a reader says it: unseen, 1, 5-9, 1000+."""
    if high <= 0:
        return "unseen"
    if math.isinf(high):
        return f"{int(low) + 1}+"
    return str(int(high)) if high - low == 1 else f"{int(low) + 1}–{int(high)}"


def short_path(path: str) -> str:
    """A run directory as the reader would type it: relative to the working directory when inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path
