"""The benchmark commands run and print what they claim (their numbers go in notes, not in tests)."""

from __future__ import annotations

from s2s_lightning import bench_search, bench_train
from s2s_lightning.config import build_config
from s2s_lightning.data import DataBundle

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
    bucketed = bench_train.measure(cfg, bundle, True, steps=4, warmup=0, device=bench_train.torch.device("cpu"))
    random = bench_train.measure(cfg, bundle, False, steps=4, warmup=0, device=bench_train.torch.device("cpu"))
    assert 0 <= bucketed["padding"] < random["padding"] < 1
    assert bucketed["tokens_per_s"] > 0 and bucketed["peak_mb"] is None  # CPU: RSS is printed once, not per variant


def test_bench_train_prints_a_row_per_batching_and_rejects_bad_config(capsys):
    assert bench_train.main(["--steps", "2", "--warmup", "1", "--threads", "1", *TINY]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()[2:4]] == ["bucketed", "random"]
    assert "bucketing speed-up:" in out and "peak memory (process max RSS):" in out
    assert bench_train.main(["model.num_layers=0"]) == 2
    assert capsys.readouterr().err.startswith("bench_train: error: config key 'model.num_layers'")


def test_bench_search_prints_greedy_and_beam_rows(capsys):
    bench_search.main(
        [
            "--layers",
            "1",
            "--hidden",
            "8",
            "--embedding",
            "8",
            "--vocab",
            "50",
            "--beam",
            "3",
            "--sentences",
            "8",
            "--single",
            "2",
            "--max-len",
            "6",
            "--threads",
            "1",
        ]
    )
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines[2:4]]
    assert [r[0] for r in rows] == ["greedy", "beam"] and all(float(r[-1].rstrip("x")) > 0 for r in rows)
    assert lines[4].startswith("decoder step alone") and "at 3 rows" in lines[4] and "at 192 rows" in lines[4]
    assert float(lines[4].split(": ")[-1].rstrip("x")) > 0


def test_one_at_a_time_subset_spans_the_length_range():
    assert bench_search.evenly_spaced(list(range(10)), 5) == [0, 2, 4, 6, 8]
    assert bench_search.evenly_spaced([1, 2], 5) == [1, 2]
    assert bench_search.evenly_spaced(list(range(7)), 1) == [0]


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
        assert code == 0 and out["config"]["precision"] == "bf16-mixed" and out["train"]["tf1"]["tgt_tokens_per_s"] > 0
    else:
        message = "train.precision=bf16-mixed: this CPU cannot run an LSTM in bfloat16"
        assert code == 2 and message in capsys.readouterr().err
        run = tmp_path / "run"
        assert s2s(["train", "--run-dir", str(run), *bf16, "train.max_epochs=1"]) == 2
        assert message in capsys.readouterr().err and not run.exists()


def test_the_gpu_measurement_script_runs_real_commands():
    """sweeps/gpu/measure.sh (the [gpu] numbers in one command): valid bash, and every s2s command in it
    parses with the CLI's own parser and names a real config key."""
    import re
    import shlex
    import subprocess

    from s2s_lightning.cli import build_parser
    from s2s_lightning.config import build_config
    from tests.conftest import REPO

    path = REPO / "sweeps" / "gpu" / "measure.sh"
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    text = path.read_text().replace("\\\n", " ")
    tutorial = re.search(r"^TUTORIAL=\((.*)\)$", text, re.M).group(1)
    values = {'"${TUTORIAL[@]}"': tutorial, "$precision": "bf16-mixed", '"$OUT/': '"out/', '"$K"': "4"}
    commands = [line.strip() for line in text.splitlines() if line.strip().startswith("s2s ")]
    assert len(commands) == 4
    for command in commands:
        for name, value in values.items():
            command = command.replace(name, value)
        argv = shlex.split(command.split(">")[0])[1:]
        args = build_parser().parse_args(argv)
        if args.command in ("bench", "train"):
            build_config({}, args.overrides)  # every key=value is a real config key and value
