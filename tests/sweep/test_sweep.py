"""Sweeps: Optuna studies run by worker processes, W&B sweep configs, exactly-once execution.

Most tests run the real coordinator and workers against a stand-in for `s2s train` (same arguments,
same run-directory files, no torch), so they take seconds; one runs the real `s2s train`.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from s2s_lightning.cli import build_parser
from s2s_lightning.config import arm_name, build_config
from s2s_lightning.errors import S2SError
from s2s_lightning.report.health import health_table
from s2s_lightning.report.load import StudySource, load, load_study
from s2s_lightning.sweep import coordinator, status
from s2s_lightning.sweep.commands import interrupted_line
from s2s_lightning.sweep.coordinator import join_sweep, run_sweep
from s2s_lightning.sweep.launch import SweepLaunch, parse_gpus
from s2s_lightning.sweep.plan import SEED, expand, format_overrides, load_ablation
from s2s_lightning.sweep.status import sweep_status
from s2s_lightning.sweep.storage import (
    ARM,
    KIND,
    TUNE,
    WORKER,
    claim,
    open_storage,
    open_studies,
    reconcile,
    redact,
    tuning_study_name,
)
from s2s_lightning.sweep.wandb_grid import render_sweep, sweep_config

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "ablations").glob("*.yaml"))

FAKE_TRAIN = r'''
"""Stand-in for `s2s train --run-dir DIR [--resume] KEY=VALUE...`: holds the run directory's lock
as the real one does, writes history.csv per epoch and record.json. Validation exact match grows with
the epoch and is best for lr near 3e-3. With FAKE_WRITERS set, it notes a second live writer of its run."""
import fcntl, json, math, os, sys, time
from pathlib import Path

args = sys.argv[1:]
run_dir = Path(args[args.index("--run-dir") + 1])
resume = "--resume" in args
ov = dict(a.split("=", 1) for a in args if "=" in a and not a.startswith("-"))
run_dir.mkdir(parents=True, exist_ok=True)
if os.environ.get("FAKE_REAL_LOCK"):  # the package's own lock, as `s2s train` takes it
    from s2s_lightning.records import run_lock
    run_lock(run_dir).__enter__()
else:
    lock = open(run_dir / ".lock", "a+")
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
if (run_dir / "record.json").exists() and not resume:
    sys.exit("already holds a run")  # as the real one: never train twice into one directory
name = ov["tracking.name"]
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(f"{name} {'resume' if resume else 'start'} seed={ov['seed']} lr={ov.get('train.lr', '-')}\n")
if os.environ.get("FAKE_REFUSE"):  # refused before it starts, as `s2s train` refuses bad input: exit 2
    time.sleep(float(os.environ.get("FAKE_REFUSE_S", "0")))  # a real refusal comes after seconds of imports
    print(f"s2s: error: {os.environ['FAKE_REFUSE']}", file=sys.stderr)
    sys.exit(2)
def check_one_writer():
    """With FAKE_WRITERS: note any other live process that wrote this run directory since we started."""
    if not os.environ.get("FAKE_WRITERS"):
        return
    owner = int((run_dir / ".owner").read_text())
    if owner != os.getpid():
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            return
        with open(os.environ["FAKE_WRITERS"], "a") as f:
            f.write(f"two writers in {run_dir}: {owner} and {os.getpid()}\n")

if os.environ.get("FAKE_WRITERS"):
    put_owner = run_dir / ".owner"
    put_owner.write_text(str(os.getpid()))

def put(path, text):
    tmp = path.with_name(path.name + ".tmp"); tmp.write_text(text); os.replace(tmp, path)

def record(status, **more):
    rev = ov.get("data.reverse_source") == "True"
    return json.dumps({"status": status, "task": "addition", "data": "addition", "seed": int(ov["seed"]),
                       "axes": {"data.reverse_source": rev}, "storage": os.environ.get("S2S_STORAGE"),
                       **more})

put(run_dir / "record.json", record("running", metrics={}))
if os.environ.get("FAKE_ENV"):
    put(run_dir / "cuda_visible_devices", os.environ.get("CUDA_VISIBLE_DEVICES", ""))
if os.environ.get("FAKE_CONFIG"):  # the resolved config, as the real one writes it
    import yaml
    from s2s_lightning.config import build_config
    config = build_config({}, [f"{k}={v}" for k, v in ov.items()])
    put(run_dir / "config.yaml", yaml.safe_dump(config.to_dict()))
epochs = int(ov.get("train.max_epochs", "3"))
quality = max(0.0, 1.0 - abs(math.log10(float(ov.get("train.lr", "0.003"))) + 2.5) / 3)
if os.environ.get("FAKE_ONLY_FIRST_TUNES_WELL") and "-tune-" in name and not name.endswith("-t0"):
    quality = 0.05  # every later nuisance trial is worse than the first: the pruner must stop it
rows = ["epoch,step,val/loss,val/exact_match"]
for epoch in range(epochs):
    acc = quality * (epoch + 1) / epochs + 0.001 * (int(ov["seed"]) % 10)
    rows.append(f"{epoch},{epoch},{1 - acc},{acc}")
    put(run_dir / "history.csv", "\n".join(rows) + "\n")
    check_one_writer()
    time.sleep(float(os.environ.get("FAKE_EPOCH_S", "0.02")))
if name == os.environ.get("FAKE_KILLED"):
    os.kill(os.getpid(), 9)  # as the OOM killer would, every time
if name == os.environ.get("FAKE_CRASH") and not (run_dir.parent / ".crashed").exists():
    (run_dir.parent / ".crashed").touch()
    sys.exit("boom: a crash in one trial")
metrics = {"val/exact_match": acc, "test/exact_match": acc - 0.01, "val/ppl": 2 - acc}
put(run_dir / "record.json", record("completed", error=None, metrics=metrics,
                                    wandb={"id": "w-" + name, "mode": "offline"}))
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(f"{name} completed\n")
'''

SMALL = {
    "description": "test",
    "base": {"data": {"name": "addition"}, "train": {"max_epochs": 3}},
    "scientific": {"data.reverse_source": [False, True]},
    "fixed": {"tracking.wandb": "disabled"},
    "seeds": [0, 1],
    "objective": {"metric": "test/exact_match"},
}


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """(train command, executions log reader). Workers inherit FAKE_* from the environment."""
    script = tmp_path / "fake_train.py"
    script.write_text(FAKE_TRAIN)
    log = tmp_path / "executions.log"
    log.touch()
    monkeypatch.setenv("FAKE_LOG", str(log))
    return [sys.executable, str(script)], lambda: [
        e for e in log.read_text().splitlines() if " completed" not in e
    ]


def completions() -> list[str]:
    """Names of the fake runs that trained to completion, once per completion."""
    log = Path(os.environ["FAKE_LOG"]).read_text().splitlines()
    return [e.removesuffix(" completed") for e in log if e.endswith(" completed")]


def ablation_file(tmp_path: Path, name: str = "small", **changes) -> Path:
    spec = {**yaml.safe_load(yaml.safe_dump(SMALL)), **changes}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def cells(out: dict) -> dict:
    return {(r["arm"], s): c["state"] for r in out["status"] for s, c in r["seeds"].items()}


def main_trials(runs: Path, study: str) -> list:
    return optuna.load_study(study_name=study, storage=open_storage(None, runs)).get_trials()


# --- W&B sweep configs -----------------------------------------------------------------------------


def agent_configs(config: dict) -> list:
    """The configs a W&B agent would train: grid over `values`, arguments as W&B formats them."""
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

    config = yaml.safe_load(yaml.safe_dump(config))  # as `wandb sweep FILE` reads it
    params = config["parameters"]
    grid = [k for k, v in params.items() if "values" in v]
    out = []
    for point in itertools.product(*(params[k]["values"] for k in grid)):
        run = {k: {"value": v["value"]} for k, v in params.items() if "value" in v}
        run.update({k: {"value": v} for k, v in zip(grid, point)})
        argv = create_sweep_command_args({"args": run})["args_no_hyphens"]
        assert config["command"][-1] == "${args_no_hyphens}"
        out.append(build_config({}, argv))
    return out


@pytest.mark.parametrize(
    "path, budget",
    [(p, b) for p in SHIPPED for b in load_ablation(p).spec.budgets],
    ids=lambda x: getattr(x, "stem", x),
)
def test_wandb_grid_trains_exactly_what_the_optuna_study_enqueues(path, budget):
    plan = expand(load_ablation(path), budget)
    storage = optuna.storages.InMemoryStorage()
    main, tuning = open_studies(storage, plan)
    reconcile(storage, plan, main, tuning, "r")
    enqueued = {(t.user_attrs[ARM], t.user_attrs[SEED]) for t in main.trials}
    assert len(enqueued) == len(main.trials) == len(plan.arms) * len(plan.seeds)
    if plan.skipped:  # a fractional design: a W&B grid cannot express it, and says so
        with pytest.raises(S2SError, match="which a W&B grid sweep cannot leave out"):
            sweep_config(plan)
        return
    # The W&B grid covers the same (arm, seed) points ...
    wandb = agent_configs(sweep_config(plan))
    assert {(arm_name(c, plan.axes), c.seed) for c in wandb} == enqueued
    # ... and trains the same config as the Optuna worker would (nuisance at its base value), up to the
    # run's name and W&B mode (a W&B sweep needs its runs online).
    by_key = {(arm_name(c, plan.axes), c.seed): c for c in wandb}
    for arm, seed in enqueued:
        argv = format_overrides(plan.overrides(plan.arm(arm), seed, name=f"{arm}-seed{seed}"))
        optuna_cfg = build_config({}, argv).to_dict()
        agent_cfg = by_key[arm, seed].to_dict()
        assert (
            optuna_cfg["tracking"].pop("name") == f"{arm}-seed{seed}"
            and agent_cfg["tracking"].pop("name") is None
        )
        mode = optuna_cfg["tracking"].pop("wandb")
        assert agent_cfg["tracking"].pop("wandb") == ("online" if mode in ("offline", "disabled") else mode)
        assert agent_cfg == optuna_cfg


def test_sweep_files_are_up_to_date():
    """Regenerate with: s2s sweep wandb ablations/NAME.yaml [--budget B] -o sweeps/STUDY.yaml"""
    files = sorted((REPO / "sweeps").glob("*.yaml"))
    studies = {
        expand(load_ablation(p), b).study: (p, b) for p in SHIPPED for b in load_ablation(p).spec.budgets
    }
    assert {p.stem for p in SHIPPED} <= {f.stem for f in files}  # every full budget has its sweep
    for file in files:
        assert file.stem in studies, f"{file} matches no ablation budget"
        path, budget = studies[file.stem]
        plan = expand(load_ablation(path.relative_to(REPO) if path.is_absolute() else path), budget)
        assert render_sweep(plan, f"sweeps/{file.name}") == file.read_text(), (
            f"{file} is stale; regenerate it"
        )


def test_sweep_config_shape():
    plan = expand(load_ablation(REPO / "ablations" / "addition.yaml"), "quick")
    config = sweep_config(plan)
    assert config["method"] == "grid" and config["metric"] == {"name": "test/exact_match", "goal": "maximize"}
    assert config["command"] == [
        "${env}",
        "${interpreter}",
        "-m",
        "s2s_lightning",
        "train",
        "${args_no_hyphens}",
    ]
    assert config["parameters"]["train.teacher_forcing_ratio"] == {"values": [1.0, 0.5]}
    assert config["parameters"]["seed"] == {"values": [0, 1]}
    assert config["parameters"]["tracking.group"] == {"value": "addition-quick"}


# --- storage, GPUs, plan changes -------------------------------------------------------------------


def test_named_gpus_that_do_not_exist_are_refused(monkeypatch):
    """`--gpus 0,1,2,3` on a machine without CUDA started 4 workers that trained on the CPU."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr("torch.cuda.device_count", lambda: 0)
    for spec in ("0", "0,1,2,3"):
        with pytest.raises(S2SError, match=f"--gpus {spec}: this machine has 0 CUDA devices visible"):
            parse_gpus(spec, None)
    monkeypatch.setattr("torch.cuda.device_count", lambda: 2)
    assert parse_gpus("0,1", None) == (2, ["0", "1"])
    with pytest.raises(S2SError, match="--gpus 2: this machine has 2 CUDA devices visible"):
        parse_gpus("2", None)


def test_parse_gpus(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3,4,5")  # the GPUs a scheduler gave this job
    assert parse_gpus(None, None) == (1, [None])
    assert parse_gpus(None, 3) == (3, [None, None, None])
    assert parse_gpus("0,1,2,3", None) == (4, ["0", "1", "2", "3"])
    assert parse_gpus("0,1,2,3", 2) == (2, ["0,1", "2,3"])  # DDP inside a trial: two GPUs each
    assert parse_gpus("0,1", None, 3) == (6, ["0", "0", "0", "1", "1", "1"])  # three small trials per GPU
    with pytest.raises(S2SError, match="--trials-per-gpu goes with --gpus and without --workers"):
        parse_gpus(None, 2, 2)
    assert parse_gpus("0,1,2,3", None, 1, 2) == (2, ["0,1", "2,3"])  # --gpus-per-trial 2
    assert parse_gpus("5", None, 1, 1) == (1, ["5"])
    for args, message in [
        (("0,1,2", None, 1, 2), "--gpus-per-trial 2 cannot split 3 GPUs evenly"),
        ((None, None, 1, 2), "--gpus-per-trial goes with --gpus"),
        (("0,1", 1, 1, 2), "without --workers"),
        (("0,1", None, 2, 2), "and --trials-per-gpu"),
        (("0,1", None, 1, 0), "--gpus-per-trial must be at least 1"),
    ]:
        with pytest.raises(S2SError, match=message):
            parse_gpus(*args)
    for spec, workers, message in [
        ("0,1", 3, "cannot split 2 GPUs evenly"),
        ("0,x", None, "distinct GPU indices"),
        ("1,1", None, "distinct GPU indices"),
        (None, 0, "at least 1"),
    ]:
        with pytest.raises(S2SError, match=message):
            parse_gpus(spec, workers)


@pytest.mark.integration
def test_unreachable_storage_fails_before_any_work(tmp_path, fake, monkeypatch):
    path = ablation_file(tmp_path)
    with pytest.raises(S2SError, match="cannot open Optuna storage sqlite:////proc/"):
        run_sweep(
            SweepLaunch(
                path,
                storage="sqlite:////proc/no/such/dir/s.db",
                runs_dir=tmp_path / "runs",
                train_command=fake[0],
            )
        )
    assert not (tmp_path / "runs" / "small").exists() and fake[1]() == []
    (tmp_path / "file").write_text("x")  # runs dir under a file; the storage itself is fine
    for start in (run_sweep, join_sweep):
        with pytest.raises(S2SError, match="run directory .*file/runs is not writable"):
            storage = f"sqlite:///{tmp_path / 's.db'}"
            start(
                SweepLaunch(path, storage=storage, runs_dir=tmp_path / "file" / "runs", train_command=fake[0])
            )
    assert not (tmp_path / "s.db").exists() and fake[1]() == []  # no study was created

    def refuse(url, **kwargs):
        raise ConnectionError(f'connection to "{url}" refused\nDETAIL: more')

    monkeypatch.setattr(optuna.storages, "RDBStorage", refuse)
    with pytest.raises(S2SError) as err:
        run_sweep(
            SweepLaunch(
                path, storage="postgresql://bob:hunter2@db.example:5432/s2s", runs_dir=tmp_path / "runs"
            )
        )
    assert "hunter2" not in str(err.value) and "postgresql://bob:***@db.example:5432/s2s" in str(err.value)
    assert "\n" not in str(err.value)
    assert (
        redact("mysql+pymysql://u:p@ss@h/x and sqlite:///a.db")
        == "mysql+pymysql://u:***@h/x and sqlite:///a.db"
    )


@pytest.mark.integration
def test_a_study_from_a_changed_file_is_refused(tmp_path):
    storage = open_storage(None, tmp_path / "runs")
    open_studies(storage, expand(load_ablation(ablation_file(tmp_path))))
    # The same file, edited:
    changed = expand(
        load_ablation(ablation_file(tmp_path, base={**SMALL["base"], "train": {"max_epochs": 5}}))
    )
    with pytest.raises(S2SError, match=r"different version .*constants.train.max_epochs: 3 -> 5"):
        open_studies(storage, changed)
    (tmp_path / "runs" / "small").mkdir(parents=True)
    with pytest.raises(S2SError) as refused:
        run_sweep(SweepLaunch(changed.ablation.path, runs_dir=tmp_path / "runs"))
    message = str(refused.value)
    assert re.search(r"optuna delete-study --study-name small --storage .*studies.journal\)", message)
    # The README's add-seeds flow: deleting the study is enough (it said to move the runs away too, which
    # would have trained every run again).
    assert "adding seeds retrains nothing" in message and "move its runs folder" not in message


# --- running sweeps (stand-in trainer) -------------------------------------------------------------


@pytest.mark.integration
def test_crash_fails_one_trial_and_a_rerun_retries_only_it(tmp_path, fake, monkeypatch):
    train, executions = fake
    monkeypatch.setenv("FAKE_CRASH", "L1-rev-plain-tf1-seed1")
    path, runs = ablation_file(tmp_path), tmp_path / "runs"
    out = run_sweep(SweepLaunch(path, workers=2, runs_dir=runs, train_command=train, poll_s=0.05))
    assert out["started"] == 4 and len(executions()) == 4
    assert cells(out) == {
        ("L1-fwd-plain-tf1", 0): "done",
        ("L1-fwd-plain-tf1", 1): "done",
        ("L1-rev-plain-tf1", 0): "done",
        ("L1-rev-plain-tf1", 1): "failed",
    }
    failed = [t for t in main_trials(runs, "small") if t.state == TrialState.FAIL]
    assert "boom" in failed[0].user_attrs["error"]

    out = run_sweep(SweepLaunch(path, workers=2, runs_dir=runs, train_command=train, poll_s=0.05))
    assert out["started"] == 1 and executions()[4:] == ["L1-rev-plain-tf1-seed1 start seed=1 lr=-"]
    assert set(cells(out).values()) == {"done"}
    assert (runs / "small" / ".attempts").is_dir()  # the failed attempt, kept out of the way

    out = run_sweep(SweepLaunch(path, workers=2, runs_dir=runs, train_command=train, poll_s=0.05))
    assert out["started"] == 0 and len(executions()) == 5
    done = [t for t in main_trials(runs, "small") if t.state == TrialState.COMPLETE]
    assert sorted((t.params["data.reverse_source"], t.params["seed"]) for t in done) == [
        (False, 0),
        (False, 1),
        (True, 0),
        (True, 1),
    ]
    t = done[0]
    assert t.user_attrs["run_dir"] == str(runs / "small" / t.user_attrs["arm"] / f"seed{t.params['seed']}")
    assert t.user_attrs["wandb_id"] == f"w-{t.user_attrs['arm']}-seed{t.params['seed']}"
    assert t.value == pytest.approx(t.user_attrs["test/exact_match"])


@pytest.mark.integration
def test_a_trial_killed_every_time_is_retried_a_bounded_number_of_times(tmp_path, fake, monkeypatch):
    import s2s_lightning.sweep.storage as studies

    train, executions = fake
    monkeypatch.setattr(studies, "RETRIES_PER_RUN", 1)
    monkeypatch.setenv("FAKE_KILLED", "L1-rev-plain-tf1-seed0")
    path, runs = ablation_file(tmp_path), tmp_path / "runs"
    out = run_sweep(SweepLaunch(path, workers=1, runs_dir=runs, train_command=train, poll_s=0.05))
    assert cells(out)[("L1-rev-plain-tf1", 0)] == "failed" and list(cells(out).values()).count("done") == 3
    assert [e for e in executions() if e.startswith("L1-rev-plain-tf1-seed0")] == [
        "L1-rev-plain-tf1-seed0 start seed=0 lr=-"
    ] * 2  # the first attempt and one retry
    killed = [t for t in main_trials(runs, "small") if t.state == TrialState.FAIL]
    assert (
        all(t.user_attrs["error"] == "s2s train was killed by SIGKILL" for t in killed) and len(killed) == 2
    )


@pytest.mark.integration
def test_a_trial_whose_worker_died_is_resumed_and_every_point_finishes_once(tmp_path, fake):
    train, executions = fake
    path, runs = ablation_file(tmp_path), tmp_path / "runs"
    plan = expand(load_ablation(path))
    storage = open_storage(None, runs)
    main, tuning = open_studies(storage, plan)
    reconcile(storage, plan, main, tuning, "earlier")
    # A worker claimed a trial, trained an epoch, and was killed (kill -9): its pid is gone.
    study, trial, _ = claim(storage, plan, main, tuning)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    storage.set_trial_user_attr(trial._trial_id, WORKER, {"host": socket.gethostname(), "pid": dead.pid})
    run_dir = runs / "small" / trial.user_attrs[ARM] / f"seed{trial.user_attrs[SEED]}"
    storage.set_trial_user_attr(trial._trial_id, "run_dir", str(run_dir))  # as a worker does first
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_text("epoch 0")
    (run_dir / "record.json").write_text('{"status": "running"}')

    assert "stale" in sweep_status(path, runs_dir=runs)
    out = run_sweep(SweepLaunch(path, workers=2, runs_dir=runs, train_command=train, poll_s=0.05))
    assert set(cells(out).values()) == {"done"}
    name = f"{trial.user_attrs[ARM]}-seed{trial.user_attrs[SEED]}"
    assert sorted(executions()) == sorted(
        [
            f"{a}-seed{s} start seed={s} lr=-"
            for a in ("L1-fwd-plain-tf1", "L1-rev-plain-tf1")
            for s in (0, 1)
            if f"{a}-seed{s}" != name
        ]
        + [f"{name} resume seed={trial.user_attrs[SEED]} lr=-"]
    )
    states = [t.state for t in main_trials(runs, "small")]
    assert states.count(TrialState.COMPLETE) == 4 and states.count(TrialState.FAIL) == 1  # the stale one
    # The report counts the resumed run once (the failed attempt and its retry share the directory).
    data = load(StudySource("small", str(runs / "optuna" / "studies.journal")))
    assert len(data.runs) == 4 and list(data.completed.groupby("arm", observed=True).size()) == [2, 2]
    health = health_table(data).data.set_index("item")
    assert health.loc["total", "Run directories"] == 4 and health.loc["total", "Optuna trials"] == 5


@pytest.mark.integration
@pytest.mark.parametrize("rdb", ["sqlite", "postgresql"])
def test_workers_joining_from_another_node_share_an_rdb_study(tmp_path, fake, monkeypatch, rdb, request):
    """Node 1 runs `s2s sweep run`, node 2 `s2s sweep worker` on the same RDB storage (a local
    PostgreSQL server, as nodes share in production; SQLite): every point trains once, on one node
    or the other."""
    train, executions = fake
    monkeypatch.setenv("FAKE_EPOCH_S", "0.3")  # long enough for both nodes to claim trials
    path = ablation_file(tmp_path, seeds=[0, 1, 2])
    url = (
        f"sqlite:///{tmp_path / 'studies.db'}" if rdb == "sqlite" else request.getfixturevalue("postgres_url")
    )
    if rdb == "postgresql":  # one server for the session: start from an empty study
        for name in ("small",):
            try:
                optuna.delete_study(study_name=name, storage=url)
            except KeyError:
                pass
    with pytest.raises(
        S2SError, match=f"study 'small' does not exist in {rdb}://.*; create it with `s2s sweep run"
    ):
        join_sweep(SweepLaunch(path, storage=url, runs_dir=tmp_path / "node2", train_command=train))

    # Node 2 starts first, as a SLURM array's tasks do: it waits for node 1 to create the study.
    joined = {}
    node2 = threading.Thread(
        target=lambda: joined.update(
            ran=join_sweep(
                SweepLaunch(
                    path,
                    storage=url,
                    workers=2,
                    runs_dir=tmp_path / "node2",
                    train_command=train,
                    poll_s=0.05,
                    wait_s=60,
                )
            )
        )
    )
    node2.start()
    time.sleep(0.5)
    coordinator = run_sweep(
        SweepLaunch(
            path, storage=url, workers=1, runs_dir=tmp_path / "node1", train_command=train, poll_s=0.05
        )
    )
    node2.join(120)
    ran = joined["ran"]
    node1 = node2
    assert not node1.is_alive()
    assert ran >= 1 and coordinator["started"] + ran == 6  # the two nodes split the grid
    assert sorted(executions()) == sorted(
        f"L1-{d}-plain-tf1-seed{s} start seed={s} lr=-" for d in ("fwd", "rev") for s in (0, 1, 2)
    )
    done = [
        t for t in optuna.load_study(study_name="small", storage=url).trials if t.state == TrialState.COMPLETE
    ]
    assert len(done) == 6 and {Path(t.user_attrs["run_dir"]).parts[-4] for t in done} == {"node1", "node2"}


@pytest.mark.parametrize("outcome", ["interrupted", "completed"])
def test_the_coordinator_stays_while_other_workers_run_and_retries_what_they_drop(outcome):
    """Nothing waits but another node's worker runs a trial: the coordinator used to leave, so when that
    node was preempted its trial stayed failed until someone ran `sweep run` again. It now waits, and
    returns True once a retry waits (the trial stopped), False once nothing runs (it finished)."""
    study = optuna.create_study()
    study.enqueue_trial({})
    trial = study.ask()  # RUNNING, as another node's worker holds it
    retries = []

    def retry():
        if study.trials[trial.number].state == TrialState.FAIL and not retries:
            retries.append(study.enqueue_trial({}))
            return 1
        return 0

    def finish():
        time.sleep(0.3)
        if outcome == "interrupted":
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, 1.0)

    threading.Thread(target=finish).start()
    launch = SweepLaunch("unused.yaml", poll_s=0.05)
    assert coordinator._await_others(study, {}, retry, lambda: None, launch) is (outcome == "interrupted")
    assert bool(retries) is (outcome == "interrupted")


def test_workers_share_the_cpus_slurm_gave_the_task_not_the_machines(monkeypatch):
    """Without a task plugin SLURM binds no CPUs, so os.cpu_count() is the whole node's: 64 threads per
    trial on a node shared with other jobs. --cpus-per-task is what the task may use."""
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "6")
    assert [s.threads for s in SweepLaunch("a.yaml", workers=3).worker_slots("r")] == [2, 2, 2]
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert [s.threads for s in SweepLaunch("a.yaml", workers=2).worker_slots("r")] == [2, 2]


def test_a_worker_waits_for_the_study_then_says_it_never_came(tmp_path):
    path, runs = ablation_file(tmp_path), tmp_path / "runs"
    started = time.monotonic()
    with pytest.raises(S2SError, match=r"study 'small' does not exist in .* after waiting 0.5 s; create it"):
        join_sweep(SweepLaunch(path, runs_dir=runs, wait_s=0.5, poll_s=0.05))
    assert time.monotonic() - started >= 0.5


@pytest.mark.integration
def test_a_point_enqueued_twice_runs_once(tmp_path, fake):
    """Two coordinators on two nodes could enqueue a point twice; only one attempt may train it."""
    train, executions = fake
    path, runs = ablation_file(tmp_path, seeds=[0]), tmp_path / "runs"
    plan = expand(load_ablation(path))
    storage = open_storage(None, runs)
    main, tuning = open_studies(storage, plan)
    reconcile(storage, plan, main, tuning, "node-a")
    arm = plan.arms[0]
    main.enqueue_trial({**arm.values, SEED: 0}, user_attrs={KIND: "grid", ARM: arm.name, SEED: 0})
    run_sweep(SweepLaunch(path, workers=2, runs_dir=runs, train_command=train, poll_s=0.05))
    assert sorted(executions()) == [
        "L1-fwd-plain-tf1-seed0 start seed=0 lr=-",
        "L1-rev-plain-tf1-seed0 start seed=0 lr=-",
    ]
    twins = [t for t in main_trials(runs, "small") if t.user_attrs[ARM] == arm.name]
    assert sorted(t.state.name for t in twins) == ["COMPLETE", "FAIL"]
    assert [t.user_attrs.get("duplicate_of") for t in twins if t.state == TrialState.FAIL] == [
        twins[0].number
    ]


@pytest.mark.integration
def test_nuisance_tuning_is_per_arm_and_grid_trials_use_the_best_values(tmp_path, fake, monkeypatch):
    train, executions = fake
    monkeypatch.setenv("FAKE_EPOCH_S", "0.3")  # slow enough for the pruner to stop a trial mid-run
    monkeypatch.setenv("FAKE_ONLY_FIRST_TUNES_WELL", "1")
    path = ablation_file(
        tmp_path,
        name="tuned",
        seeds=[0],
        nuisance={
            "space": {"train.lr": {"type": "log_uniform", "low": 1e-5, "high": 1e-1}},
            "sampler": "random",
            "pruner": {"type": "median", "startup_trials": 1, "warmup_epochs": 0},
        },
        budgets={"full": {"nuisance_trials": 4}},
    )
    runs = tmp_path / "runs"
    out = run_sweep(SweepLaunch(path, workers=1, runs_dir=runs, train_command=train, poll_s=0.05))
    assert set(cells(out).values()) == {"done"}
    storage = open_storage(None, runs)
    lrs = {}
    for arm in ("L1-fwd-plain-tf1", "L1-rev-plain-tf1"):
        tune = optuna.load_study(
            study_name=tuning_study_name(expand(load_ablation(path)), arm), storage=storage
        )
        assert len(tune.trials) == 4 and all(t.user_attrs[KIND] == TUNE for t in tune.trials)
        assert [t.state for t in tune.trials] == [TrialState.COMPLETE] + [TrialState.PRUNED] * 3
        assert all(len(t.intermediate_values) < 3 for t in tune.trials[1:])  # stopped before the last epoch
        lrs[arm] = [t.params["train.lr"] for t in tune.trials]
        assert len(set(lrs[arm])) == 4  # every trial draws its own point
        best = tune.best_trial
        assert best.number == 0
        grid = [t for t in main_trials(runs, "tuned") if t.user_attrs[ARM] == arm]
        assert [t.state for t in grid] == [TrialState.COMPLETE]  # seeds of the grid are never pruned
        assert grid[0].params["train.lr"] == best.params["train.lr"]
        assert grid[0].user_attrs["tuned_by"] == f"tuned/{arm}#{best.number}"
        assert len(grid[0].intermediate_values) == 3  # learning curves for the dashboard
    assert lrs["L1-fwd-plain-tf1"] == lrs["L1-rev-plain-tf1"]  # random search: the same points per arm
    assert len(executions()) == 2 * 4 + 2
    assert "4/4" in sweep_status(path, runs_dir=runs)


def test_command_line(tmp_path, fake, capsys):
    parser = build_parser()
    path, runs = ablation_file(tmp_path), tmp_path / "runs"

    args = parser.parse_args(["sweep", "status", str(path), "--runs-dir", str(runs)])
    assert args.func(args) == 0
    assert "study small not started" in capsys.readouterr().out

    out = tmp_path / "sweeps" / "small.yaml"
    args = parser.parse_args(["sweep", "wandb", str(path), "-o", str(out)])
    assert args.func(args) == 0 and yaml.safe_load(out.read_text())["method"] == "grid"

    args = parser.parse_args(["sweep", "run", str(path), "--budget", "quik"])
    with pytest.raises(S2SError, match="unknown budget 'quik'"):
        args.func(args)
    args = parser.parse_args(["dashboard", "--port", "8081"])
    assert args.port == 8081 and args.storage is None


# --- the real thing ---------------------------------------------------------------------------------


@pytest.mark.integration
def test_tiny_real_sweep_runs_each_point_once_and_a_rerun_starts_nothing(tmp_path):
    """Real `s2s train` subprocesses: 2 arms x 1 seed of a tiny addition model, then the same again."""
    spec = {
        "base": {
            "data": {"name": "addition", "addition": {"train_size": 200, "val_size": 30, "test_size": 30}},
            "model": {"hidden_dim": 8, "embedding_dim": 8},
            "train": {"max_epochs": 1, "progress_bar": False},
        },
        "scientific": {"model.peeky": [False, True]},
        "fixed": {"tracking.wandb": "disabled"},
        "seeds": [0],
        "objective": {"metric": "val/ppl"},
    }
    path, runs = tmp_path / "tiny.yaml", tmp_path / "runs"
    path.write_text(yaml.safe_dump(spec))
    out = run_sweep(SweepLaunch(path, workers=2, runs_dir=runs, poll_s=0.2))
    assert out["started"] == 2 and set(cells(out).values()) == {"done"}
    for arm in ("L1-fwd-plain-tf1", "L1-fwd-peeky-tf1"):
        record = yaml.safe_load((runs / "tiny" / arm / "seed0" / "record.json").read_text())
        assert record["status"] == "completed" and record["study"] == "tiny"
        config = yaml.safe_load((runs / "tiny" / arm / "seed0" / "config.yaml").read_text())
        assert config["tracking"]["group"] == "tiny" and config["tracking"]["name"] == f"{arm}-seed0"
    assert run_sweep(SweepLaunch(path, workers=2, runs_dir=runs))["started"] == 0
    assert len(main_trials(runs, "tiny")) == 2


@pytest.mark.integration
def test_a_study_over_any_config_key_reports_its_arms_apart(tmp_path, monkeypatch):
    """A scientific axis beyond the paper's four (model.hidden_dim) is recorded with every run, and the
    study's report names and groups its arms by it instead of merging them into one arm."""
    from s2s_lightning.report.build import build_report
    from s2s_lightning.report.load import StudySource

    spec = {
        "base": {
            "data": {"name": "addition", "addition": {"train_size": 200, "val_size": 30, "test_size": 30}},
            "model": {"embedding_dim": 8},
            "train": {"max_epochs": 1, "progress_bar": False},
        },
        "scientific": {"model.hidden_dim": [8, 12]},
        "fixed": {"tracking.wandb": "disabled"},
        "seeds": [0, 1],
        "objective": {"metric": "val/ppl"},
    }
    monkeypatch.chdir(tmp_path)
    Path("width.yaml").write_text(yaml.safe_dump(spec))
    out = run_sweep(SweepLaunch("width.yaml", workers=2, poll_s=0.2))
    assert set(cells(out).values()) == {"done"}
    for width in (8, 12):
        record = yaml.safe_load(
            Path(f"runs/width/L1-fwd-plain-tf1-hidden_dim{width}/seed0/record.json").read_text()
        )
        assert record["axes"]["model.hidden_dim"] == width and record["arm"].endswith(f"hidden_dim{width}")
    readme = build_report(StudySource("width", "runs/optuna/studies.journal"), "report").read_text()
    assert "**Arms vary in**: hidden_dim;" in readme and "4 records, 4 completed: 2 arms × 2 seeds" in readme
    summary = Path("report/tables/summary.csv").read_text().splitlines()
    assert [line.split(",")[:2] for line in summary[1:]] == [["hidden_dim=8", "8"], ["hidden_dim=12", "12"]]


CLAIMANT = """
import sys, time
from s2s_lightning.sweep.plan import expand, load_ablation
from s2s_lightning.sweep.storage import claim, open_storage, open_studies
plan = expand(load_ablation(sys.argv[1]))
storage = open_storage(sys.argv[2])
main, tuning = open_studies(storage, plan, create=False)
while time.time() < float(sys.argv[3]):
    time.sleep(0.001)
got = []
while True:
    study, trial, waiting = claim(storage, plan, main, tuning)
    if study is None:
        break
    got.append(trial.number)
print(" ".join(map(str, got)))
"""


@pytest.mark.integration
@pytest.mark.parametrize("rdb", ["journal", "sqlite"])
def test_each_waiting_trial_is_claimed_by_one_process(tmp_path, rdb):
    """Six processes claim at once from one storage: every trial goes to exactly one of them (on SQLite,
    which has no row locks, several used to start the same trial)."""
    path = ablation_file(tmp_path, seeds=list(range(20)))
    url = f"sqlite:///{tmp_path / 'studies.db'}" if rdb == "sqlite" else str(tmp_path / "studies.journal")
    plan = expand(load_ablation(path))
    storage = open_storage(url)
    main, tuning = open_studies(storage, plan)
    assert reconcile(storage, plan, main, tuning, "r") == 40
    start = str(time.time() + 4)  # every claimant past its imports before the first claim
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMANT, str(path), url, start], stdout=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    claims = [int(n) for p in procs for n in p.communicate(timeout=120)[0].split()]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(claims) == sorted(t.number for t in main.get_trials()), "a trial claimed twice or never"


@pytest.mark.integration
def test_a_run_directory_of_another_study_is_named_before_anything_starts(tmp_path, fake, monkeypatch):
    """A study of the same name made in another storage owns the runs already in the folder: the new
    one says so once, before enqueueing, and moves nothing (it used to move them to .attempts/ silently).
    Completed runs of the new study's own grid too (their configs written, as the real ones are): an
    SQLite study adopted the 4 runs a journal study had made, exit 0, though the README said it stops."""
    train, executions = fake
    monkeypatch.setenv("FAKE_CONFIG", "1")
    path, runs = ablation_file(tmp_path), tmp_path / "runs"
    run_sweep(SweepLaunch(path, runs_dir=runs, train_command=train, poll_s=0.05))
    before = sorted(p.relative_to(runs) for p in runs.rglob("record.json"))
    other = f"sqlite:///{tmp_path / 'other.db'}"
    with pytest.raises(
        S2SError, match=r"runs/small holds 4 run\(s\) that study 'small' in sqlite:///.* did not make"
    ):
        run_sweep(SweepLaunch(path, storage=other, runs_dir=runs, train_command=train, poll_s=0.05))
    assert sorted(p.relative_to(runs) for p in runs.rglob("record.json")) == before
    assert not (runs / "small" / ".attempts").exists() and len(executions()) == 4
    assert optuna.load_study(study_name="small", storage=other).get_trials() == []  # nothing enqueued


@pytest.mark.integration
def test_gpus_per_trial_gives_each_trial_its_gpu_group_as_ddp_devices(tmp_path, fake, monkeypatch):
    """`--gpus 0,1,2,3 --gpus-per-trial 2`: two workers, each trial pinned to its pair of GPUs and
    trained over both (train.devices=2, strategy ddp); one GPU per trial leaves the config alone."""
    train, _ = fake
    monkeypatch.setenv("FAKE_CONFIG", "1")
    monkeypatch.setenv("FAKE_ENV", "1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")  # the job's four GPUs (the trials are stand-ins)
    runs = tmp_path / "runs"
    out = run_sweep(
        SweepLaunch(
            ablation_file(tmp_path),
            gpus="0,1,2,3",
            gpus_per_trial=2,
            runs_dir=runs,
            train_command=train,
            poll_s=0.05,
        )
    )
    assert set(cells(out).values()) == {"done"}
    for run in sorted(runs.glob("small/*/seed*")):
        cfg = yaml.safe_load((run / "config.yaml").read_text())["train"]
        assert (cfg["devices"], cfg["strategy"]) == (2, "ddp")
        assert (run / "cuda_visible_devices").read_text() in ("0,1", "2,3")
    assert {(run / "cuda_visible_devices").read_text() for run in runs.glob("small/*/seed*")} == {
        "0,1",
        "2,3",
    }

    one = tmp_path / "one"
    run_sweep(SweepLaunch(ablation_file(tmp_path), gpus="3", runs_dir=one, train_command=train, poll_s=0.05))
    cfg = yaml.safe_load(next(one.glob("small/*/seed0/config.yaml")).read_text())["train"]
    assert (cfg["devices"], cfg["strategy"]) == (1, "auto")


@pytest.mark.integration
def test_a_new_study_adopts_finished_runs_of_the_same_config_and_trains_only_new_points(
    tmp_path, fake, monkeypatch, capsys
):
    """A budget that gains arms (here Peeky, on reversed sources only) changes the study's fingerprint;
    its new study takes the finished runs whose config is a trial's config and trains only the rest."""
    train, executions = fake
    monkeypatch.setenv("FAKE_CONFIG", "1")
    runs = tmp_path / "runs"
    run_sweep(SweepLaunch(ablation_file(tmp_path), runs_dir=runs, train_command=train, poll_s=0.05))
    records = {p: p.read_text() for p in runs.rglob("record.json")}
    assert len(records) == 4 and len(executions()) == 4
    optuna.delete_study(study_name="small", storage=open_storage(None, runs))

    science = {**SMALL["scientific"], "model.peeky": [False, True]}
    skip = {"full": {"skip": [{"data.reverse_source": False, "model.peeky": True}]}}
    grown = ablation_file(tmp_path, scientific=science, budgets=skip)
    monkeypatch.setattr(coordinator, "PROGRESS_S", 0.0)
    monkeypatch.setenv("FAKE_EPOCH_S", "0.3")
    capsys.readouterr()
    out = run_sweep(SweepLaunch(grown, workers=2, runs_dir=runs, train_command=train, poll_s=0.05))
    progress = [line for line in capsys.readouterr().out.splitlines() if line.startswith("progress: ")]
    assert "progress: 4/6 grid points done, 2 running; ETA once a trial has finished" in progress
    assert not any(
        line.startswith("progress: 4/6") and "min" in line for line in progress
    )  # no pace from adoptions
    assert sorted(e.split()[0] for e in executions()[4:]) == [
        "L1-rev-peeky-tf1-seed0",
        "L1-rev-peeky-tf1-seed1",
    ]
    assert set(cells(out).values()) == {"done"} and len(cells(out)) == 6
    assert all(p.read_text() == text for p, text in records.items())  # adopted as they were
    assert not (runs / "small" / ".attempts").exists()
    done = [t for t in main_trials(runs, "small") if t.state == TrialState.COMPLETE]
    assert len(done) == 6 and all(t.value is not None for t in done)
    assert sorted(t.user_attrs.get("adopted", False) for t in done) == [False] * 2 + [True] * 4

    # Runs of another config are not adopted: the new study names them and touches nothing.
    optuna.delete_study(study_name="small", storage=open_storage(None, runs))
    longer = ablation_file(tmp_path, base={**SMALL["base"], "train": {"max_epochs": 5}})
    with pytest.raises(S2SError, match=r"holds 6 run\(s\) that study 'small' .* did not make"):
        run_sweep(SweepLaunch(longer, runs_dir=runs, train_command=train, poll_s=0.05))
    assert len(executions()) == 6


CHAOS_COORDINATOR = """
import json, sys
from s2s_lightning.sweep.coordinator import join_sweep, run_sweep
from s2s_lightning.sweep.launch import SweepLaunch
role, path, storage, runs, train = sys.argv[1:6]
sweep = run_sweep if role == "coordinator" else join_sweep
train = json.loads(train)
sweep(SweepLaunch(path, storage=storage or None, workers=2, runs_dir=runs, train_command=train, poll_s=0.05))
"""


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("rdb", ["journal", "sqlite", "postgresql"])
def test_chaos_random_kill_9s_leave_every_point_trained_exactly_once(
    tmp_path, fake, monkeypatch, rdb, request
):
    """A coordinator and a joined worker (another node's `s2s sweep worker`) share one storage while
    coordinators, workers and trials are killed with SIGKILL at random; reruns then finish the study.
    Every grid point ends with one completed run, no run trains to completion twice, no run directory
    ever has two live writers, and every record is complete and readable."""
    import json
    import random
    from collections import Counter

    import s2s_lightning.sweep.storage as studies

    train, _ = fake
    writers = tmp_path / "writers.log"
    monkeypatch.setenv("FAKE_EPOCH_S", "0.1")
    monkeypatch.setenv("FAKE_REAL_LOCK", "1")  # the package's own run-directory lock, as s2s train takes it
    monkeypatch.setenv("FAKE_WRITERS", str(writers))
    path, runs = ablation_file(tmp_path, seeds=[0, 1, 2, 3]), tmp_path / "runs"  # 2 arms x 4 seeds
    base = yaml.safe_load(path.read_text())
    base["base"]["train"]["max_epochs"] = 6
    path.write_text(yaml.safe_dump(base))
    url = {"journal": "", "sqlite": f"sqlite:///{tmp_path / 'studies.db'}"}.get(rdb)
    if rdb == "postgresql":
        url = request.getfixturevalue("postgres_url")
        try:
            optuna.delete_study(study_name="small", storage=url)
        except KeyError:
            pass
    rng, kills = random.Random(7), 0

    def start(role):
        args = [role, str(path), url, str(runs), json.dumps(train)]
        return subprocess.Popen(
            [sys.executable, "-c", CHAOS_COORDINATOR, *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    for _ in range(5):
        procs = [start("coordinator")]
        time.sleep(rng.uniform(1.0, 2.0))
        procs.append(start("worker"))
        for _ in range(rng.randint(1, 3)):
            time.sleep(rng.uniform(0.3, 1.5))
            trials = subprocess.run(
                ["pgrep", "-f", str(train[1])], capture_output=True, text=True
            ).stdout.split()
            victims = [str(p.pid) for p in procs if p.poll() is None] + trials
            if victims:
                os.kill(int(rng.choice(victims)), signal.SIGKILL)
                kills += 1
        for p in procs:  # end the round: whatever is left dies too
            if p.poll() is None:
                p.kill()
            p.wait()
        time.sleep(0.5)  # orphaned workers and trials follow their parents (PR_SET_PDEATHSIG)
    # A worker killed between claiming a trial and writing its identity leaves a RUNNING trial that only
    # time shows to be dead; shorten that wait (30 s) for the test.
    monkeypatch.setattr(studies, "CLAIM_GRACE_S", 1.0)
    for _ in range(3):  # reruns until the study is complete, as a user would
        out = run_sweep(
            SweepLaunch(path, storage=url or None, workers=2, runs_dir=runs, train_command=train, poll_s=0.05)
        )
        if set(cells(out).values()) == {"done"}:
            break
        time.sleep(1.5)
    assert set(cells(out).values()) == {"done"}, cells(out)
    records = sorted(p for p in (runs / "small").glob("*/seed*/record.json"))
    assert len(records) == 8 and all(json.loads(r.read_text())["status"] == "completed" for r in records)
    trained = Counter(completions())
    assert len(trained) == 8 and max(trained.values()) == 1, trained  # none trained to completion twice
    assert not writers.exists() or writers.read_text() == ""  # never two live writers of one run
    trials = optuna.load_study(study_name="small", storage=url or open_storage(None, runs)).get_trials()
    print(f"chaos {rdb}: {kills} kill -9s survived, {len(trials)} trials for 8 points, 0 duplicates")


@pytest.mark.integration
def test_sweep_run_prints_progress_with_an_eta(tmp_path, fake, monkeypatch, capsys):
    import s2s_lightning.sweep.coordinator as sweep

    train, _ = fake
    monkeypatch.setattr(sweep, "PROGRESS_S", 0.0)
    monkeypatch.setenv("FAKE_EPOCH_S", "0.2")
    run_sweep(
        SweepLaunch(ablation_file(tmp_path), runs_dir=tmp_path / "runs", train_command=train, poll_s=0.05)
    )
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("progress: ")]
    assert lines[0].startswith("progress: 0/4 grid points done, ")
    assert lines[0].endswith("; ETA once a trial has finished")
    assert any(
        re.fullmatch(r"progress: [123]/4 grid points done, \d running; ETA \d+ min", line) for line in lines
    )


@pytest.mark.integration
@pytest.mark.parametrize("devices", ["gpu", "cpu"])
@pytest.mark.parametrize("task", ["0", "1"])
def test_the_slurm_example_runs_real_commands(tmp_path, monkeypatch, task, devices):
    """sweeps/slurm/sweep.sbatch, run by bash as SLURM would run array task `task` (with `s2s` a stand-in
    that records its arguments): the command it execs parses with the CLI's own parser and means what
    the file says. tests/sweep/test_slurm.py runs the same file on a real SLURM cluster."""
    argv = tmp_path / "argv.json"
    stub = tmp_path / "s2s"
    stub.write_text(
        f"#!{sys.executable}\nimport json, sys\njson.dump(sys.argv[1:], open({str(argv)!r}, 'w'))\n"
    )
    stub.chmod(0o755)
    env = {
        **os.environ,
        "SLURM_ARRAY_TASK_ID": task,
        "S2S_STORAGE": "postgresql://db/s",
        "S2S": str(stub),
        "DEVICES": devices,
        "WORKERS": "3",
        "GPUS_PER_TRIAL": "2",
    }
    out = subprocess.run(
        ["bash", REPO / "sweeps" / "slurm" / "sweep.sbatch"],
        env=env,
        cwd=REPO,
        text=True,
        capture_output=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    args = build_parser().parse_args(json.loads(argv.read_text()))
    assert args.sweep_command == ("run" if task == "0" else "worker")
    assert args.storage == "postgresql://db/s" and args.budget == "full" and str(args.runs_dir) == "runs"
    if task == "1":
        assert args.wait == 600  # waits for task 0 to create the study
    if devices == "cpu":
        assert args.workers == 3 and args.gpus is None
        return
    assert args.gpus == "all" and args.trials_per_gpu == 1 and args.gpus_per_trial == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")  # the node's four GPUs, as SLURM gives them
    assert parse_gpus("0,1,2,3", args.workers, args.trials_per_gpu, args.gpus_per_trial) == (
        2,
        ["0,1", "2,3"],
    )
    load_ablation(REPO / args.ablation)


def _exit_with(code: int) -> None:
    sys.exit(code)


@pytest.mark.integration
def test_ctrl_c_of_a_sweep_is_an_interruption_not_a_failure(tmp_path, capsys):
    """Ctrl-C reaches the workers too; they stop their trials and exit 130. The coordinator used to call
    that "sweep workers failed (w0 exit code 130, ...); see their errors above" with no errors above,
    exit 2, and the report counted the trials as failed. Now: one line saying what was stopped and how
    to continue, exit 130, and the health table counts interrupted trials apart."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")

    def spawn(i):
        p = ctx.Process(target=_exit_with, args=(130,))
        p.start()
        return p

    with pytest.raises(coordinator.SweepInterrupted):
        coordinator._supervise(2, spawn, 0.05)

    def broken(i):
        p = ctx.Process(target=_exit_with, args=(3,))
        p.start()
        return p

    with pytest.raises(S2SError, match="sweep workers failed"):
        coordinator._supervise(1, broken, 0.05)

    args = build_parser().parse_args(["sweep", "run", "ablations/addition.yaml", "--budget", "quick"])
    line = interrupted_line(args, "run")
    assert line.endswith("continue with: s2s sweep run ablations/addition.yaml --budget quick")

    storage = open_storage(str(tmp_path / "s.journal"), tmp_path)
    study = optuna.create_study(study_name="st", storage=storage)
    for interrupted in (True, False):
        trial = study.ask()
        trial.set_user_attr("interrupted", interrupted)
        study.tell(trial, state=TrialState.FAIL)
    _, trials = load_study("st", str(tmp_path / "s.journal"))
    assert sorted(trials["state"]) == ["FAIL", "INTERRUPTED"]


@pytest.mark.integration
def test_a_sweep_whose_data_every_trial_lacks_stops_before_enqueueing(tmp_path, fake, monkeypatch):
    """Offline without Multi30k, `sweep run` used to enqueue every trial and fail each in turn with the
    same message (cut off), exit 1 with nothing on stderr, and leave a run directory per trial and an
    empty cache folder; --dry-run said nothing. The data are now checked once, before anything is
    enqueued or created, with the whole message; --dry-run checks them too."""
    from s2s_lightning import corpus as data_module

    monkeypatch.delenv("S2S_MULTI30K_DIR", raising=False)
    monkeypatch.setenv("S2S_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(data_module, "MULTI30K_URL", "http://127.0.0.1:9/{file}")  # nothing listens there
    base = {"data": {"name": "multi30k"}, "train": {"max_epochs": 1}}
    path = ablation_file(tmp_path, base=base, objective={"metric": "test/bleu"})
    runs = tmp_path / "runs"
    message = (
        r"multi30k: train.de.gz .*not in .*cannot be downloaded "
        r".*set data.dir or \$S2S_MULTI30K_DIR to a local copy$"
    )
    with pytest.raises(S2SError, match=message):
        status.dry_run(path, "full", runs)
    with pytest.raises(S2SError, match=message):
        run_sweep(SweepLaunch(path, runs_dir=runs, train_command=fake[0], poll_s=0.05))
    assert not runs.exists() and not (tmp_path / "cache").exists() and fake[1]() == []


def test_a_failed_attempt_refused_before_its_record_keeps_its_log(tmp_path):
    """A trial refused before its run started (no record.json) left a train.log with the reason; the
    next attempt deleted it. It is moved to .attempts/, as the README says of failed attempts."""
    from s2s_lightning.sweep.rundir import FRESH, _decide

    run_dir = tmp_path / "study" / "L1-fwd-plain-tf1" / "seed0"
    run_dir.mkdir(parents=True)
    (run_dir / ".lock").write_text("1\n")
    (run_dir / "train.log").write_text("s2s: error: the reason\n")
    said = []
    assert _decide(run_dir, [], 3, said.append) == FRESH
    attic = tmp_path / "study" / ".attempts" / "L1-fwd-plain-tf1-seed0-before-trial3"
    assert (attic / "train.log").read_text() == "s2s: error: the reason\n"
    assert [p.name for p in run_dir.iterdir()] == [".lock"] and "train.log" in said[0]


@pytest.mark.integration
def test_an_edited_ablation_file_is_refused_once_with_everything_to_do(tmp_path, fake):
    """Editing a file whose study has runs took two refusals: "delete the study", then "holds N run(s)
    ... likely from a study of that name in another storage". One message now names both steps, and
    following it starts the new study."""
    path, runs = ablation_file(tmp_path), tmp_path / "runs"
    run_sweep(SweepLaunch(path, runs_dir=runs, train_command=fake[0], poll_s=0.05))
    changed = ablation_file(tmp_path, base={**SMALL["base"], "train": {"max_epochs": 5}})
    with pytest.raises(S2SError) as err:
        run_sweep(SweepLaunch(changed, runs_dir=runs, train_command=fake[0], poll_s=0.05))
    folder = runs / "small"
    assert "optuna delete-study --study-name small" in str(err.value)
    assert f"the new study adopts the finished runs in {folder} whose config it trains" in str(err.value)
    assert "runs of a config it no longer trains must be moved away first" in str(err.value)  # as here
    optuna.delete_study(study_name="small", storage=open_storage(None, runs))
    folder.rename(tmp_path / "old-runs")
    out = run_sweep(SweepLaunch(changed, runs_dir=runs, train_command=fake[0], poll_s=0.05))
    assert set(cells(out).values()) == {"done"}


def test_a_sweep_printed_to_stdout_does_not_claim_a_file():
    """Printed to stdout, the header said "Generated by ... -o sweeps/STUDY.yaml" and "wandb sweep
    sweeps/STUDY.yaml", a file that was never written."""
    plan = expand(load_ablation(REPO / "ablations" / "addition.yaml"), "quick")
    assert " -o " not in render_sweep(plan) and "sweeps/addition-quick.yaml" not in render_sweep(plan)
    assert "-o out/x.yaml`" in render_sweep(plan, "out/x.yaml")


@pytest.mark.integration
def test_a_refusal_every_trial_shares_stops_the_sweep(tmp_path, fake, monkeypatch):
    """Trials refused before they start with one message in two arms, none completed: the rest would
    repeat it, so the sweep stops with that message instead of failing every trial in turn."""
    train, executions = fake
    monkeypatch.setenv("FAKE_REFUSE", "train.accelerator=gpu: no CUDA device is visible")
    monkeypatch.setenv("FAKE_REFUSE_S", "0.3")  # a real refusal takes seconds (imports): not instant
    monkeypatch.setattr(coordinator, "PROGRESS_S", 0.0)
    # Six seeds: the second arm's refusals leave the coordinator five trials' time to notice (with three,
    # a loaded machine let the one worker finish them all first, once in four full runs).
    path, runs = ablation_file(tmp_path, seeds=[0, 1, 2, 3, 4, 5]), tmp_path / "runs"
    with pytest.raises(S2SError, match=r"every trial is refused the same way.*no CUDA device is visible$"):
        run_sweep(SweepLaunch(path, runs_dir=runs, train_command=train, poll_s=0.05))
    assert 7 <= len(executions()) < 12  # stopped once two arms were refused, not after all twelve trials


def test_dry_run_checks_the_runs_folder_can_be_written(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(S2SError, match="is not writable"):
        status.dry_run(ablation_file(tmp_path), "full", blocker / "runs")
    assert "nothing started" in status.dry_run(ablation_file(tmp_path), "full", tmp_path / "new" / "runs")
    assert not (tmp_path / "new").exists()


@pytest.mark.integration
def test_the_seed_param_offers_only_the_plans_seeds(tmp_path, fake):
    """The tuning seed was a choice of every grid trial's `seed` param, so the Optuna dashboard offered a
    seed no trial used."""
    train, _ = fake
    path, runs = ablation_file(tmp_path, seeds=[3, 4]), tmp_path / "runs"
    run_sweep(SweepLaunch(path, runs_dir=runs, train_command=train, poll_s=0.05))
    study = optuna.load_study(study_name="small", storage=open_storage(None, runs))
    assert {tuple(t.distributions[SEED].choices) for t in study.trials} == {(3, 4)}
