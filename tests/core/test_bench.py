"""The benchmark commands run and print what they claim (their numbers go in notes, not in tests)."""

from __future__ import annotations

import os
import re
import sys

import pytest
import torch

from s2s_lightning import bench
from s2s_lightning.config import build_config
from s2s_lightning.data import DataBundle
from s2s_lightning.errors import S2SError

TINY = [
    "data.addition.train_size=400",
    "data.addition.val_size=10",
    "data.addition.test_size=10",
    "data.batch_size=32",
    "model.hidden_dim=8",
    "model.embedding_dim=8",
]


def test_bucketed_batches_pad_less_than_random_ones():
    cfg = build_config({}, TINY)
    bundle = DataBundle(cfg)
    cpu = torch.device("cpu")
    bucketed = bench.measure(cfg, bundle, True, steps=4, warmup=0, device=cpu)
    random = bench.measure(cfg, bundle, False, steps=4, warmup=0, device=cpu)
    assert 0 <= bucketed["padding"] < random["padding"] < 1
    assert bucketed["tokens_per_s"] > 0 and bucketed["peak_mb"] is None  # CPU: RSS is printed once


def test_s2s_bench_compares_random_batches_and_one_sentence_at_a_time(capsys):
    """The comparisons bench_train and bench_search used to make, now options of the one `s2s bench`:
    bucketed vs random training batches, batched vs one-at-a-time decoding, the decoder step per row."""
    from s2s_lightning.cli import main as s2s

    args = ["bench", "--steps", "2", "--warmup", "1", "--sentences", "12", "--threads", "1"]
    tiny = ["data.addition.train_size=300", "data.addition.val_size=40", "data.addition.test_size=40"]
    assert s2s([*args, "--random-batches", "--one-at-a-time", "3", *tiny, "model.hidden_dim=8"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line[:20].strip() for line in lines[2:5]] == ["train tf1", "train tf0.5", "train random"]
    speedups = [
        line for line in lines if "x" in line.split(": ")[-1] and ("speed-up" in line or "batched" in line)
    ]
    assert len(speedups) == 3  # bucketing, greedy, beam 12
    assert all(float(line.split()[-1 if "speed-up" in line else 3].rstrip("x")) > 0 for line in speedups)
    step = next(line for line in lines if line.startswith("decoder step alone"))
    assert "at 12 rows" in step and "at 768 rows" in step and float(step.split(": ")[-1].rstrip("x")) > 0
    assert s2s([*args, "--one-at-a-time", "-1", *tiny]) == 2
    assert "--one-at-a-time must be at least 0" in capsys.readouterr().err


def test_one_at_a_time_subset_spans_the_length_range():
    assert bench.evenly_spaced(list(range(10)), 5) == [0, 2, 4, 6, 8]
    assert bench.evenly_spaced([1, 2], 5) == [1, 2]
    assert bench.evenly_spaced(list(range(7)), 1) == [0]


def test_the_device_is_parsed_in_one_place():
    """`s2s bench --device` and `s2s evaluate|translate --device` read a device the same way."""
    from s2s_lightning.environment import parse_device

    assert parse_device("cpu") == torch.device("cpu")
    assert parse_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(S2SError, match="unknown device 'gpu0'"):
        parse_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(S2SError, match="--device cuda:1: no CUDA device is visible"):
            parse_device("cuda:1")


def test_s2s_bench_prints_every_throughput_with_its_unit(capsys):
    import json

    from s2s_lightning.cli import main as s2s

    args = ["bench", "--steps", "2", "--warmup", "1", "--sentences", "16", "--threads", "1", "--json"]
    tiny = ["data.addition.train_size=300", "data.addition.val_size=40", "data.addition.test_size=40"]
    assert s2s([*args, *tiny, "model.hidden_dim=8"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["train"]) == {"tf1", "tf0.5"} and set(out["decode"]) == {"greedy", "beam12"}
    for r in [*out["train"].values(), *out["decode"].values()]:
        assert r["src_tokens_per_s"] > 0 and r["tgt_tokens_per_s"] > 0 and r["sentences_per_s"] > 0
    assert 0 <= out["train"]["tf1"]["padding"] < 1 and out["peak_memory_mb"] > 0


def test_s2s_bench_profiles_training_and_runs_mixed_precision(capsys, tmp_path):
    """--profile names the ops that took the training steps' time; train.precision=bf16-mixed is
    measured under autocast, as Lightning trains it, or refused in one line where the CPU has no bf16
    LSTM kernel (this project's 2-core machine has none), by bench and train alike, leaving no run."""
    import json

    from s2s_lightning.cli import main as s2s
    from s2s_lightning.errors import S2SError
    from s2s_lightning.model import check_precision

    args = ["bench", "--steps", "2", "--warmup", "1", "--sentences", "8", "--threads", "1"]
    tiny = ["data.addition.train_size=300", "data.addition.val_size=40", "data.addition.test_size=40"]
    assert s2s([*args, "--profile", *tiny, "model.hidden_dim=8"]) == 0
    text = capsys.readouterr().out
    assert "training steps profiled (teacher forcing 1), by self CPU time:" in text
    rows = text.split("by self CPU time:\n")[1].splitlines()[1:]
    assert len(rows) >= 5  # which op leads depends on size and load (data loading at this tiny size)
    for row in rows:  # op name, calls, ms per step, share
        *_, calls, ms, share = row.split()
        assert int(calls) > 0 and float(ms) >= 0 and share.endswith("%")
    assert s2s([*args, "--json", "--profile", *tiny, "model.hidden_dim=8"]) == 0
    shares = [r["share"] for r in json.loads(capsys.readouterr().out)["profile"]]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1.0001

    try:
        check_precision("bf16-mixed", "cpu")
        supported = True
    except S2SError:
        supported = False
    bf16 = [*tiny, "model.hidden_dim=8", "train.precision=bf16-mixed"]
    code = s2s([*args, "--json", *bf16])
    if supported:
        out = json.loads(capsys.readouterr().out)
        assert (
            code == 0
            and out["config"]["precision"] == "bf16-mixed"
            and out["train"]["tf1"]["tgt_tokens_per_s"] > 0
        )
    else:
        message = "train.precision=bf16-mixed: this CPU cannot run an LSTM in bfloat16"
        assert code == 2 and message in capsys.readouterr().err
        run = tmp_path / "run"
        assert s2s(["train", "--run-dir", str(run), *bf16, "train.max_epochs=1"]) == 2
        assert message in capsys.readouterr().err and not run.exists()


NO_WANDB = """
import sys
class _NoWandb:
    def find_spec(self, name, path=None, target=None):
        if name == "wandb" or name.startswith("wandb."):
            raise ImportError("No module named 'wandb' (this node has none)")
sys.meta_path.insert(0, _NoWandb())
"""


@pytest.mark.integration
def test_the_acceptance_run_dry_runs_on_cpu_without_wandb(tmp_path):
    """sweeps/gpu/measure.sh --dry-run: every step of the GPU acceptance run on the CPU at tiny sizes, on a
    Python where `import wandb` fails (an air-gapped node without it); every step passes, and the summary
    and the records tarball (no checkpoints) are written."""
    import subprocess
    import tarfile

    from tests.conftest import MULTI30K, REPO

    if not (MULTI30K / "train.de.gz").is_file():
        pytest.skip(f"no local Multi30k copy at {MULTI30K}")
    blocker = tmp_path / "site"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(NO_WANDB)
    env = {
        **os.environ,
        "PYTHONPATH": str(blocker),
        "S2S_MULTI30K_DIR": str(MULTI30K),
        "PYTHON": sys.executable,
    }
    out = tmp_path / "out"
    proc = subprocess.run(
        ["bash", str(REPO / "sweeps" / "gpu" / "measure.sh"), str(out), "--dry-run"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    summary = (out / "summary.txt").read_text()
    assert proc.returncode == 0, summary + proc.stderr[-2000:]
    names = [line.split()[0] for line in summary.splitlines() if not line.startswith("#")]
    assert names == [
        "env",
        "tests",
        "bench-fp32",
        "bench-tf32",
        "bench-bf16",
        "ppl-32",
        "ppl-bf16",
        "packed-1",
        "packed-2",
        "ddp",
        "study",
    ]
    assert all(line.split()[1] == "ok" for line in summary.splitlines() if not line.startswith("#")), summary
    assert "tok/s" in summary and "val ppl" in summary and "runs completed 2" in summary
    # The packed trials train the tutorial's task (its overrides were once swallowed, and they trained
    # addition at ~25x the bench's tokens/s): translation, a Multi30k batch's tokens per step.
    packs = [line for line in summary.splitlines() if line.startswith("packed-")]
    assert packs and all("task translation" in line for line in packs), summary
    per_step = [float(re.search(r"tok/step ([\d,.]+)", line).group(1).replace(",", "")) for line in packs]
    assert all(n > 1000 for n in per_step), per_step  # 128 sentences of ~13 words (addition: ~5 tokens)
    total = re.search(r"# total (\d+) s of a (\d+) s budget", summary)
    assert int(total.group(1)) <= int(total.group(2))
    with tarfile.open(out / "records.tar.gz") as tar:
        members = tar.getnames()
    assert "summary.txt" in members and any(m.endswith("record.json") for m in members)
    assert not any(m.endswith(".ckpt") for m in members)


def test_the_wheelhouse_holds_what_a_pytorch_node_lacks():
    """`make wheelhouse` downloads NODE_NEEDS: the project's dependencies and theirs, minus what a node with
    torch, Lightning, pandas, seaborn and sacrebleu has already, minus W&B and the dashboard (optional
    there) and the report's own (scipy, adjustText: reports are built off the node, from its records).
    A dependency added to pyproject.toml without its wheel fails here."""
    import re
    from importlib import metadata

    from packaging.markers import default_environment
    from packaging.requirements import Requirement

    from tests.conftest import REPO

    def norm(name):
        return re.sub(r"[-_.]+", "-", name).lower()

    def closure(names):
        seen, todo = set(), [norm(n) for n in names]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            for text in metadata.requires(name) or []:
                req = Requirement(text)
                if req.marker is None or req.marker.evaluate({**default_environment(), "extra": ""}):
                    todo.append(norm(req.name))
        return seen

    project = [norm(Requirement(r).name) for r in metadata.requires("s2s-lightning") if "extra ==" not in r]
    node = closure(["torch", "pytorch-lightning", "pandas", "seaborn", "sacrebleu"])
    off_node = ("wandb", "optuna-dashboard", "scipy", "adjusttext")
    needed = closure([n for n in project if n not in off_node]) - node
    makefile = (REPO / "Makefile").read_text().replace("\\\n", " ")
    listed = re.search(r"^NODE_NEEDS := (.*)$", makefile, re.M).group(1).split()
    tests = re.search(r"^NODE_TEST_NEEDS := (.*)$", makefile, re.M).group(1).split()
    assert "$(NODE_TEST_NEEDS)" in listed  # the acceptance run's tests step needs pytest on the node
    assert sorted(set(listed) - {"$(NODE_TEST_NEEDS)"}) == sorted(needed)
    assert sorted(tests) == sorted(closure(["pytest"]) - node)
