"""sweeps/slurm/sweep.sbatch, as shipped, on a real SLURM cluster (sweeps/slurm/local_cluster.sh: munged,
slurmctld and slurmd on this machine) against a real PostgreSQL study: a tiny study runs to completion,
its array tasks are requeued mid-trial (preemption), one task is then killed outright (a node lost), and
still every grid point x seed completes exactly once, and every resumed run equals the same run trained
without interruption. Skips, saying why, where SLURM or PostgreSQL cannot start here."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from s2s_lightning import metrics as M
from s2s_lightning.records import read_history
from s2s_lightning.sweep.storage import ARM, SEED
from tests.conftest import REPO

SCRIPT = REPO / "sweeps" / "slurm" / "sweep.sbatch"
CLUSTER = REPO / "sweeps" / "slurm" / "local_cluster.sh"
TIMING = {M.EPOCH_S, M.TRAIN_TOKENS_PER_S, M.VAL_DECODE_SHARE}
# 2 arms x 2 seeds of a small addition model: ~1 s an epoch on one CPU, so a requeue lands mid-trial.
ABLATION = {
    "description": "SLURM test: reversed vs forward source on two-digit addition",
    "base": {
        "data": {
            "name": "addition",
            "batch_size": 64,
            "addition": {"train_size": 3000, "val_size": 200, "test_size": 200, "max_operand": 99, "seed": 0},
        },
        "model": {"num_layers": 1, "embedding_dim": 16, "hidden_dim": 64},
        "train": {"max_epochs": 10, "lr": 0.01, "threads": 1},
    },
    "scientific": {"data.reverse_source": [False, True]},
    "fixed": {"tracking.wandb": "disabled", "train.progress_bar": False},
    "seeds": [0, 1],
    "objective": {"metric": "test/exact_match"},
}
STUDY = "slurmtest"


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """SLURM_CONF of a one-node cluster started for this module, stopped after it."""
    if not (shutil.which("slurmctld") or Path("/usr/sbin/slurmctld").exists()):
        pytest.skip(
            "SLURM is not installed (sweeps/slurm/local_cluster.sh start DIR installs slurm-wlm, munge)"
        )
    where = Path(tmp_path_factory.mktemp("slurm"))
    out = subprocess.run(["bash", CLUSTER, "start", where], capture_output=True, text=True, timeout=900)
    if out.returncode:
        pytest.skip(f"the local SLURM cluster did not start: {out.stderr.strip()[-300:]}")
    print(out.stdout.strip())
    try:
        yield where / "slurm.conf"
    finally:
        subprocess.run(["bash", CLUSTER, "stop", where], timeout=60)


def _slurm(conf: Path, *cmd: str) -> str:
    env = {**os.environ, "SLURM_CONF": str(conf)}
    out = subprocess.run(list(cmd), capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, f"{' '.join(cmd)}: {out.stderr}"
    return out.stdout


def _tasks(conf: Path, job: str) -> dict[str, str]:
    """Array task id -> job state, as slurmctld sees them."""
    text = _slurm(conf, "scontrol", "show", "job", job)
    return dict(re.findall(r"ArrayTaskId=(\d+).*?JobState=(\w+)", text, flags=re.S))


def _wait(what: str, check, timeout: float, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _trials(url: str) -> list:
    try:
        return optuna.load_study(study_name=STUDY, storage=url).get_trials(deepcopy=False)
    except KeyError:  # not created yet
        return []


def _running_with_epochs(url: str, epochs: int = 1) -> list:
    """RUNNING grid trials whose run has finished `epochs` epochs (a last checkpoint to resume from)."""
    out = []
    for t in _trials(url):
        run = t.user_attrs.get("run_dir")
        if t.state == TrialState.RUNNING and run and (Path(run) / "checkpoints" / "last.ckpt").is_file():
            history = Path(run) / "history.csv"
            if history.is_file() and len(read_history(history)) >= epochs:
                out.append(t)
    return out


def _task_trial(url: str, conf: Path, job: str):
    """A trial that array task 1 runs, past its first epoch (its worker's pid is one of the task's)."""
    found = re.search(r"JobId=(\d+)", _slurm(conf, "scontrol", "show", "job", f"{job}_1"))
    listed = subprocess.run(
        ["scontrol", "listpids", found.group(1)],
        capture_output=True,
        text=True,
        env={**os.environ, "SLURM_CONF": str(conf)},
        timeout=60,
    )
    pids = {int(line.split()[0]) for line in listed.stdout.splitlines()[1:] if line.split()}
    mine = [t for t in _running_with_epochs(url) if t.user_attrs.get("worker", {}).get("pid") in pids]
    return mine[0] if mine else None


def _outcome(run: Path) -> dict:
    record = json.loads((run / "record.json").read_text())
    history = [{k: v for k, v in r.items() if k not in TIMING} for r in read_history(run / "history.csv")]
    return {
        "status": record["status"],
        "history": history,
        "test": {k: v for k, v in record["metrics"].items() if k.startswith("test/")},
    }


@pytest.mark.integration
@pytest.mark.slow
def test_the_sbatch_file_survives_requeue_and_a_lost_node(slurm, postgres_url, tmp_path):
    started = time.monotonic()
    ablation, runs = tmp_path / f"{STUDY}.yaml", tmp_path / "runs"
    ablation.write_text(yaml.safe_dump(ABLATION))
    env = {
        "S2S_STORAGE": postgres_url,
        "ABLATION": str(ablation),
        "RUNS": str(runs),
        "DEVICES": "cpu",
        "WORKERS": "1",
        "WAIT_FOR_STUDY": "120",
        "S2S": f"{sys.executable} -m s2s_lightning",
        "PYTHONPATH": str(REPO),
    }
    job = _slurm(
        slurm,
        "sbatch",
        "--parsable",
        "--array=0-1",
        "--gres=none",  # the file asks for 4 GPUs; a CPU partition asks for none
        "--cpus-per-task=1",
        "--time=15",
        f"--chdir={tmp_path}",
        f"--output={tmp_path}/slurm-%A_%a.out",
        "--export=ALL," + ",".join(f"{k}={v}" for k, v in env.items()),
        str(SCRIPT),
    ).strip()
    logs = lambda: "\n".join(p.read_text() for p in sorted(tmp_path.glob("slurm-*.out")))  # noqa: E731
    try:
        # Preemption: both tasks requeued while each trains a trial past its first epoch.
        _wait("two trials past an epoch", lambda: len(_running_with_epochs(postgres_url)) == 2, 180)
        requeued = {(t.user_attrs[ARM], t.user_attrs[SEED]) for t in _running_with_epochs(postgres_url)}
        _slurm(slurm, "scontrol", "requeue", job)
        _wait("the requeued tasks to pend", lambda: set(_tasks(slurm, job).values()) == {"PENDING"}, 120)
        _slurm(slurm, "scontrol", "update", f"JobId={job}", "StartTime=now")  # else eligible ~120 s later
        # A lost node: task 1 killed outright (SIGKILL to the batch shell and everything in it).
        victim = _wait("a trial of task 1 past an epoch", lambda: _task_trial(postgres_url, slurm, job), 240)
        killed = time.monotonic()
        _slurm(slurm, "scancel", "--signal=KILL", "--full", f"{job}_1")
        _wait(
            "the lost trial to be retried",
            lambda: any(
                t.number > victim.number
                and t.user_attrs.get(ARM) == victim.user_attrs[ARM]
                and t.user_attrs.get(SEED) == victim.user_attrs[SEED]
                for t in _trials(postgres_url)
            ),
            120,
        )
        retried_after = time.monotonic() - killed
        _wait(
            "both tasks to end", lambda: not {"PENDING", "RUNNING"} & set(_tasks(slurm, job).values()), 300, 2
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{logs()[-4000:]}") from None
    finally:
        subprocess.run(["scancel", job], env={**os.environ, "SLURM_CONF": str(slurm)}, capture_output=True)
    states = _tasks(slurm, job)
    assert states["0"] == "COMPLETED", logs()[-4000:]

    # Every grid point x seed completed exactly once, each in its one run directory.
    trials = _trials(postgres_url)
    complete = sorted(
        (t.user_attrs[ARM], t.user_attrs[SEED]) for t in trials if t.state == TrialState.COMPLETE
    )
    assert len(complete) == 4 and len(set(complete)) == 4, complete
    run_dirs = sorted(p.parent for p in runs.glob(f"{STUDY}/*/seed*/record.json"))
    assert len(run_dirs) == 4, run_dirs
    resumed = [d for d in run_dirs if json.loads((d / "record.json").read_text()).get("resumed_from")]
    # The two requeued trials and the lost one were resumed (the lost one may be a requeued one too).
    assert len(resumed) >= 2, [t.user_attrs for t in trials]
    assert {
        (t.user_attrs[ARM], t.user_attrs[SEED]) for t in trials if t.user_attrs.get("interrupted")
    } >= requeued
    for d in run_dirs:
        assert [r["epoch"] for r in read_history(d / "history.csv")] == list(range(10)), d

    # Each resumed run equals the same config trained in one go.
    for d in resumed:
        fresh = tmp_path / "fresh" / d.parent.name / d.name
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "s2s_lightning",
                "train",
                "--config",
                d / "config.yaml",
                "--run-dir",
                fresh,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=REPO,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert _outcome(d) == _outcome(fresh), d

    # The report is built from the study.
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "s2s_lightning",
            "report",
            "--study",
            STUDY,
            "--storage",
            postgres_url,
            "-o",
            tmp_path / "report",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.returncode == 0 and (tmp_path / "report" / "README.md").is_file(), out.stderr[-2000:]
    took = time.monotonic() - started
    print(
        f"SLURM study: {len(trials)} trials for 4 grid points, {len(resumed)} resumed; the lost task's "
        f"trial retried {retried_after:.0f} s after the kill; {took:.0f} s in all"
    )
    assert "unknown" not in states.values()
