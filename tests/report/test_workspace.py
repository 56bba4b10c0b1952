"""The study's W&B workspace, built offline: it serialises to JSON and reads back to the same view, two
builds differ only in W&B's random panel ids, and every key it groups runs by is a path into the config
a real offline run logged (W&B reads `data.reverse_source` as `data.value.reverse_source`)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from s2s_lightning.report.load import RunsSource, load
from tests.conftest import TINY

pytest.importorskip("wandb_workspaces", reason="pip install -e '.[dashboard]'")
from s2s_lightning.report.workspace import build_workspace, from_json, to_json

TRANSLATION = Path(__file__).parents[1] / "fixtures" / "records" / "translation"


def _strip_ids(node):
    if isinstance(node, dict):
        return {k: _strip_ids(v) for k, v in node.items() if k != "__id__"}
    if isinstance(node, list):
        return [_strip_ids(v) for v in node]
    return node


def _values(node, key):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield v
            yield from _values(v, key)
    elif isinstance(node, list):
        for v in node:
            yield from _values(v, key)


def test_the_workspace_serialises_offline_and_reads_back():
    data = load(RunsSource((TRANSLATION,)))
    text = to_json(build_workspace(data, "paper_multi30k", "me", "s2s"))
    again = to_json(build_workspace(data, "paper_multi30k", "me", "s2s"))
    assert _strip_ids(json.loads(text)) == _strip_ids(json.loads(again))
    assert json.loads(to_json(from_json(text))) == json.loads(text)
    spec = json.loads(text)
    assert spec["displayName"] == "s2s study paper_multi30k" and spec["entity"] == "me"
    filters = list(_values(spec, "filters"))
    assert {"key": {"section": "run", "name": "group"}, "op": "=", "value": "paper_multi30k"} in [
        {k: f[k] for k in ("key", "op", "value")}
        for group in filters
        if isinstance(group, list)
        for f in group
    ]
    assert set(_values(spec, "groupBy")) == {"data.value.reverse_source"}
    assert {"Validation perplexity", "Validation BLEU"} <= set(_values(spec, "chartTitle"))


@pytest.mark.integration
def test_its_grouping_keys_are_in_a_real_offline_runs_config(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_MODE", "WANDB_API_KEY")}
    args = [
        f"{k}={v}" for k, v in {**TINY, "tracking.wandb": "offline", "data.reverse_source": "true"}.items()
    ]
    out = subprocess.run(
        [sys.executable, "-m", "s2s_lightning", "train", "--run-dir", str(tmp_path / "run"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (log,) = (tmp_path / "run").glob("wandb/offline-run-*/run-*.wandb")
    wandb_bin = Path(sys.executable).parent / "wandb"
    records = subprocess.run(
        [wandb_bin, "leet", "inspect", "--json", log], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    run = next(json.loads(line)["run"] for line in records.splitlines() if '"type":"run"' in line)
    logged = run["config"]["update"]  # W&B keeps each top-level key as {"value": ...}: the paths' ".value."
    data = load(RunsSource((TRANSLATION,)))
    spec = json.loads(to_json(build_workspace(data, "s", "me", "s2s")))
    keys = set(_values(spec, "groupBy"))
    assert keys
    for key in keys:
        top, wrapper, *rest = key.split(".")
        assert wrapper == "value" and top in logged, key
        node = logged[top]
        for part in rest:
            assert isinstance(node, dict) and part in node, (key, part)
            node = node[part]
        assert node is True, key
