"""The package's import graph: every import points down the layer order below (no cycle, no upward
edge), and each module opens with a docstring. Function-local imports count as edges too."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "s2s_lightning"

# Lowest first; a module may import only modules before it. Mirrors the README's Layout table.
LAYERS = [
    "__init__", "errors", "metrics", "config", "text", "records", "data", "model", "search", "analysis",
    "evaluation", "checkpoint", "system", "wandb_logging", "train", "inference",
    "ablation", "studies", "wandb_sweep", "sweep_worker", "sweep",
    "report_labels", "report_data", "report_tables", "report_figures", "report",
    "bench_search", "bench_train", "bench", "acceptance", "cli", "__main__",
]  # fmt: skip


def package_imports(path: Path) -> set[str]:
    """Modules of this package that `path` imports, anywhere in the file."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                out.add(node.module.split(".")[0])
            else:  # `from . import metrics as M`, `from . import __version__`
                out.update(a.name if (PACKAGE / f"{a.name}.py").is_file() else "__init__" for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("s2s_lightning"):
            out.add((node.module.split(".") + ["__init__"])[1])
    return out


def test_every_module_is_placed_in_the_layers():
    assert sorted(p.stem for p in PACKAGE.glob("*.py")) == sorted(LAYERS)


def test_imports_point_down():
    upward = [
        f"{path.stem} -> {target}"
        for path in PACKAGE.glob("*.py")
        for target in package_imports(path)
        if LAYERS.index(target) >= LAYERS.index(path.stem)
    ]
    assert not upward


def test_every_module_opens_with_a_docstring():
    missing = [
        p.stem for p in PACKAGE.glob("*.py") if p.stem != "__main__" and not ast.get_docstring(ast.parse(p.read_text()))
    ]
    assert not missing
