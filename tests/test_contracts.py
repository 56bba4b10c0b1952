"""The contracts that cross a process boundary are declared once and read through their names.

`record.json` (RunRecord, RunKey) and an evaluation's `metrics.json` (EvalRecord, EvalKey, EvalInputs,
InputKey) are owned by `records.py`; Optuna trial and study attributes by `sweep/storage.py`. Elsewhere in
the package none of their keys is written as a string literal where a record or a trial is read or
written, so renaming a key is one edit and the type checker (`make lint`) sees every use. Tests keep
literals on purpose: they pin the format that other tools (W&B, optuna-dashboard, a reader's script) read.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import get_type_hints

import pytest

from s2s_lightning import records
from s2s_lightning.sweep import storage

PACKAGE = Path(__file__).resolve().parents[1] / "s2s_lightning"
RECORD_OWNER = PACKAGE / "records.py"
ATTRIBUTE_OWNER = PACKAGE / "sweep" / "storage.py"
# Calls that write a trial or study attribute: the key is their first argument, or the second after a
# trial id (storage.set_trial_user_attr(trial_id, key, value)).
ATTRIBUTE_WRITERS = {
    "set_user_attr": 0,
    "set_system_attr": 0,
    "set_trial_user_attr": 1,
    "set_trial_system_attr": 1,
}
ATTRIBUTE_MAPS = {"user_attrs", "system_attrs"}
RECORD_READERS = {"read_record", "read_eval"}


def _names(namespace: type) -> dict[str, str]:
    return {k: v for k, v in vars(namespace).items() if k.isupper()}


@pytest.mark.parametrize(
    ("namespace", "typed"),
    [
        (records.RunKey, records.RunRecord),
        (records.EvalKey, records.EvalRecord),
        (records.InputKey, records.EvalInputs),
    ],
)
def test_key_names_are_the_typed_records_fields(namespace, typed):
    names = _names(namespace)
    assert sorted(names.values()) == sorted(get_type_hints(typed))
    assert all(name == value.upper() for name, value in names.items())


def test_trial_attributes_are_distinct_and_declared():
    assert len(set(storage.TRIAL_ATTRIBUTES)) == len(storage.TRIAL_ATTRIBUTES)
    declared = {v for k, v in vars(storage).items() if k.isupper() and isinstance(v, str)}
    assert set(storage.TRIAL_ATTRIBUTES) <= declared


def _key_of(node: ast.AST) -> ast.AST | None:
    """The key expression of `x[KEY]` or `x.get(KEY, ...)`, else None."""
    if isinstance(node, ast.Subscript):
        return node.slice
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
        return node.args[0] if node.args else None
    return None


def _container(node: ast.AST) -> ast.AST:
    return node.value if isinstance(node, ast.Subscript) else node.func.value  # type: ignore[attr-defined]


def _is_record(expr: ast.AST) -> bool:
    """A record by its name (`record`, `run.record`, `old_record`) or by the reader that returned it."""
    if isinstance(expr, ast.Name):
        return "record" in expr.id
    if isinstance(expr, ast.Attribute):
        return "record" in expr.attr
    if isinstance(expr, ast.Call):
        func = expr.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        return name in RECORD_READERS
    return False


def _literal(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def literal_uses(path: Path, record_keys: set[str], attributes: set[str]) -> list[str]:
    """`path:line: key` for each record key or trial attribute written as a literal where a record or
    a trial's attributes are read or written."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        key: str | None = None
        if (access := _key_of(node)) is not None:
            container, literal = _container(node), _literal(access)
            if path != RECORD_OWNER and _is_record(container) and literal in record_keys:
                key = literal
            is_attrs = isinstance(container, ast.Attribute) and container.attr in ATTRIBUTE_MAPS
            if path != ATTRIBUTE_OWNER and is_attrs and literal is not None:
                key = literal
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and path != ATTRIBUTE_OWNER:
            position = ATTRIBUTE_WRITERS.get(node.func.attr)
            if position is not None and len(node.args) > position:
                key = _literal(node.args[position])
        if key is not None:
            found.append((node.lineno, key))  # type: ignore[attr-defined]
    return [f"{path.name}:{line}: {key!r}" for line, key in sorted(found)]


def test_no_record_key_or_trial_attribute_is_a_literal_outside_its_owner():
    record_keys = {*_names(records.RunKey).values(), *_names(records.EvalKey).values()}
    attributes = set(storage.TRIAL_ATTRIBUTES)
    found = [
        f"{p.parent.name}/{use}"
        for p in sorted(PACKAGE.rglob("*.py"))
        for use in literal_uses(p, record_keys, attributes)
    ]
    assert not found, "use the declared names (records.RunKey / EvalKey, sweep.storage):\n" + "\n".join(found)


def test_the_scan_sees_each_kind_of_literal(tmp_path):
    """The scan itself: each form it forbids is found, and the declared names pass."""
    source = tmp_path / "s2s_lightning" / "mod.py"
    source.parent.mkdir()
    source.write_text(
        "def f(record, trial, storage, run):\n"
        "    a = record.get('status')\n"
        "    b = run.record['metrics']\n"
        "    c = read_record(d)['wall_time_s']\n"
        "    trial.set_user_attr('run_dir', 1)\n"
        "    storage.set_trial_user_attr(1, 'error', 'x')\n"
        "    e = trial.user_attrs.get('arm')\n"
        "    ok = record.get(RunKey.STATUS), trial.user_attrs[ARM], rows['status']\n"
    )
    found = literal_uses(source, {"status", "metrics", "wall_time_s"}, {"run_dir", "error", "arm"})
    assert [f.split(": ", 1)[1] for f in found] == [
        "'status'",
        "'metrics'",
        "'wall_time_s'",
        "'run_dir'",
        "'error'",
        "'arm'",
    ]
