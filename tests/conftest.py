"""Shared fixtures: tiny configs that shrink the real defaults, and the local Multi30k copy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from s2s_lightning.config import build_config

REPO = Path(__file__).resolve().parents[1]
MULTI30K = Path(os.environ.get("S2S_MULTI30K_DIR", REPO.parent / "shared" / "data" / "multi30k"))

TINY = {
    "data.addition.train_size": 300, "data.addition.val_size": 40, "data.addition.test_size": 40,
    "data.batch_size": 32, "model.embedding_dim": 10, "model.hidden_dim": 7, "train.max_epochs": 1,
    "train.progress_bar": False, "tracking.wandb": "disabled",
}
TINY_MULTI30K = {
    **{k: v for k, v in TINY.items() if not k.startswith("data.addition")},
    "data.name": "multi30k", "data.dir": str(MULTI30K), "data.max_train_sentences": 300,
    "data.max_eval_sentences": 30, "model.hidden_dim": 16, "eval.max_len_b": 5, "eval.max_len_a": 0.5,
}


@pytest.fixture
def tiny_cfg():
    def make(**overrides):
        return build_config({}, {**TINY, **overrides})
    return make


@pytest.fixture
def tiny_multi30k_cfg():
    if not (MULTI30K / "train.de.gz").is_file():
        pytest.skip(f"no local Multi30k copy at {MULTI30K}")

    def make(**overrides):
        return build_config({}, {**TINY_MULTI30K, **overrides})
    return make
