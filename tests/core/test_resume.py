"""A resumed run is the run it continues: interrupted anywhere (SIGTERM or SIGKILL) and resumed, it has the
uninterrupted run's history, best weights and test metrics (CPU, deterministic)."""

import json
import os
import resource
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from s2s_lightning import metrics as M
from s2s_lightning.checkpoint import load_state_dict, read_checkpoint
from s2s_lightning.records import read_history
from s2s_lightning.train import train
from tests.conftest import REPO, TINY

# Every source of randomness in play: dropout, scheduled sampling's draws, the shuffled buckets.
CFG = {
    **TINY,
    "data.addition.train_size": 96,
    "data.batch_size": 16,
    "model.num_layers": 2,
    "model.dropout": 0.3,
    "train.lr": 0.02,
    "train.teacher_forcing_ratio": 0.5,
    "train.max_epochs": 4,
}
# The columns that say how long something took, not what was computed.
TIMING = {M.EPOCH_S, M.TRAIN_TOKENS_PER_S, M.VAL_DECODE_SHARE}

# A child process that trains CFG in RUN and sends itself SIG at one point of the run: a callback the
# test adds to the trainer train() builds (the run's own code is unchanged).
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import pytorch_lightning as pl
    from s2s_lightning import train as T
    from s2s_lightning.config import build_config

    run_dir, where, sig = sys.argv[1], sys.argv[2], sys.argv[5]
    epoch, batch = int(sys.argv[3]), int(sys.argv[4])
    cfg = build_config({}, dict(a.split("=", 1) for a in sys.argv[6:]))

    class Kill(pl.Callback):
        def _maybe(self, trainer, hook, batch_idx=0):
            if hook == where and epoch in (trainer.current_epoch, -1) and batch_idx == batch:
                os.kill(os.getpid(), getattr(signal, sig))

        def on_train_batch_start(self, trainer, module, b, i):
            self._maybe(trainer, "train", i)

        def on_validation_batch_start(self, trainer, module, b, i, dl=0):
            self._maybe(trainer, "val", i)

        def on_train_epoch_start(self, trainer, module):
            self._maybe(trainer, "epoch_start")

        def on_test_batch_start(self, trainer, module, b, i, dl=0):
            self._maybe(trainer, "test", i)

    make = T.make_trainer
    T.make_trainer = lambda cfg, run_dir, callbacks: make(cfg, run_dir, [*callbacks, Kill()])
    args = T.argparse.Namespace(resume=False, run_dir=run_dir, config=None, overrides=sys.argv[6:], axis=[])
    sys.exit(T.run_train(args))
    """
)
# Where a run is interrupted: (hook, epoch, batch). Epoch 2 of 4: 6 training batches, 1 validation batch.
POINTS = {
    "after-an-epoch": ("epoch_start", 2, 0),
    "mid-epoch": ("train", 2, 3),
    "in-validation": ("val", 2, 0),
    "in-the-final-test": ("test", -1, 0),  # any epoch
}


def _overrides() -> list[str]:
    return [f"{k}={v}" for k, v in CFG.items()]


def _s2s(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "s2s_lightning", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def _outcome(run_dir) -> dict:
    """What a run computed: history without timings, test metrics, best weights."""
    record = json.loads((run_dir / "record.json").read_text())
    history = [
        {k: v for k, v in row.items() if k not in TIMING} for row in read_history(run_dir / "history.csv")
    ]
    best = torch.load(run_dir / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    return {
        "status": record["status"],
        "history": history,
        "test": {k: v for k, v in record["metrics"].items() if k.startswith("test/")},
        "best": best["state_dict"],
        "best_epoch": best["epoch"],
    }


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run = tmp_path_factory.mktemp("straight") / "run"
    out = _s2s("train", "--run-dir", run, *_overrides())
    assert out.returncode == 0, out.stderr[-2000:]
    return _outcome(run)


@pytest.mark.integration
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGKILL"])
@pytest.mark.parametrize("point", list(POINTS))
def test_a_resumed_run_equals_the_uninterrupted_one(tmp_path, uninterrupted, point, sig):
    run = tmp_path / "run"
    hook, epoch, batch = POINTS[point]
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(run), hook, str(epoch), str(batch), sig, *_overrides()],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    expected_code = 143 if sig == "SIGTERM" else -signal.SIGKILL
    assert child.returncode == expected_code, child.stderr[-2000:]
    assert "Traceback" not in child.stderr
    resumed = _s2s("train", "--run-dir", run, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    got = _outcome(run)
    assert got["history"] == uninterrupted["history"]
    assert got["test"] == uninterrupted["test"]
    assert got["best_epoch"] == uninterrupted["best_epoch"]
    for key, weights in uninterrupted["best"].items():
        assert torch.equal(got["best"][key], weights), key
    assert got["status"] == "completed"


def test_last_checkpoint_is_the_last_epoch_when_it_is_not_the_best(tmp_path, tiny_cfg):
    """Lightning 2.6's save_last wrote last.ckpt only when validation improved: here it stayed at epoch 3
    while the run trained 6, so a resume retrained epochs 4 to 6 and `--checkpoint last` scored epoch 3."""
    overfits = {"data.addition.train_size": 40, "model.hidden_dim": 32, "train.lr": 0.1}
    train(tiny_cfg(**overfits, **{"train.max_epochs": 6}), tmp_path)
    history = read_history(tmp_path / "history.csv")
    best_epoch = min(history, key=lambda r: r[M.VAL_PPL])["epoch"]
    assert best_epoch < 5  # the premise: the run got worse after its best epoch
    last = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert (
        last["epoch"] == 5 and read_checkpoint(tmp_path / "checkpoints" / "best.ckpt")["epoch"] == best_epoch
    )
    best_weights = load_state_dict(tmp_path / "checkpoints" / "best.ckpt")["model.decoder.out.weight"]
    assert not torch.equal(last["state_dict"]["model.decoder.out.weight"], best_weights)
    # Trained one epoch further, the earlier rows are kept as they were.
    record = train(tiny_cfg(**overfits, **{"train.max_epochs": 7}), tmp_path, resume=True)
    assert record["epochs_completed"] == 7
    assert read_history(tmp_path / "history.csv")[:6] == history


@pytest.mark.integration
def test_resume_with_max_epochs_at_or_below_the_epochs_trained_is_refused(tmp_path):
    """Resumed with train.max_epochs=1 after 2 epochs, the run failed with Lightning's raw
    MisconfigurationException, turned `failed` and kept max_epochs=1 in config.yaml."""
    run = tmp_path / "run"
    hook, epoch, batch = POINTS["after-an-epoch"]
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(run), hook, str(epoch), str(batch), "SIGTERM", *_overrides()],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert child.returncode == 143, child.stderr[-2000:]
    files = {name: (run / name).read_bytes() for name in ("record.json", "config.yaml", "history.csv")}
    for asked in (1, 2):  # below, and at, the 2 epochs trained (of 4)
        out = _s2s("train", "--run-dir", run, "--resume", f"train.max_epochs={asked}")
        assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
        assert (
            f"cannot resume {run} with train.max_epochs={asked}: it has trained 2 epochs already (of 4)"
            in out.stderr
        )
        assert {name: (run / name).read_bytes() for name in files} == files
    out = _s2s("train", "--run-dir", run, "--resume")
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads((run / "record.json").read_text())["epochs_completed"] == 4


def _mount_tmpfs(where, size: str) -> bool:
    where.mkdir()
    if sys.platform != "linux" or os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)]).returncode == 0


def _file_size_limit(limit: int):
    def limit_files():  # in the child: writes past `limit` bytes fail with EFBIG instead of killing it
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limit_files


@pytest.mark.integration
@pytest.mark.parametrize("fault", ["full-tmpfs", "file-size-limit"])
def test_a_full_disk_fails_the_run_in_one_line_and_keeps_the_last_good_checkpoint(tmp_path, fault):
    """On a full 2 MiB tmpfs a run left a truncated last.ckpt under its real name (then refused as
    corrupted by --resume), a record saying `running`, and ~60 lines of logging tracebacks from W&B."""
    disk = tmp_path / "disk"
    limit = None
    if fault == "full-tmpfs":
        # Two 1.8 MB checkpoints fit, a third copy (the next epoch's, beside the two) does not.
        if not _mount_tmpfs(disk, "5m"):
            pytest.skip("cannot mount a tmpfs here (not root, or no mount permission)")
    else:
        disk.mkdir()
        limit = _file_size_limit(1_000_000)  # below one checkpoint: the first one fails
    run = disk / "run"
    args = [*(f"{k}={v}" for k, v in {**CFG, "model.hidden_dim": 128, "model.num_layers": 1}.items())]
    try:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "s2s_lightning",
                "train",
                "--run-dir",
                str(run),
                *args,
                "tracking.wandb=offline",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=REPO,
            preexec_fn=limit,
        )
        assert out.returncode == 1, out.stderr[-3000:]
        assert "Traceback" not in out.stderr and "Logging error" not in out.stderr, out.stderr[-3000:]
        error = out.stderr.strip().splitlines()[-1]
        assert error.startswith("s2s: error: could not write checkpoint ") and "MiB free" in error, error
        record = json.loads((run / "record.json").read_text())
        assert record["status"] == "failed" and record["error"] == error.removeprefix("s2s: error: ")
        assert not [p for p in run.rglob("*.tmp")]  # no half-written file left behind
        kept = sorted(p.name for p in (run / "checkpoints").glob("*.ckpt"))
        for name in kept:
            read_checkpoint(run / "checkpoints" / name)  # whole, or not there at all
        if fault == "full-tmpfs":
            assert (
                kept == ["best.ckpt", "last.ckpt"]
                and read_checkpoint(run / "checkpoints" / "last.ckpt")["epoch"] == 0
            )
    finally:
        if fault == "full-tmpfs":
            subprocess.run(["umount", str(disk)])
