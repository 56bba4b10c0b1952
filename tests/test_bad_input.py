"""The bad-input matrix: each case is a one-line error naming the problem, a non-zero exit, no
traceback, and nothing recorded is lost or half-written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY

ARGS = [f"{k}={v}" for k, v in TINY.items()]


def s2s(*args, cwd=None):
    env = {k: v for k, v in os.environ.items() if k != "S2S_DEBUG"}
    return subprocess.run(
        [sys.executable, "-m", "s2s_lightning", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=env,
    )


def assert_one_line_error(out, *needles):
    assert out.returncode != 0, out.stdout
    lines = [
        line
        for line in out.stderr.splitlines()
        if line.strip() and not line.startswith(("wandb:", "WARNING"))
    ]
    errors = [line for line in lines if line.startswith("s2s: error:")]
    assert len(errors) == 1, out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    for needle in needles:
        assert needle in errors[0], errors[0]


def write_parallel(folder: Path, files: dict[str, bytes | list[str]]) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    base = {f"{s}.{lang}": ["a b c", "d e"] for s in ("train", "val", "test") for lang in ("en", "fr")}
    for name, content in {**base, **files}.items():
        data = content if isinstance(content, bytes) else "".join(x + "\n" for x in content).encode()
        (folder / name).write_bytes(data)
    return [
        "data.name=parallel",
        f"data.dir={folder}",
        "data.src_lang=en",
        "data.tgt_lang=fr",
        "data.test_split=test",
    ]


CONFIG_CASES = {
    "malformed YAML": ("model: [1, 2\n", [], ["malformed YAML", "line"]),
    "unknown key": ("", ["model.depth=4"], ["unknown config key 'model.depth'"]),
    "wrong type": ("model:\n  dropout: big\n", [], ["model.dropout"]),
    "zero layers": ("", ["model.num_layers=0"], ["model.num_layers"]),
    "ratio 1.5": ("", ["train.teacher_forcing_ratio=1.5"], ["train.teacher_forcing_ratio"]),
    "beam 0": ("", ["eval.beam_size=0"], ["eval.beam_size"]),
    "negative epochs": ("", ["train.max_epochs=-3"], ["train.max_epochs"]),
    "not a mapping": ("- a\n- b\n", [], ["must hold a mapping"]),
    "missing config file": (None, [], ["config file not found"]),
    # A second block of one key was merged silently: the first block's keys were dropped.
    "duplicate key": (
        "model:\n  hidden_dim: 16\n  num_layers: 2\ntrain:\n  max_epochs: 1\nmodel:\n  peeky: true\n",
        [],
        ["at line 6, column 1: duplicate key 'model' (lines 1 and 6)"],
    ),
    # =1 was 1.0 (the whole epoch), =1.5 failed only at train time; lr=inf was accepted and "diverged".
    "a fraction above 1": ("", ["train.limit_train_batches=1.5"], ["'train.limit_train_batches': takes"]),
    "infinite lr": ("", ["train.lr=inf"], ["'train.lr': Input should be a finite number"]),
}


@pytest.mark.integration
@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_config_errors(tmp_path, case):
    text, extra, needles = CONFIG_CASES[case]
    path = tmp_path / "c.yaml"
    if text is not None:
        path.write_text(text)
    out = s2s("train", "--config", path, "--run-dir", tmp_path / "run", *ARGS, *extra)
    assert_one_line_error(out, *needles)
    assert not (tmp_path / "run" / "record.json").exists()  # nothing started


DATA_CASES = {
    "missing data file": ({"val.fr": None}, ["missing data file", "val.fr"]),
    "line counts differ": ({"train.fr": ["x"]}, ["train.en has 2 lines but train.fr has 1"]),
    "only empty lines": ({"train.en": ["", ""], "train.fr": ["", ""]}, ["train split has no usable"]),
    "invalid UTF-8": ({"val.en": b"caf\xe9\nb\n"}, ["val.en is not valid UTF-8"]),
    "10,000-token sentence": ({"test.en": [" ".join(["w"] * 10_000), "b"]}, ["10000 tokens"]),
}


@pytest.mark.integration
@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_data_errors(tmp_path, case):
    files, needles = DATA_CASES[case]
    overrides = write_parallel(tmp_path / "data", {k: v for k, v in files.items() if v is not None})
    for name, content in files.items():
        if content is None:
            (tmp_path / "data" / name).unlink()
    out = s2s("train", "--run-dir", tmp_path / "run", *ARGS, *overrides)
    assert_one_line_error(out, *needles)
    assert not (tmp_path / "run" / "record.json").exists()


@pytest.mark.integration
def test_unwritable_run_dir(tmp_path):
    (tmp_path / "file").write_text("x")
    assert_one_line_error(s2s("train", "--run-dir", tmp_path / "file" / "run", *ARGS), "not writable")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("trained") / "run"
    out = s2s("train", "--run-dir", run, *ARGS)
    assert out.returncode == 0, out.stderr[-2000:]
    return run


def _copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.integration
def test_resume_with_another_config(trained_run, tmp_path):
    run = _copy_run(trained_run, tmp_path / "run")
    before = (run / "record.json").read_text()
    out = s2s("train", "--run-dir", run, "--resume", *ARGS, "model.hidden_dim=9")
    assert_one_line_error(out, "cannot resume", "another model.hidden_dim: 7 -> 9")
    assert (run / "record.json").read_text() == before  # the recorded run is untouched


@pytest.mark.integration
def test_corrupted_checkpoint_on_resume(trained_run, tmp_path):
    run = _copy_run(trained_run, tmp_path / "run")
    (run / "checkpoints" / "last.ckpt").write_bytes(b"\x00garbage")
    before = (run / "record.json").read_text()
    more = "train.max_epochs=2"  # a completed run resumed to train further (else there is nothing to do)
    assert_one_line_error(s2s("train", "--run-dir", run, "--resume", *ARGS, more), "corrupted")
    assert (run / "record.json").read_text() == before


@pytest.mark.integration
def test_resume_when_the_data_give_another_vocabulary(trained_run, tmp_path):
    # What a run written before data.addition.seed existed looks like after an upgrade: same config,
    # other questions, so other word frequencies and ids. Training on would scramble the weights.
    run = _copy_run(trained_run, tmp_path / "run")
    vocab = json.loads((run / "vocab.json").read_text())
    vocab["src"][4], vocab["src"][5] = vocab["src"][5], vocab["src"][4]
    (run / "vocab.json").write_text(json.dumps(vocab))
    before = {f: (run / f).read_text() for f in ("record.json", "vocab.json", "config.yaml")}
    out = s2s("train", "--run-dir", run, "--resume", *ARGS, "train.max_epochs=2")
    assert_one_line_error(out, "another source vocabulary", f"id 4 is {vocab['src'][4]!r}")
    assert {f: (run / f).read_text() for f in before} == before


@pytest.mark.integration
def test_existing_run_without_resume(trained_run):
    before = json.loads((trained_run / "record.json").read_text())
    assert_one_line_error(s2s("train", "--run-dir", trained_run, *ARGS), "already holds a run")
    assert json.loads((trained_run / "record.json").read_text()) == before


@pytest.mark.integration
def test_evaluate_with_a_checkpoint_from_another_config(trained_run, tmp_path):
    run = _copy_run(trained_run, tmp_path / "run")
    cfg = (run / "config.yaml").read_text().replace("hidden_dim: 7", "hidden_dim: 9")
    (run / "config.yaml").write_text(cfg)
    assert_one_line_error(s2s("evaluate", run), "does not match", "shape")


@pytest.mark.integration
def test_evaluate_with_a_corrupted_checkpoint(trained_run, tmp_path):
    run = _copy_run(trained_run, tmp_path / "run")
    data = (run / "checkpoints" / "best.ckpt").read_bytes()
    (run / "checkpoints" / "best.ckpt").write_bytes(data[: len(data) // 2])  # truncated mid-write
    assert_one_line_error(s2s("evaluate", run), "best.ckpt", "corrupted")


@pytest.mark.integration
def test_objective_metric_never_logged(tmp_path):
    path = tmp_path / "abl.yaml"
    path.write_text(
        "base: {data: {name: addition}}\nscientific: {model.peeky: [false, true]}\nobjective: "
        "{metric: test/bleu}\n"
    )
    assert_one_line_error(s2s("sweep", "run", path, "--runs-dir", tmp_path / "runs"), "test/bleu")
    assert not (tmp_path / "runs").exists()


class _RunsCode:
    """A pickle that runs a shell command when loaded without weights_only."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path):
    import torch

    from s2s_lightning.checkpoint import load_state_dict
    from s2s_lightning.errors import S2SError

    path, marker = tmp_path / "evil.ckpt", tmp_path / "code-ran"
    torch.save({"state_dict": {"model.x": _RunsCode(marker)}}, path)
    with pytest.raises(
        S2SError,
        match=r"evil.ckpt is corrupted or not a PyTorch checkpoint \(the weights-only "
        r"loader refused it: .*system",
    ) as err:
        load_state_dict(path)
    assert not marker.exists() and "weights_only" not in str(err.value)  # no advice to load it unsafely


@pytest.mark.integration
def test_error_messages_are_never_cut_off(trained_run, tmp_path):
    """The reason a checkpoint is refused, and a failed trial's error, reach the user whole: they used
    to be cut at 160, 120, 200 or 500 characters, mid-word ("...If yo)")."""
    import argparse

    import torch

    from s2s_lightning.sweep.trial import ATTR_LIMIT, bounded

    run = _copy_run(trained_run, tmp_path / "run")
    state = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    state["hparams"] = argparse.Namespace(lr=1.0)  # a class the weights-only loader refuses
    torch.save(state, run / "checkpoints" / "best.ckpt")
    out = s2s("evaluate", run)
    assert_one_line_error(out, "best.ckpt", "weights-only loader refused it")
    error = next(line for line in out.stderr.splitlines() if line.startswith("s2s: error:"))
    assert "argparse.Namespace" in error and "if you trust this class/function" in error, error
    text = "A sentence that is long. " * 200
    assert bounded("short reason") == "short reason"
    cut = bounded(text)
    assert len(cut) <= ATTR_LIMIT and cut.endswith("(the rest is in the run's train.log)")
    assert cut.removesuffix(" (the rest is in the run's train.log)").endswith("long.")


def test_run_records_are_readable_by_colleagues_under_a_shared_umask(tmp_path):
    """Records were written owner-only (0600) whatever the umask: a study on a shared machine could
    not be read by the group. They follow the umask, like the checkpoints."""
    from s2s_lightning.records import write_json, write_yaml

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "record.json", {"a": 1})
        write_yaml(tmp_path / "config.yaml", {"a": 1})
        os.umask(0o077)
        write_json(tmp_path / "private.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "record.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "config.yaml").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "private.json").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    "override, message",
    [
        ("eval.length_buckets=[5,3]", "eval.length_buckets must be at least two increasing bucket edges"),
        ("eval.frequency_buckets=[0]", "eval.frequency_buckets must be at least two increasing bucket edges"),
    ],
)
def test_bucket_edges_that_do_not_increase_are_refused(override, message):
    """[5, 3] used to train and then write an empty by-length analysis."""
    from s2s_lightning.config import load_config
    from s2s_lightning.errors import S2SError

    with pytest.raises(S2SError, match=message):
        load_config(None, [override])


@pytest.mark.integration
def test_dashboard_refuses_a_runs_dir_without_a_study_and_a_busy_or_impossible_port(tmp_path):
    """It used to create an empty journal in a mistyped --runs-dir and serve it, and to announce its
    address before failing on a busy port with a generic OSError."""
    import socket

    typo = tmp_path / "TYPO"
    assert_one_line_error(s2s("dashboard", "--runs-dir", typo), "does not exist", "no sweep has run")
    assert not typo.exists()
    assert_one_line_error(s2s("dashboard", "--port", 99999), "--port 99999 is not a TCP port")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = s2s("dashboard", "--port", port, "--runs-dir", typo)
    assert_one_line_error(out, f"--port {port}", "not free")
    assert "http://" not in out.stdout


def test_no_message_interpolates_a_cut_value():
    """Every f-string in the package that shows a value shows it whole: a `{text[:120]}` cut error messages
    mid-word ("...If yo)"). The exceptions: a column of the bench's table, cut to its width, and a commit's
    short hash, as git prints it."""
    import ast

    from tests.conftest import REPO

    cut = []
    for path in sorted((REPO / "s2s_lightning").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            value = node.value if isinstance(node, ast.FormattedValue) else None
            if isinstance(value, ast.Subscript) and isinstance(value.slice, ast.Slice):
                upper = value.slice.upper
                if (
                    value.slice.lower is None
                    and isinstance(upper, ast.Constant)
                    and isinstance(upper.value, int)
                ):
                    cut.append(f"{path.name} {ast.unparse(value)}")
    assert [c for c in cut if not c.endswith("commit[:12]")] == ["bench.py r['op'][:44]"]


@pytest.mark.integration
def test_a_refusal_is_one_line_on_a_machine_with_slurm_installed(tmp_path):
    """Where SLURM's srun is installed (any cluster node; CI installs it), Lightning warned on every run
    that srun was not used, so a refusal printed that warning above its one line. Runs start their own
    ranks on purpose (train.make_trainer): the warning is silenced."""
    srun = tmp_path / "bin" / "srun"
    srun.parent.mkdir()
    srun.write_text("#!/bin/sh\nexit 0\n")
    srun.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "S2S_DEBUG"}
    env["PATH"] = f"{srun.parent}{os.pathsep}{env['PATH']}"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "s2s_lightning",
            "train",
            "train.accelerator=gpu",
            "--run-dir",
            tmp_path / "r",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith("s2s: error: train.accelerator=gpu")
