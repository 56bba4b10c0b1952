"""The `s2s` command line: what each command loads, and the top-level flags."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from s2s_lightning import __version__
from s2s_lightning.cli import main as s2s
from tests.conftest import REPO, TINY

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


@pytest.mark.integration
@pytest.mark.parametrize(
    "argv", [["--help"], ["train", "--help"], ["report", "--help"], ["sweep", "run", "--help"]]
)
def test_help_loads_no_heavy_library(argv, tmp_path):
    loaded = {m.split(".")[0] for m in modules_after(argv, tmp_path)}
    assert not loaded & (HEAVY | {"torch", "pytorch_lightning", "wandb"})


@pytest.mark.integration
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


def test_config_prints_every_key_with_a_description_and_reads_back(tmp_path, capsys):
    from s2s_lightning.config import Config, build_config, flatten, load_config

    assert s2s(["config", "model.num_layers=4", "tracking.tags=[a, b]"]) == 0
    text = capsys.readouterr().out
    (tmp_path / "c.yaml").write_text(text)
    assert load_config(tmp_path / "c.yaml") == build_config(
        {}, ["model.num_layers=4", "tracking.tags=[a, b]"]
    )
    leaves = [line for line in text.splitlines() if not line.split("#")[0].rstrip().endswith(":")]
    assert len(leaves) == len(flatten(Config().to_dict()))  # every key, once
    assert all(" # " in line for line in text.splitlines())  # each with its description


def test_sweep_dry_run_lists_every_run_and_starts_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert (
        s2s(["sweep", "run", str(REPO / "ablations" / "addition.yaml"), "--budget", "quick", "--dry-run"])
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "study addition-quick: 8 arms x 2 seeds = 16 runs (nothing started)"
    assert len(lines) == 17 and all(
        line.startswith("s2s train --run-dir runs/addition-quick/") for line in lines[1:]
    )
    assert "runs/addition-quick/L1-rev-peeky-tf0.5/seed1" in lines[-1] and list(tmp_path.iterdir()) == []


def readme_commands() -> list[str]:
    """Every `s2s ...` command line in the README's code blocks (continuations joined, comments cut)."""
    import re

    text = (REPO / "README.md").read_text()
    out = []
    for block in re.findall(r"```(?:bash|sh)\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            line = re.sub(r"^[A-Z0-9_]+=\S+\s+", "", line)  # S2S_MULTI30K_DIR=... s2s ...
            if line.startswith("s2s "):
                out.append(line)
    return out


def test_every_s2s_command_in_the_readme_parses():
    """The README stays true: each command it shows names real subcommands and flags."""
    import shlex

    from s2s_lightning.cli import build_parser

    commands = readme_commands()
    assert len(commands) >= 25 and any("--gpus-per-trial" in c for c in commands)
    parser = build_parser()
    for command in commands:
        argv = shlex.split(command.split("|")[0])[1:]
        if argv in (["--version"], ["--help"]):
            continue
        try:
            parser.parse_args(argv)
        except SystemExit as exc:
            raise AssertionError(f"README command does not parse: {command}") from exc


def test_the_readme_lists_the_keys_a_resume_may_change_as_the_code_does():
    """The README said a resume takes only train.max_epochs and train.early_stopping_patience; the
    refusal message (and the code) allow the device keys too, for a requeued job."""
    import re

    from s2s_lightning.config import RESUMABLE_KEYS

    readme = " ".join((REPO / "README.md").read_text().split())
    listed = re.search(r"the only overrides it accepts are (.*?) \(a requeued", readme).group(1)
    assert re.findall(r"`(train\.\w+)`", listed) == list(RESUMABLE_KEYS)


def test_the_readme_states_no_test_counts():
    """Counts the README gave drifted with every commit (it said 372 / 289 when there were 379 / 296)."""
    import re

    readme = (REPO / "README.md").read_text()
    assert not re.findall(r"\b\d+ tests\b", readme)


def test_every_command_has_a_handler_that_exists():
    """Each subcommand runs through HANDLERS (or is `config`, which needs no heavy module), and each
    handler names a function of a module that imports."""
    import importlib

    from s2s_lightning import cli

    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command, parser in sub.choices.items():
        func = parser.get_default("func")
        assert func is cli.run_handler and command in cli.HANDLERS or command == "config", command
    for module, function in cli.HANDLERS.values():
        assert callable(getattr(importlib.import_module(f"s2s_lightning.{module}"), function))
