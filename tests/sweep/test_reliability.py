"""Faults with the real `s2s` processes: kill -9 and resume, diverging trials, secrets never recorded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from s2s_lightning import metrics as M
from s2s_lightning.records import read_history
from s2s_lightning.sweep.storage import open_storage

SECRET = "hunter2-SECRET-0042"


def ablation(tmp_path: Path, scientific: dict, epochs: int = 1, train_size: int = 300, **fixed) -> Path:
    spec = {
        "base": {
            "data": {
                "name": "addition",
                "batch_size": 32,
                "addition": {"train_size": train_size, "val_size": 40, "test_size": 40},
            },
            "model": {"embedding_dim": 8, "hidden_dim": 8},
            "train": {"max_epochs": epochs, "progress_bar": False},
        },
        "scientific": scientific,
        "fixed": {"tracking.wandb": "disabled", **fixed},
        "seeds": [0],
        "objective": {"metric": "test/exact_match"},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def sweep(*args, cwd: Path, **kwargs) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "S2S_DEBUG"}
    return subprocess.Popen(
        [sys.executable, "-m", "s2s_lightning", "sweep", *map(str, args)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def trials(tmp_path: Path, study: str = "tiny") -> list[optuna.trial.FrozenTrial]:
    storage = open_storage(None, tmp_path / "runs")
    return optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)


@pytest.mark.integration
def test_kill_9_midway_then_rerun_completes_each_point_once(tmp_path):
    # W&B offline as in the main job: the resumed run must not trip over the killed run's W&B files.
    path = ablation(
        tmp_path,
        {"data.reverse_source": [False, True]},
        epochs=4,
        train_size=3000,
        **{"tracking.wandb": "offline"},
    )
    proc = sweep(
        "run", path, "--runs-dir", tmp_path / "runs", "--workers", "1", cwd=tmp_path, start_new_session=True
    )
    deadline = time.time() + 240
    # An epoch is done and checkpointed: history.csv is written at the epoch's end, just before
    # Lightning saves last.ckpt, so wait for both (under load the gap between them is real).
    runs = tmp_path / "runs"
    histories = lambda: [  # noqa: E731
        h for h in runs.glob("tiny/*/seed0/history.csv") if (h.parent / "checkpoints" / "last.ckpt").is_file()
    ]
    while not histories() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert histories(), "no epoch finished before the deadline"
    os.killpg(proc.pid, signal.SIGKILL)  # the whole node dies: coordinator, worker and trial
    proc.wait(timeout=30)
    interrupted = histories()[0].parent
    record = json.loads((interrupted / "record.json").read_text())
    assert record["status"] == "running"  # killed mid-run: the record says so, it is not half-written

    again = sweep("run", path, "--runs-dir", tmp_path / "runs", "--workers", "1", cwd=tmp_path)
    out = again.communicate(timeout=300)[0]
    assert again.returncode == 0, out[-3000:]
    done = [t for t in trials(tmp_path) if t.state == optuna.trial.TrialState.COMPLETE]
    points = sorted((t.params["data.reverse_source"], t.params["seed"]) for t in done)
    assert points == [(False, 0), (True, 0)]  # every grid point x seed exactly once
    record = json.loads((interrupted / "record.json").read_text())
    assert record["status"] == "completed" and record.get("resumed_from", "").endswith("last.ckpt")
    assert record["wandb"]["mode"] == "offline" and list(interrupted.glob("wandb/offline-run-*/run-*.wandb"))
    epochs = [line.split(",")[0] for line in (interrupted / "history.csv").read_text().splitlines()[1:]]
    assert epochs == ["0", "1", "2", "3"]
    # The resumed run is the run it continues: an uninterrupted twin (same config, same threads) computes
    # the same history and test metrics.
    twin = tmp_path / "twin"
    threads = f"train.threads={record['numerics']['threads']}"
    args = [
        "train",
        "--config",
        interrupted / "config.yaml",
        "--run-dir",
        twin,
        threads,
        "tracking.wandb=disabled",
    ]
    out = subprocess.run(
        [sys.executable, "-m", "s2s_lightning", *map(str, args)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert _computed(twin) == _computed(interrupted)

    third = sweep("run", path, "--runs-dir", tmp_path / "runs", "--workers", "1", cwd=tmp_path)
    out = third.communicate(timeout=120)[0]
    assert third.returncode == 0 and "started" not in out  # nothing left to do
    assert len([t for t in trials(tmp_path) if t.state == optuna.trial.TrialState.COMPLETE]) == 2


def _computed(run_dir: Path) -> tuple[list[dict], dict]:
    """A run's history without its timings, and its test metrics."""
    timing = {M.EPOCH_S, M.TRAIN_TOKENS_PER_S, M.VAL_DECODE_SHARE}
    history = [
        {k: v for k, v in row.items() if k not in timing} for row in read_history(run_dir / "history.csv")
    ]
    metrics = json.loads((run_dir / "record.json").read_text())["metrics"]
    return history, {k: v for k, v in metrics.items() if k.startswith("test/")}


def _train_pids(run_dir: Path) -> list[int]:
    """PIDs of `s2s train` processes writing into run_dir (Linux /proc)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"train" in argv and str(run_dir).encode() in argv:
            pids.append(int(cmdline.parent.name))
    return pids


@pytest.mark.integration
@pytest.mark.skipif(not Path("/proc/self/cmdline").is_file(), reason="needs Linux /proc")
def test_kill_9_of_one_trial_is_resumed_from_its_checkpoint_and_the_sweep_goes_on(tmp_path):
    path = ablation(tmp_path, {"data.reverse_source": [False, True]}, epochs=4, train_size=3000)
    proc = sweep("run", path, "--runs-dir", tmp_path / "runs", "--workers", "1", cwd=tmp_path)
    first = tmp_path / "runs" / "tiny" / "L1-fwd-plain-tf1" / "seed0"
    deadline = time.time() + 240
    while (
        not (first / "checkpoints" / "last.ckpt").is_file() and time.time() < deadline and proc.poll() is None
    ):
        time.sleep(0.2)
    pids = _train_pids(first)
    assert len(pids) == 1, "the first trial's `s2s train` is not running"
    os.kill(pids[0], signal.SIGKILL)  # the trial dies mid-run; its worker lives on
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out[-3000:]
    assert "L1-fwd-plain-tf1-seed0: FAILED (s2s train was killed by SIGKILL)" in out
    assert "L1-fwd-plain-tf1-seed0: resumed" in out  # the sweep itself retries it, from its checkpoint
    states = sorted((t.params["data.reverse_source"], t.state.name) for t in trials(tmp_path))
    assert states == [(False, "COMPLETE"), (False, "FAIL"), (True, "COMPLETE")]
    record = json.loads((first / "record.json").read_text())
    assert record["status"] == "completed" and record.get("resumed_from", "").endswith("last.ckpt")
    epochs = [line.split(",")[0] for line in (first / "history.csv").read_text().splitlines()[1:]]
    assert epochs == ["0", "1", "2", "3"]

    again = sweep("run", path, "--runs-dir", tmp_path / "runs", "--workers", "1", cwd=tmp_path)
    out = again.communicate(timeout=120)[0]
    assert again.returncode == 0 and "started" not in out and "resumed" not in out, out  # nothing left


@pytest.mark.integration
def test_a_diverging_trial_fails_with_its_reason_and_the_sweep_goes_on(tmp_path):
    path = ablation(
        tmp_path, {"train.lr": [0.001, 1.0e38]}, **{"train.optimizer": "sgd", "train.grad_clip": None}
    )
    proc = sweep("run", path, "--runs-dir", tmp_path / "runs", "--workers", "1", cwd=tmp_path)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 1, out[-3000:]  # not every point is done
    by_lr = {}
    for t in trials(tmp_path):
        by_lr.setdefault(t.params["train.lr"], []).append(t)
    assert [t.state for t in by_lr[0.001]] == [optuna.trial.TrialState.COMPLETE]
    failed = by_lr[1.0e38]
    assert failed and all(t.state == optuna.trial.TrialState.FAIL for t in failed)
    assert "diverged" in failed[-1].user_attrs["error"]
    run_dir = Path(failed[-1].user_attrs["run_dir"])
    run_dir = run_dir if run_dir.is_absolute() else tmp_path / run_dir
    records = [json.loads(p.read_text()) for p in run_dir.parent.rglob("record.json")]
    assert records and all(r["status"] == "failed" and "diverged" in r["error"] for r in records)


@pytest.mark.integration
def test_secrets_never_reach_records_logs_or_wandb(tmp_path):
    env = {**os.environ, "WANDB_API_KEY": SECRET, "WANDB_MODE": "offline"}
    env.pop("S2S_DEBUG", None)
    run = tmp_path / "run"
    tiny = ["data.addition.train_size=200", "data.addition.val_size=20", "data.addition.test_size=20"]
    tiny += ["model.hidden_dim=8", "train.max_epochs=1", "train.progress_bar=false"]
    out = subprocess.run(
        [sys.executable, "-m", "s2s_lightning", "train", "--run-dir", str(run), *tiny],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert list(run.glob("wandb/offline-run-*/run-*.wandb"))
    for path in run.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in out.stdout + out.stderr

    url = f"postgresql://ablator:{SECRET}@127.0.0.1:9/studies"
    path = ablation(tmp_path, {"data.reverse_source": [False]})
    for args in (
        ["sweep", "run", path, "--storage", url],
        ["sweep", "status", path, "--storage", url],
        ["report", "--study", "tiny", "--storage", url, "-o", tmp_path / "report"],
    ):
        res = subprocess.run(
            [sys.executable, "-m", "s2s_lightning", *map(str, args)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=tmp_path,
        )
        assert res.returncode != 0 and "s2s: error:" in res.stderr, res.stderr[-2000:]
        assert SECRET not in res.stdout + res.stderr and "Traceback" not in res.stderr


@pytest.mark.integration
def test_sigterm_stops_a_sweep_with_143_and_status_says_interrupted(tmp_path):
    """SIGTERM to `sweep run` exited 130 (SIGINT's code), and `sweep status` listed its trials as failed."""
    path = ablation(tmp_path, {"data.reverse_source": [False]}, epochs=400)
    proc = sweep("run", path, "--runs-dir", tmp_path / "runs", "--workers", "1", cwd=tmp_path)
    history = tmp_path / "runs" / "tiny" / "L1-fwd-plain-tf1" / "seed0" / "history.csv"
    deadline = time.time() + 240
    while not history.is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert history.is_file(), "the trial never finished an epoch"
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 143, out[-3000:]
    assert "s2s: sweep interrupted" in out
    status = subprocess.run(
        [
            sys.executable,
            "-m",
            "s2s_lightning",
            "sweep",
            "status",
            str(path),
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert status.returncode == 0, status.stderr
    assert "L1-fwd-plain-tf1  interrupted" in status.stdout and "1 interrupted" in status.stdout, (
        status.stdout
    )
