"""End to end: `s2s train` writes a complete run record; faults leave a readable one."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from s2s_lightning import metrics as M
from s2s_lightning.config import build_config
from s2s_lightning.errors import S2SError
from s2s_lightning.train import train
from tests.conftest import REPO, TINY

RECORD_KEYS = {
    "status",
    "metrics",
    "num_parameters",
    "wall_time_s",
    "peak_memory_mb",
    "device",
    "versions",
    "git_commit",
    "axes",
    "seed",
    "task",
}


def s2s(*args, env=None, timeout=300):
    """Run the CLI; env values of None remove the variable."""
    full = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "s2s_lightning", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={k: v for k, v in full.items() if v is not None},
    )


def overrides(d):
    return [f"{k}={v}" for k, v in d.items()]


def test_addition_run_writes_a_complete_record(tmp_path, tiny_cfg):
    cfg = tiny_cfg(**{"train.max_epochs": 2, "data.reverse_source": True, "model.peeky": True})
    record = train(cfg, tmp_path)
    assert record["status"] == "completed"
    saved = json.loads((tmp_path / "record.json").read_text())
    assert RECORD_KEYS <= set(saved) and saved["num_parameters"] > 0 and saved["peak_memory_mb"] > 0
    assert saved["git_dirty"] in (True, False, None)  # None outside a git checkout
    for name in (M.VAL_PPL, M.TEST_PPL, M.TEST_EXACT_MATCH, M.TEST_TOKEN_ACC):
        assert name in saved["metrics"], name
    assert saved["axes"] == {
        "model.num_layers": 1,
        "data.reverse_source": True,
        "model.peeky": True,
        "train.teacher_forcing_ratio": 1.0,
    }
    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == cfg.to_dict()
    rows = list(csv.DictReader(open(tmp_path / "history.csv")))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    for column in ("train/loss", "val/ppl", "val/exact_match", "lr", "train/tokens_per_s"):
        assert float(rows[-1][column]) >= 0, column
    lines = [(tmp_path / f"test.{k}.txt").read_text().splitlines() for k in ("src", "ref", "hyp")]
    assert len(lines[0]) == len(lines[1]) == len(lines[2]) == 40
    exact = sum(h == r for h, r in zip(lines[2], lines[1])) / 40
    assert saved["metrics"][M.TEST_EXACT_MATCH] == pytest.approx(exact)
    assert (tmp_path / "checkpoints" / "best.ckpt").is_file() and (
        tmp_path / "checkpoints" / "last.ckpt"
    ).is_file()
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_multi30k_run_writes_a_complete_record(tmp_path, tiny_multi30k_cfg):
    record = train(tiny_multi30k_cfg(), tmp_path)
    assert record["status"] == "completed" and record["task"] == "translation"
    assert M.TEST_BLEU in record["metrics"] and record["bleu_signature"].startswith("nrefs:1")
    refs = (tmp_path / "test.ref.txt").read_text().splitlines()
    assert len(refs) == 30 and refs[0].startswith("A man in an orange hat")


def test_scheduled_sampling_run(tmp_path, tiny_cfg):
    cfg = tiny_cfg(
        **{
            "train.teacher_forcing_ratio": 0.5,
            "train.teacher_forcing_schedule": "linear",
            "train.max_epochs": 2,
        }
    )
    train(cfg, tmp_path)
    rows = list(csv.DictReader(open(tmp_path / "history.csv")))
    assert [float(r[M.TEACHER_FORCING]) for r in rows] == [0.5, 0.0]


@pytest.mark.integration
def test_wandb_offline_run_is_readable(tmp_path):
    out = s2s(
        "train",
        "--run-dir",
        str(tmp_path),
        *overrides({**TINY, "tracking.wandb": "offline", "tracking.group": "g1", "tracking.tags": "[t1]"}),
        env={"WANDB_MODE": None, "WANDB_API_KEY": None},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["wandb"]["mode"] == "offline" and record["wandb"]["group"] == "g1"
    files = list(tmp_path.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1
    wandb_bin = os.path.join(os.path.dirname(sys.executable), "wandb")
    inspect = subprocess.run(
        [wandb_bin, "leet", "inspect", "--summary", "--json", str(files[0])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert inspect.returncode == 0, inspect.stderr
    flat = json.dumps(json.loads(inspect.stdout))
    assert M.TEST_EXACT_MATCH in flat and "hidden_dim" in flat and record["wandb"]["id"] in flat
    data = json.loads(inspect.stdout)
    summary = data.get("summary") or {}
    assert summary.get("axes") == record["axes"]  # what `s2s report --wandb` names arms by
    assert summary[M.TEST_EXACT_MATCH] == record["metrics"][M.TEST_EXACT_MATCH]
    # Tables, offline too (synced later): the sample translations of the validation, the final by-length.
    assert summary["val/samples"]["_type"] == "table-file" and summary["test/by_length"]["nrows"] >= 1
    found = files[0].parent.glob("files/media/table/*/*.table.json")  # e.g. val/samples_0_<hash>.table.json
    tables = {p.parent.name + "/" + p.name.rsplit("_", 2)[0]: p for p in found}
    samples = json.loads(tables["val/samples"].read_text())
    assert samples["columns"] == ["epoch", "source", "reference", "hypothesis"] and len(samples["data"]) == 10
    assert all(row[0] == 1 and "+" in row[1] for row in samples["data"])  # epoch 1: addition questions
    by_length = json.loads(tables["test/by_length"].read_text())
    analysis = json.loads((tmp_path / "analysis.json").read_text())
    assert by_length["data"] == [
        [b["min_len"], b["max_len"], b["n"], b["score"]] for b in analysis["by_length"]
    ]


def test_final_wandb_tables_hold_a_translation_runs_scores_by_length_and_word_f(tmp_path):
    import shutil
    from collections import Counter

    from s2s_lightning.analysis import run_word_f
    from s2s_lightning.records import read_lines, write_counts
    from s2s_lightning.wandb_logging import log_final_tables

    run = tmp_path / "run"
    shutil.copytree(REPO / "tests" / "fixtures" / "records" / "translation" / "fwd-s0", run)
    for kind in ("hyp", "ref"):  # the tokenized files and training counts a real run writes
        (run / f"test.{kind}.tok.txt").write_text((run / f"test.{kind}.txt").read_text())
    words = Counter(w for line in read_lines(run / "test.ref.txt") for w in line.split())
    write_counts(run, words, words)

    class Logger:
        tables: dict = {}

        def log_table(self, key, columns, data, step=None):
            self.tables[key] = (columns, data)

    logger = Logger()
    log_final_tables(logger, run)
    columns, rows = logger.tables["test/by_length"]
    analysis = json.loads((run / "analysis.json").read_text())
    assert columns == ["min_len", "max_len", "n", "score"] and len(rows) == len(analysis["by_length"])
    columns, rows = logger.tables["test/word_f"]
    expected = run_word_f(run)
    assert rows == [[r[c] for c in columns] for r in expected] and "f" in columns and len(rows) > 1


@pytest.mark.integration
def test_divergence_is_recorded_as_failed(tmp_path):
    out = s2s(
        "train",
        "--run-dir",
        str(tmp_path),
        *overrides({**TINY, "train.optimizer": "sgd", "train.lr": 1e38, "train.grad_clip": "null"}),
    )
    assert out.returncode == 1
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["status"] == "failed" and "diverged" in record["error"]
    assert "Traceback" not in out.stderr


def test_same_seed_same_metrics(tmp_path, tiny_cfg):
    a = train(tiny_cfg(), tmp_path / "a")
    b = train(tiny_cfg(), tmp_path / "b")
    assert a["metrics"] == b["metrics"]
    c = train(tiny_cfg(seed=1), tmp_path / "c")
    assert c["metrics"] != a["metrics"]


def test_existing_run_needs_resume_and_matching_config(tmp_path, tiny_cfg):
    train(tiny_cfg(), tmp_path)
    with pytest.raises(S2SError, match="already holds a run"):
        train(tiny_cfg(), tmp_path)
    with pytest.raises(
        S2SError, match="another model.hidden_dim: 7 -> 9; a resume may change only train.max_epochs"
    ):
        train(tiny_cfg(**{"model.hidden_dim": 9}), tmp_path, resume=True)


def test_resume_continues_from_last_checkpoint(tmp_path, tiny_cfg):
    train(tiny_cfg(**{"train.max_epochs": 2}), tmp_path)
    history = (tmp_path / "history.csv").read_text()
    record = train(tiny_cfg(**{"train.max_epochs": 2}), tmp_path, resume=True)  # nothing left to do
    assert record["status"] == "completed" and (tmp_path / "history.csv").read_text() == history


def test_corrupted_checkpoint_is_a_clear_error(tmp_path, tiny_cfg):
    train(tiny_cfg(), tmp_path)
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(S2SError, match="last.ckpt is corrupted"):
        train(tiny_cfg(), tmp_path, resume=True)


@pytest.mark.integration
def test_unwritable_run_dir_fails_before_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = s2s("train", "--run-dir", str(blocker / "run"), *overrides(TINY))
    assert out.returncode == 2 and "not writable" in out.stderr and "Traceback" not in out.stderr


SLURM_JOB = {
    "SLURM_NTASKS": "1",
    "SLURM_JOB_NAME": "s2s",
    "SLURM_JOB_ID": "1",
    "SLURM_PROCID": "0",
    "SLURM_LOCALID": "0",
    "SLURM_NODEID": "0",
}


@pytest.mark.integration
@pytest.mark.parametrize("strategy, env", [("ddp_spawn", {}), ("ddp", {}), ("ddp", SLURM_JOB)], ids=str)
def test_ddp_metrics_equal_single_process_recomputation(tmp_path, strategy, env):
    """Two CPU ranks from the CLI: perplexity sums NLL and tokens across ranks, so the recorded test
    perplexity equals recomputing it in one process from the best checkpoint. With `ddp`, Lightning runs
    the command again for rank 1, which joins the training instead of refusing rank 0's run directory.
    The learning-rate schedule counts each rank's share of the epoch (its `lr` column equals a
    one-process run's with the same global batch), and inside a SLURM job the run still starts its own
    two ranks (Lightning would otherwise take one rank from SLURM_NTASKS)."""
    import math

    import torch

    from s2s_lightning.checkpoint import load_into
    from s2s_lightning.config import load_config
    from s2s_lightning.data import DataBundle
    from s2s_lightning.model import Seq2Seq
    from s2s_lightning.system import masked_nll
    from s2s_lightning.text import read_vocabs

    schedule = {
        "train.optimizer": "sgd",
        "train.lr": 0.5,
        "train.lr_decay_start_epoch": 1,
        "train.lr_decay_every": 1,
        "train.max_epochs": 2,
    }
    ddp = {
        **TINY,
        **schedule,
        "data.addition.train_size": 256,
        "train.strategy": strategy,
        "train.devices": 2,
        "train.accelerator": "cpu",
    }
    out = s2s("train", "--run-dir", str(tmp_path), *overrides(ddp), env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["numerics"]["world_size"] == 2
    # `ddp` keeps its ranks joined after fitting: they split the test set's decoding (rank 0 decoded it
    # alone before); `ddp_spawn`'s ranks are gone by then, so its parent decodes it.
    assert record["numerics"]["test_decoded_by"] == (2 if strategy == "ddp" else 1)
    one = {**TINY, **schedule, "data.addition.train_size": 256, "data.batch_size": 64}
    single = train(build_config({}, one), tmp_path / "single")
    lr = [float(r["lr"]) for r in csv.DictReader(open(tmp_path / "history.csv"))]
    assert lr == [float(r["lr"]) for r in csv.DictReader(open(tmp_path / "single" / "history.csv"))]
    assert lr == [0.25, 0.125] and single["numerics"]["world_size"] == 1
    cfg = load_config(tmp_path / "config.yaml")
    bundle = DataBundle(cfg, *read_vocabs(tmp_path))
    model = Seq2Seq(len(bundle.src_vocab), len(bundle.tgt_vocab), cfg.model).eval()
    load_into(model, tmp_path / "checkpoints" / "best.ckpt")
    nll = tokens = 0.0
    with torch.no_grad():
        for batch in bundle.loader("test"):
            n, t, _ = masked_nll(model(batch.src, batch.src_len, batch.tgt_in), batch.tgt_out)
            nll, tokens = nll + float(n), tokens + float(t)
    assert record["metrics"][M.TEST_PPL] == pytest.approx(math.exp(nll / tokens), rel=1e-4)
    rows = list(csv.DictReader(open(tmp_path / "history.csv")))
    assert int(rows[0]["step"]) == 4  # 256 examples / 32 per batch / 2 ranks
    # The decoded test set is the whole one, in order, whoever decoded it: the same hypotheses as one
    # process decoding the best checkpoint.
    from s2s_lightning.evaluation import decode_split

    hyps = [bundle.codec.detokenize(h) for h in decode_split([model], bundle, "test", cfg.eval)]
    assert (tmp_path / "test.hyp.txt").read_text().splitlines() == hyps
    log = out.stdout + out.stderr
    assert "GLOBAL_RANK: 1" in log and "sync_dist" not in log  # metrics are reduced already: no advice


@pytest.mark.parametrize(
    "configured, env, expected",
    [
        ("disabled", "offline", "disabled"),
        ("auto", "offline", "offline"),
        ("auto", "disabled", "disabled"),
        ("online", "offline", "offline"),
        ("offline", "online", "offline"),
        ("offline", None, "offline"),
    ],
)
def test_wandb_mode_precedence(configured, env, expected, monkeypatch):
    from s2s_lightning.wandb_logging import wandb_mode

    if env is None:
        monkeypatch.delenv("WANDB_MODE", raising=False)
    else:
        monkeypatch.setenv("WANDB_MODE", env)
    assert wandb_mode(build_config({}, {"tracking.wandb": configured})) == expected


@pytest.mark.gpu
def test_cuda_run_completes_and_records_the_gpu(tmp_path, tiny_cfg):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    cfg = tiny_cfg(
        **{
            "train.accelerator": "gpu",
            "train.max_epochs": 2,
            "data.reverse_source": True,
            "model.peeky": True,
            "train.teacher_forcing_ratio": 0.5,
        }
    )  # both decoder paths on CUDA
    record = train(cfg, tmp_path)
    assert record["status"] == "completed", record["error"]
    assert record["device"] == torch.cuda.get_device_name(0) and record["peak_memory_mb"] > 0
    assert M.TEST_EXACT_MATCH in record["metrics"]


# --- true statuses, resume, one writer ---------------------------------------------------------------
LONG = {**TINY, "train.max_epochs": 400}  # seconds of training: long enough to be interrupted


def start_long_run(run_dir) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "s2s_lightning", "train", "--run-dir", str(run_dir), *overrides(LONG)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not (run_dir / "history.csv").is_file():  # an epoch is done: it is training
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[1][-2000:]
        time.sleep(0.2)
    return proc


@pytest.mark.integration
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_run_says_so_and_resumes(tmp_path, sig, code):
    run = tmp_path / "run"
    proc = start_long_run(run)
    second = s2s("train", "--run-dir", run, "--resume", timeout=120)  # one writer per run directory
    assert second.returncode == 2 and "is being written by another process" in second.stderr
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    record = json.loads((run / "record.json").read_text())
    assert proc.returncode == code, err[-2000:]
    assert record["status"] == "interrupted" and record["error"] == f"interrupted by {sig.name}"
    assert err.strip().splitlines()[-1] == (
        f"s2s: interrupted by {sig.name}; the run is kept: continue it with s2s train --run-dir {run} "
        "--resume"
    )
    done = record["epochs_completed"]
    out = s2s("train", "--run-dir", run, "--resume", f"train.max_epochs={done + 1}", timeout=300)
    record = json.loads((run / "record.json").read_text())
    assert out.returncode == 0 and record["status"] == "completed" and record["epochs_completed"] == done + 1


@pytest.mark.integration
def test_resume_reads_the_runs_own_config_and_can_train_further(tmp_path):
    run = tmp_path / "run"
    assert s2s("train", "--run-dir", run, *overrides(TINY)).returncode == 0
    out = s2s("train", "--run-dir", run, "--resume", "train.max_epochs=2")  # nothing else given
    record = json.loads((run / "record.json").read_text())
    assert out.returncode == 0 and record["status"] == "completed" and record["epochs_completed"] == 2
    assert [int(r["epoch"]) for r in csv.DictReader(open(run / "history.csv"))] == [0, 1]
    assert (
        yaml.safe_load((run / "config.yaml").read_text())["model"]["hidden_dim"] == TINY["model.hidden_dim"]
    )


@pytest.mark.integration
@pytest.mark.parametrize(
    "args, message",
    [
        (["--resume"], "--resume needs --run-dir"),
        (["--resume", "--run-dir", "nowhere"], "nowhere holds no run to resume"),
        (["--run-dir", "gpu-run", "train.accelerator=gpu"], "train.accelerator=gpu"),
    ],
)
def test_refused_before_a_run_directory_is_claimed(tmp_path, args, message):
    out = subprocess.run(
        [sys.executable, "-m", "s2s_lightning", "train", *args, *overrides(TINY)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    errors = [line for line in out.stderr.splitlines() if line.startswith("s2s: error:")]
    assert out.returncode == 2 and len(errors) == 1 and message in errors[0], out.stderr[-2000:]
    assert "Traceback" not in out.stderr and list(tmp_path.iterdir()) == []  # no run directory left behind


def test_validation_decoding_every_k_epochs_and_its_time_share(tmp_path, tiny_cfg):
    """The BLEU / exact-match curve costs a greedy decode of the val set: history.csv records the
    share of each epoch it took, and eval.val_decode_every=k decodes every k-th epoch and the last."""
    train(tiny_cfg(**{"train.max_epochs": 3, "eval.val_decode_every": 2}), tmp_path)
    rows = list(csv.DictReader(open(tmp_path / "history.csv")))
    decoded = [r[M.VAL_EXACT_MATCH] != "" for r in rows]
    assert decoded == [False, True, True]
    shares = [float(r[M.VAL_DECODE_SHARE]) for r in rows]
    assert shares[0] == 0.0 and all(0.0 < s < 1.0 for s in shares[1:])
    assert all(float(r[M.EPOCH_S]) > 0 and float(r[M.TRAIN_TOKENS_PER_S]) > 0 for r in rows)


def test_threads_default_sanely_and_are_recorded(tmp_path, tiny_cfg, monkeypatch):
    """`s2s train` used every torch thread (one per core): on a shared 2-core machine a 2-epoch run took
    50 s against 7 s with one thread. train.threads=auto takes $OMP_NUM_THREADS (sweeps set it), else
    half the cores, at most 4; the record says how many a run used."""
    import torch

    from s2s_lightning.config import cpu_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert cpu_threads("auto") == 3 and cpu_threads(2) == 2
    monkeypatch.delenv("OMP_NUM_THREADS")
    for cores, threads in ((1, 1), (2, 1), (6, 3), (64, 4)):
        monkeypatch.setattr(os, "cpu_count", lambda c=cores: c)
        assert cpu_threads("auto") == threads
    before = torch.get_num_threads()
    try:
        record = train(tiny_cfg(**{"train.threads": 1}), tmp_path / "run")
    finally:
        torch.set_num_threads(before)
    assert record["numerics"]["threads"] == 1


@pytest.mark.integration
def test_no_progress_bar_in_a_log(tmp_path):
    """train.progress_bar applies on a terminal only: redirected, an epoch wrote 84 KB of carriage-return
    bars into the log, which promises one line per epoch. Nor does Lightning's advice about
    log_every_n_steps leak on small data (4 batches an epoch here)."""
    small = {**TINY, "train.progress_bar": True, "data.addition.train_size": 100}
    out = s2s("train", "--run-dir", str(tmp_path / "run"), *overrides(small))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "\r" not in out.stdout and "it/s" not in out.stdout + out.stderr
    assert "log_every_n_steps" not in out.stdout + out.stderr
    assert "epoch 1/1:" in out.stdout


@pytest.mark.integration
def test_resuming_a_completed_run_changes_nothing(tmp_path):
    """--resume of a completed run re-ran the test, rewrote the record's timestamps and opened a second
    W&B run; it now says there is nothing to do, unless train.max_epochs grows."""
    run = tmp_path / "run"
    assert s2s("train", "--run-dir", str(run), *overrides(TINY)).returncode == 0
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    out = s2s("train", "--run-dir", str(run), "--resume")
    assert out.returncode == 0 and "nothing to do" in out.stdout, out.stdout + out.stderr[-2000:]
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    out = s2s("train", "--run-dir", str(run), "--resume", "train.max_epochs=2")
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads((run / "record.json").read_text())["epochs_completed"] == 2


@pytest.mark.integration
def test_evaluating_a_run_that_is_still_training_is_refused_unless_as_is(tmp_path):
    """`s2s evaluate` of a run in training exited 0, scored an intermediate best.ckpt and wrote
    eval/.../metrics.json into the locked run directory, stale once the run completes. It now names the
    training process; --as-is scores the checkpoint as it is, and metrics.json says which epoch and step
    that checkpoint came from."""
    run = tmp_path / "run"
    proc = start_long_run(run)
    try:
        out = s2s("evaluate", str(run))
        assert out.returncode == 2 and f"still training (pid {proc.pid})" in out.stderr, out.stderr[-2000:]
        assert not (run / "eval").exists()
        out = s2s("translate", str(run), "--beam", "1")
        assert out.returncode == 2 and "--as-is" in out.stderr
        out = s2s("evaluate", str(run), "--as-is")
        assert out.returncode == 0, out.stderr[-2000:]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
    metrics = json.loads((run / "eval" / "test_beam1" / "metrics.json").read_text())
    position = metrics["checkpoint_positions"][0]
    assert position["epoch"] >= 1 and position["step"] >= 1
