"""The package's import graph: the core (one run) is flat; `sweep/` and `report/` are wings on top of it.

Every import points down the layer order below (no cycle, no upward edge), function-local imports
included, and the wing rules hold: the core imports neither wing; neither wing reaches the model, the
Lightning system, the data bundle, search or the tokenizers (not even through a core module), so a
sweep or a report never loads torch's models or sacremoses; `report/` reaches `sweep/` only through
its storage module; only `cli.py` imports both wings. The README's Layout table lists the same modules.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "s2s_lightning"

# Lowest first; a module may import only modules before it (a wing module: core modules and the modules
# of its own wing before it). Kept as written (fmt: off): a few names per line read as the layer bands.
# fmt: off
CORE = [
    "__init__", "errors", "metrics", "config", "records", "environment", "text", "corpus", "data",
    "model", "search", "analysis", "evaluation", "checkpoint", "resume", "system", "wandb_logging", "train",
    "inference", "reproduce", "bench", "acceptance",
]
SWEEP = [
    "sweep", "sweep.plan", "sweep.journal", "sweep.storage", "sweep.wandb_grid", "sweep.launch",
    "sweep.rundir", "sweep.trial", "sweep.worker", "sweep.status", "sweep.coordinator", "sweep.commands",
]
REPORT = [
    "report", "report.labels", "report.arms", "report.load", "report.table", "report.significance",
    "report.health", "report.buckets", "report.tables", "report.effects", "report.findings", "report.design",
    "report.effect_figures", "report.figures", "report.readme", "report.html", "report.archive",
    "report.dashboard", "report.workspace", "report.build",
]
# fmt: on
TOP = ["cli", "__main__"]
LAYERS = CORE + SWEEP + REPORT + TOP
# What no wing may reach, directly or through a core module: one run's machinery and the tokenizers.
ONE_RUN = {"model", "system", "data", "search", "text", "train", "evaluation", "inference"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def package_imports(name: str) -> set[str]:
    """Modules of this package that module `name` imports, anywhere in the file."""
    path = MODULES[name]
    package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
            if node.level > len(package) + 1:
                raise AssertionError(f"{name}: import above the package")
            target = [*base, *(node.module.split(".") if node.module else [])]
            for alias in node.names:
                full = ".".join([*target, alias.name])
                out.add(full if full in MODULES else ".".join(target) or "__init__")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("s2s_lightning"):
            target = node.module.split(".")[1:]
            for alias in node.names:
                full = ".".join([*target, alias.name])
                out.add(full if full in MODULES else ".".join(target) or "__init__")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("s2s_lightning."):
                    out.add(alias.name.split(".", 1)[1])
    if name == "cli":  # the command modules it imports by name when a command runs
        from s2s_lightning.cli import HANDLERS

        out |= {module for module, _ in HANDLERS.values()}
    return out


def closure(name: str) -> set[str]:
    seen, todo = set(), [name]
    while todo:
        for target in package_imports(todo.pop()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def wing(name: str) -> str | None:
    head = name.split(".")[0]
    return head if head in ("sweep", "report") else None


def test_every_module_is_placed_in_the_layers():
    assert sorted(MODULES) == sorted(LAYERS)


def test_imports_point_down():
    upward = [
        f"{name} -> {target}"
        for name in MODULES
        for target in package_imports(name)
        if LAYERS.index(target) >= LAYERS.index(name)
        or (wing(target) and wing(name) != wing(target) and name not in TOP and target != "sweep.storage")
    ]
    assert not upward


def test_the_core_imports_neither_wing():
    assert not [f"{n} -> {t}" for n in CORE for t in package_imports(n) if wing(t)]


@pytest.mark.parametrize("name", SWEEP + REPORT)
def test_a_wing_never_reaches_one_runs_machinery_or_the_tokenizers(name):
    assert not closure(name) & ONE_RUN


def test_report_reaches_sweep_only_through_its_storage_and_only_cli_imports_both():
    crossing = {t for n in REPORT for t in package_imports(n) if wing(t) == "sweep"}
    assert crossing <= {"sweep.storage"}
    both = [
        n for n in MODULES if not wing(n) and {wing(t) for t in package_imports(n)} >= {"sweep", "report"}
    ]
    assert both == ["cli"]


def test_every_module_opens_with_a_docstring():
    missing = [
        n for n, p in MODULES.items() if n != "__main__" and not ast.get_docstring(ast.parse(p.read_text()))
    ]
    assert not missing


def test_no_module_over_500_lines_and_no_function_over_60():
    long_modules = {n: len(p.read_text().splitlines()) for n, p in MODULES.items()}
    assert not {n: k for n, k in long_modules.items() if k > 500}
    long_functions = [
        f"{n}.{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for n, p in MODULES.items()
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > 60
    ]
    assert not long_functions


def test_the_readme_layout_table_names_every_module():
    """Each module appears, by its path, in the README's Layout section."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    layout = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`([\w/]+\.py)`", layout))
    paths = {str(p.relative_to(PACKAGE)) for p in MODULES.values()} - {"__main__.py"}
    assert paths - named == set()
