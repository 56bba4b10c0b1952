"""The `s2s` command line: what each command loads, and the top-level flags."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from s2s_lightning import __version__
from s2s_lightning.cli import main as s2s
from tests.conftest import TINY

HEAVY = {"pandas", "matplotlib", "seaborn", "optuna"}


def modules_after(argv: list[str], cwd) -> set[str]:
    """Top-level names of the modules loaded by running `s2s ARGV` in a fresh interpreter."""
    code = (
        "import json, sys\nfrom s2s_lightning.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["report", "--help"], ["sweep", "run", "--help"]])
def test_help_loads_no_heavy_library(argv, tmp_path):
    loaded = {m.split(".")[0] for m in modules_after(argv, tmp_path)}
    assert not loaded & (HEAVY | {"torch", "pytorch_lightning", "wandb"})


def test_training_loads_neither_reports_nor_sweeps(tmp_path):
    overrides = [f"{k}={v}" for k, v in TINY.items()]
    loaded = modules_after(["train", "--run-dir", str(tmp_path / "run"), *overrides], tmp_path)
    assert "s2s_lightning.train" in loaded and (tmp_path / "run" / "record.json").is_file()
    ours = {m for m in loaded if m.startswith("s2s_lightning.")}
    assert not {m for m in ours if m.split(".")[1].startswith(("report", "sweep", "studies", "ablation"))}
    # matplotlib is left out: torchmetrics, a Lightning dependency, imports it whenever it is installed.
    assert not {m.split(".")[0] for m in loaded} & (HEAVY - {"matplotlib"})


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        s2s(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out == f"s2s {__version__}\n"
