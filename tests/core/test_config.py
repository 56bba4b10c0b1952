"""Config: defaults, dotted overrides, and errors that name the bad key."""

import subprocess
import sys

import pytest

from s2s_lightning.config import AXES, build_config, load_config, parse_override
from s2s_lightning.errors import S2SError


def test_defaults_are_the_books_budget():
    cfg = build_config()
    assert (cfg.model.embedding_dim, cfg.model.hidden_dim, cfg.model.num_layers) == (16, 128, 1)
    budget = (cfg.data.batch_size, cfg.train.max_epochs, cfg.train.optimizer, cfg.train.lr)
    assert budget == (128, 25, "adam", 1e-3)
    assert cfg.train.grad_clip == 5.0 and cfg.data.name == "addition"


def test_overrides_parse_yaml_scalars_and_set_axes():
    cfg = build_config(
        {},
        [
            "model.num_layers=4",
            "data.reverse_source=true",
            "model.peeky=True",
            "train.teacher_forcing_ratio=0.5",
            "tracking.tags=[a, b]",
        ],
    )
    assert [cfg.get(k) for k in AXES] == [4, True, True, 0.5]
    assert cfg.tracking.tags == ["a", "b"]
    assert parse_override("--seed=3") == ("seed", 3)


def test_yaml_file_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  hidden_dim: 64\nseed: 3\n")
    cfg = load_config(path, ["seed=4"])
    assert cfg.model.hidden_dim == 64 and cfg.seed == 4


@pytest.mark.parametrize(
    "override, needle",
    [
        ("model.num_layer=2", "unknown config key 'model.num_layer'"),
        ("model.num_layers=0", "'model.num_layers'"),
        ("train.teacher_forcing_ratio=1.5", "'train.teacher_forcing_ratio'"),
        ("train.max_epochs=-1", "'train.max_epochs'"),
        ("eval.beam_size=0", "'eval.beam_size'"),
        ("data.name=wmt", "'data.name'"),
        ("model.hidden_dim=big", "'model.hidden_dim'"),
        ("bogus=1", "unknown config key 'bogus'"),
    ],
)
def test_errors_name_the_key(override, needle):
    with pytest.raises(S2SError) as err:
        build_config({}, [override])
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_key_lists_allowed_values():
    with pytest.raises(S2SError, match="allowed: .*num_layers.*peeky"):
        build_config({}, ["model.depth=4"])


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  hidden_dim: [1, 2\n")
    with pytest.raises(S2SError, match=r"malformed YAML in .*bad.yaml at line"):
        load_config(path)


@pytest.mark.integration
def test_cli_prints_one_line_and_exits_nonzero(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "s2s_lightning",
            "train",
            "--run-dir",
            str(tmp_path / "r"),
            "model.num_layers=0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0, out.stderr
    assert "Traceback" not in out.stderr and "model.num_layers" in out.stderr
    assert not (tmp_path / "r" / "record.json").exists()


def test_limit_train_batches_counts_batches_as_an_int_and_a_share_as_a_float():
    """`train.limit_train_batches=1` trained the whole epoch (1.0 to Lightning): the key was a float."""
    from s2s_lightning.config import build_config

    read = lambda v: build_config({}, [f"train.limit_train_batches={v}"]).train.limit_train_batches  # noqa: E731
    assert (read(1), read(2), read(0.25), read(1.0), read(2.0)) == (1, 2, 0.25, 1.0, 2)
    assert isinstance(read(1), int) and isinstance(read(1.0), float)


def test_an_ablation_listing_an_axis_twice_is_refused(tmp_path):
    """`model.peeky` twice under `scientific` gave a one-arm study (the second list won)."""
    from s2s_lightning.errors import S2SError
    from s2s_lightning.sweep.plan import load_ablation

    path = tmp_path / "twice.yaml"
    path.write_text(
        "base: {}\nscientific:\n  model.peeky: [false, true]\n  data.reverse_source: [false, true]\n"
        "  model.peeky: [true]\nseeds: [0]\n"
    )
    with pytest.raises(S2SError, match=r"line 5, column 3: duplicate key 'model.peeky' \(lines 3 and 5\)"):
        load_ablation(path)
