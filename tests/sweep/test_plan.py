"""Ablation files: validation messages, grid expansion, and the shipped files."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import yaml

from s2s_lightning import metrics as M
from s2s_lightning.config import AXES, arm_name, build_config, flatten
from s2s_lightning.errors import S2SError
from s2s_lightning.sweep.plan import expand, format_overrides, load_ablation, tuning_metric

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "ablations").glob("*.yaml"))

VALID = {
    "base": {"data": {"name": "addition"}, "model": {"hidden_dim": 8}},
    "scientific": {"data.reverse_source": [False, True], "model.peeky": [False, True]},
    "nuisance": {"space": {"train.lr": {"type": "log_uniform", "low": 1e-4, "high": 1e-2}}},
    "seeds": [0, 1],
    "objective": {"metric": "test/exact_match"},
    "budgets": {
        "full": {"nuisance_trials": 2},
        "quick": {"overrides": {"train.max_epochs": 1}, "seeds": [0]},
    },
}


def write(tmp_path: Path, spec: dict | str, name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec))
    return path


def with_changes(**changes) -> dict:
    spec = yaml.safe_load(yaml.safe_dump(VALID))
    for key, value in changes.items():
        if value is None:
            spec.pop(key)
        else:
            spec[key] = value
    return spec


def test_valid_file_expands_to_the_cartesian_grid(tmp_path):
    ablation = load_ablation(write(tmp_path, VALID))
    plan = expand(ablation, "full")
    assert plan.study == "study"
    assert [a.name for a in plan.arms] == [
        "L1-fwd-plain-tf1",
        "L1-fwd-peeky-tf1",
        "L1-rev-plain-tf1",
        "L1-rev-peeky-tf1",
    ]
    assert plan.arms[1].values == {"data.reverse_source": False, "model.peeky": True}
    assert plan.seeds == [0, 1] and plan.nuisance_trials == 2
    assert (plan.objective, plan.direction, plan.tuning_metric) == (
        "test/exact_match",
        "maximize",
        "val/exact_match",
    )
    quick = expand(ablation, "quick")
    assert quick.study == "study-quick" and quick.seeds == [0] and quick.nuisance_trials == 0
    assert quick.constants["train.max_epochs"] == 1 and "train.max_epochs" not in plan.constants


def test_an_untuned_budget_may_change_a_nuisance_default(tmp_path):
    spec = with_changes(
        budgets={"full": {"nuisance_trials": 2}, "quick": {"overrides": {"train.lr": 0.01}, "seeds": [0]}}
    )
    ablation = load_ablation(write(tmp_path, spec))
    quick = expand(ablation, "quick")
    assert quick.nuisance_trials == 0
    assert build_config({}, quick.overrides(quick.arms[0], 0)).train.lr == 0.01
    assert "train.lr" not in expand(ablation, "full").constants  # the tuned budget still searches it


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"scientific": {"model.num_layer": [1, 4]}},
            "scientific axis 'model.num_layer': unknown config key 'model.num_layer'",
        ),
        (
            {"scientific": {"model.num_layers": [0, 4]}},
            "scientific axis 'model.num_layers': config key 'model.num_layers'",
        ),
        (
            {"objective": {"metric": "test/bleu"}},
            "objective 'test/bleu' is never logged for the addition task",
        ),
        (
            {"objective": {"metric": "test/accuracy"}},
            "objective 'test/accuracy' is not an optimisable metric",
        ),
        (
            {"objective": {"metric": "val/ppl", "direction": "maximize"}},
            "objective 'val/ppl' is to be minimized",
        ),
        ({"scientific": {}}, "empty grid: `scientific` names no axis"),
        ({"scientific": {"model.peeky": []}}, "empty grid: scientific axis 'model.peeky' has no values"),
        ({"scientific": {"model.peeky": [True, True]}}, "repeats a value"),
        ({"scientific": {"seed": [0, 1]}}, "'seed' is not a scientific axis"),
        ({"scientifc": {"model.peeky": [True]}}, "unknown key 'scientifc'"),
        ({"scientific": None}, "missing key 'scientific'"),
        ({"fixed": {"model.peeky": True}}, "'model.peeky' is both a scientific axis and a fixed value"),
        ({"fixed": {"tracking.name": "x"}}, "'tracking.name' is set per trial by the sweep"),
        ({"fixed": {"train.lr": 0.1}}, "nuisance 'train.lr' is also set in fixed/budgets"),
        (
            {"budgets": {"full": {"nuisance_trials": 2, "overrides": {"train.lr": 0.1}}}},
            "nuisance 'train.lr' is also set in fixed/budgets",
        ),  # a budget that tunes lr cannot also pin it
        ({"base": {"model": {"hiden_dim": 8}}}, "base: unknown config key 'model.hiden_dim'"),
        (
            {"nuisance": {"space": {"train.lr": {"type": "log_uniform", "low": 0.0, "high": 1.0}}}},
            "needs low > 0",
        ),
        (
            {"nuisance": {"space": {"train.lr": {"type": "uniform", "low": 1.0, "high": 0.5}}}},
            "needs low < high",
        ),
        (
            {"nuisance": {"space": {"model.dropout": {"type": "uniform", "low": 0.0, "high": 1.5}}}},
            "nuisance 'model.dropout': config key 'model.dropout'",
        ),
        ({"nuisance": {"space": {}}}, "asks for 2 nuisance trials per arm but nuisance.space is empty"),
        ({"seeds": [0, 0]}, "seeds must be a non-empty list of distinct integers"),
        (
            {"budgets": {"full": {"overrides": {"train.max_epoch": 1}}}},
            "budget 'full': unknown config key 'train.max_epoch'",
        ),
    ],
)
def test_invalid_files_fail_with_one_line_naming_the_problem(tmp_path, changes, message):
    path = write(tmp_path, with_changes(**changes))
    with pytest.raises(S2SError) as err:
        load_ablation(path)
    assert message in str(err.value)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_malformed_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "base: {data: {name: addition}\nscientific: [\n")
    with pytest.raises(S2SError, match=r"malformed YAML in .*study.yaml at line \d+"):
        load_ablation(path)


def test_unknown_budget_lists_the_known_ones(tmp_path):
    ablation = load_ablation(write(tmp_path, VALID))
    with pytest.raises(S2SError, match=r"unknown budget 'quik' \(available: full, quick\)"):
        expand(ablation, "quik")


def test_missing_file(tmp_path):
    with pytest.raises(S2SError, match="ablation file not found"):
        load_ablation(tmp_path / "nope.yaml")


def test_arm_names_match_the_names_train_records(tiny_cfg):
    for layers, rev, peeky, tf in itertools.product([1, 4], [False, True], [False, True], [1.0, 0.5, 0.0]):
        cfg = tiny_cfg(
            **{
                "model.num_layers": layers,
                "data.reverse_source": rev,
                "model.peeky": peeky,
                "train.teacher_forcing_ratio": tf,
            }
        )
        assert arm_name(cfg, list(AXES)) == arm_name(cfg)
    assert arm_name(tiny_cfg(**{"model.hidden_dim": 256}), ["model.hidden_dim"]).endswith("-hidden_dim256")


def test_tuning_metric_is_the_validation_counterpart():
    assert tuning_metric(M.TEST_EXACT_MATCH) == M.VAL_EXACT_MATCH
    assert tuning_metric(M.TEST_BLEU_TOK) == M.VAL_BLEU and tuning_metric(M.TEST_CHRF) == M.VAL_BLEU
    assert tuning_metric(M.VAL_PPL) == M.VAL_PPL
    for metric in M.DIRECTIONS:  # selection by a val metric never flips the direction
        assert M.DIRECTIONS[tuning_metric(metric)] == M.DIRECTIONS[metric]


def test_formatted_overrides_parse_back_to_the_same_config():
    tricky = {
        "train.lr": 1e-05,
        "train.grad_clip": None,
        "tracking.tags": ["a", "b c"],
        "model.peeky": True,
        "train.teacher_forcing_ratio": 1,
        "data.max_src_vocab": 160000,
        "tracking.name": "L1-rev",
    }
    assert build_config({}, format_overrides(tricky)) == build_config({}, tricky)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_ablation_loads_and_expands(path):
    ablation = load_ablation(path)
    assert ablation.spec.description and {"full"} <= set(ablation.spec.budgets)
    for budget in ablation.spec.budgets:
        plan = expand(ablation, budget)
        sizes = [len(v) for v in plan.grid.values()]  # a budget may give an axis other values
        assert len(plan.arms) == len(set(a.name for a in plan.arms)) == math.prod(sizes) - len(plan.skipped)
        for arm in plan.arms:
            cfg = build_config(
                {}, plan.overrides(arm, plan.seeds[-1], name=f"{arm.name}-seed{plan.seeds[-1]}")
            )
            assert {k: cfg.get(k) for k in arm.values} == arm.values
            assert cfg.seed == plan.seeds[-1] and cfg.tracking.group == plan.study
            assert (
                build_config(
                    ablation.spec.base,
                    {
                        **flatten(ablation.spec.fixed),
                        **flatten(ablation.spec.budgets[budget].overrides),
                        **arm.values,
                    },
                ).model
                == cfg.model
            )


def test_addition_full_budget_is_the_books_recipe():
    plan = expand(load_ablation(REPO / "ablations" / "addition.yaml"), "full")
    cfg = build_config({}, plan.overrides(plan.arms[0], 0))
    assert (cfg.model.embedding_dim, cfg.model.hidden_dim, cfg.model.num_layers) == (16, 128, 1)
    budget = (cfg.data.batch_size, cfg.train.max_epochs, cfg.train.optimizer, cfg.train.lr)
    assert budget == (128, 25, "adam", 1e-3)
    assert cfg.train.grad_clip == 5.0 and len(plan.seeds) >= 3
    quick = expand(load_ablation(REPO / "ablations" / "addition.yaml"), "quick")
    assert [a.name for a in quick.arms] == [a.name for a in plan.arms]  # the whole grid, only smaller


def test_wmt14_is_the_papers_setup():
    plan = expand(load_ablation(REPO / "ablations" / "paper_wmt14.yaml"))
    cfg = build_config({}, plan.overrides(plan.arms[1], 0))
    assert (cfg.model.num_layers, cfg.model.hidden_dim, cfg.model.embedding_dim) == (4, 1000, 1000)
    assert (cfg.data.max_src_vocab, cfg.data.max_tgt_vocab, cfg.data.name) == (160000, 80000, "parallel")
    assert (cfg.train.optimizer, cfg.train.lr, cfg.train.lr_decay_start_epoch, cfg.train.lr_decay_every) == (
        "sgd",
        0.7,
        5,
        0.5,
    )
    assert (cfg.train.grad_clip, cfg.data.batch_size, cfg.train.max_epochs, cfg.eval.beam_size) == (
        5.0,
        128,
        8,
        12,
    )
    assert cfg.data.reverse_source and plan.objective == M.TEST_BLEU_TOK


def test_a_budget_can_give_axes_other_values_but_not_add_axes(tmp_path):
    spec = {
        "base": {"data": {"name": "addition"}},
        "scientific": {"model.num_layers": [1, 4], "model.peeky": [False, True]},
        "objective": {"metric": "test/exact_match"},
        "budgets": {"full": {}, "cpu": {"scientific": {"model.num_layers": [1, 2], "model.peeky": [False]}}},
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(spec))
    plan = expand(load_ablation(path), "cpu")
    assert [a.name for a in plan.arms] == ["L1-fwd-plain-tf1", "L2-fwd-plain-tf1"]
    assert plan.fingerprint()["axes"] == {"model.num_layers": [1, 2], "model.peeky": [False]}
    assert len(expand(load_ablation(path)).arms) == 4
    spec["budgets"]["cpu"]["scientific"]["model.dropout"] = [0.1]
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(
        S2SError, match="budget 'cpu' sets values for 'model.dropout', which is not a scientific axis"
    ):
        expand(load_ablation(path), "cpu")


def test_a_budget_can_skip_grid_points_for_a_fractional_design(tmp_path):
    spec = {
        "base": {"data": {"name": "addition"}},
        "scientific": {
            "model.num_layers": [1, 2],
            "data.reverse_source": [False, True],
            "model.peeky": [False, True],
        },
        "objective": {"metric": "test/exact_match"},
        "budgets": {"full": {}, "cpu": {"skip": [{"data.reverse_source": False, "model.peeky": "true"}]}},
    }
    path = write(tmp_path, spec)
    full, cpu = expand(load_ablation(path)), expand(load_ablation(path), "cpu")
    assert len(full.arms) == 8 and full.skipped == [] and "skipped" not in full.fingerprint()
    assert sorted(a.name for a in cpu.arms) == [
        "L1-fwd-plain-tf1",
        "L1-rev-peeky-tf1",
        "L1-rev-plain-tf1",
        "L2-fwd-plain-tf1",
        "L2-rev-peeky-tf1",
        "L2-rev-plain-tf1",
    ]
    assert sorted(cpu.skipped) == ["L1-fwd-peeky-tf1", "L2-fwd-peeky-tf1"]
    assert cpu.fingerprint()["skipped"] == cpu.skipped  # editing `skip` is an edited study
    with pytest.raises(S2SError, match="a W&B grid sweep cannot leave out"):
        from s2s_lightning.sweep.wandb_grid import sweep_config

        sweep_config(cpu)


@pytest.mark.parametrize(
    ("skip", "message"),
    [
        ([{"model.dropout": 0.1}], "skip: 'model.dropout' is not a scientific axis"),
        (
            [{"model.peeky": True, "model.num_layers": 3}],
            "skip: no arm has model.num_layers=3, model.peeky=True",
        ),
        ([{}], "skip: an entry names no axis"),
        ([{"model.peeky": False}, {"model.peeky": True}], "skip: every arm is skipped"),
        ([{"model.num_layers": 0}], "budget 'cpu': skip: config key 'model.num_layers'"),
    ],
)
def test_bad_skip_entries_are_one_line_errors(tmp_path, skip, message):
    spec = {
        "base": {"data": {"name": "addition"}},
        "scientific": {"model.num_layers": [1, 2], "model.peeky": [False, True]},
        "objective": {"metric": "test/exact_match"},
        "budgets": {"cpu": {"skip": skip}},
    }
    with pytest.raises(S2SError, match=message.replace("(", r"\(")) as err:
        load_ablation(write(tmp_path, spec))
    assert "\n" not in str(err.value)


def test_counts_read_as_english():
    """ "study x: 16 arms x 1 seeds" read oddly in sweep run, --dry-run and status."""
    from s2s_lightning.sweep.plan import count

    assert (count(1, "seed"), count(3, "seed"), count(0, "arm")) == ("1 seed", "3 seeds", "0 arms")


def test_an_addition_budget_asking_for_more_questions_than_exist_is_refused_at_load(tmp_path):
    """`train_size: 6000, max_operand: 99` passed load and --dry-run; every trial then failed."""
    path = tmp_path / "small.yaml"
    path.write_text(
        "base:\n  data:\n    addition: {train_size: 6000, max_operand: 99}\n"
        "scientific:\n  data.reverse_source: [false, true]\nseeds: [0]\n"
        "objective: {metric: test/exact_match}\n"
    )
    with pytest.raises(S2SError, match="16000 distinct questions requested .* at most 5000 can be drawn"):
        expand(load_ablation(path))
