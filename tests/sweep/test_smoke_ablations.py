"""A CPU smoke run per shipped ablation file: its first arm, shrunk to tiny sizes, trains for real."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from s2s_lightning.config import build_config
from s2s_lightning.sweep.plan import expand, load_ablation
from s2s_lightning.train import train
from tests.conftest import MULTI30K

pytestmark = pytest.mark.integration  # a real (tiny) training run per shipped ablation file
REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "ablations").glob("*.yaml"))
SHRINK = {
    "model.embedding_dim": 8,
    "model.hidden_dim": 8,
    "train.max_epochs": 1,
    "data.batch_size": 16,
    "train.progress_bar": False,
    "tracking.wandb": "disabled",
    "eval.max_len_b": 4,
    "eval.max_len_a": 0.5,
    "eval.bootstrap_samples": 10,
}


def _parallel_copy(cfg, folder: Path) -> None:
    """A few Multi30k lines under the file's own split names and languages (stands in for WMT'14)."""
    langs = {"en": "en", "fr": "fr", "de": "de", "cs": "cs"}
    for role, split in (
        ("train", cfg.data.train_split),
        ("val", cfg.data.val_split),
        ("test", cfg.data.test_split),
    ):
        source = {"train": "train", "val": "val", "test": "test_2016_flickr"}[role]
        for lang in (cfg.data.src_lang, cfg.data.tgt_lang):
            with gzip.open(MULTI30K / f"{source}.{langs[lang]}.gz", "rt", encoding="utf-8") as f:
                lines = [next(f) for _ in range(120 if role == "train" else 15)]
            (folder / f"{split}.{lang}").write_text("".join(lines), encoding="utf-8")


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_ablation_trains_one_arm(path, tmp_path):
    ablation = load_ablation(path)
    budget = "quick" if "quick" in ablation.spec.budgets else "full"
    plan = expand(ablation, budget)
    overrides = plan.overrides(plan.arms[-1], plan.seeds[0])
    cfg = build_config({}, overrides)
    shrink = dict(SHRINK)  # layers stay: an axis, and cheap at width 8
    if cfg.data.name == "addition":
        shrink.update(
            {"data.addition.train_size": 200, "data.addition.val_size": 20, "data.addition.test_size": 20}
        )
    else:
        if not (MULTI30K / "train.de.gz").is_file():
            pytest.skip(f"no local Multi30k copy at {MULTI30K}")
        shrink.update({"data.max_train_sentences": 120, "data.max_eval_sentences": 15, "data.min_freq": 1})
        if cfg.data.name == "parallel":
            _parallel_copy(cfg, tmp_path)
            shrink["data.dir"] = str(tmp_path)
        else:
            shrink["data.dir"] = str(MULTI30K)
    cfg = build_config({}, {**overrides, **shrink})
    record = train(cfg, tmp_path / "run")
    assert record["status"] == "completed", record.get("error")
    assert set(plan.arms[-1].values.items()) <= set(record["axes"].items())
    assert plan.objective in record["metrics"]  # the objective the sweep optimises is really logged
