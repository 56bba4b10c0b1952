"""Registration of the sub-commands that live outside cli.py (each adds its own parser)."""

from .inference import add_parsers as _evaluate_translate
from .report import add_report_parser as _report
from .sweep import add_sweep_parsers as _sweep

PARSERS: list = [_evaluate_translate, _report, _sweep]
