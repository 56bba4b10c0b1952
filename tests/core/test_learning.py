"""Learning tests (slow): the model really learns a task, not just runs."""

import pytest

from s2s_lightning import metrics as M
from s2s_lightning.train import train


@pytest.mark.slow
def test_reversed_peeky_learns_two_digit_addition(tmp_path, tiny_cfg):
    cfg = tiny_cfg(
        **{
            "data.addition.max_operand": 99,
            "data.addition.train_size": 4000,
            "data.addition.val_size": 200,
            "data.addition.test_size": 200,
            "model.embedding_dim": 16,
            "model.hidden_dim": 64,
            "train.max_epochs": 15,
            "train.lr": 0.02,
            "data.reverse_source": True,
            "model.peeky": True,
        }
    )
    record = train(cfg, tmp_path)
    # Chance is ~1/100 per answer; a model that does not learn stays near 0.
    assert record["metrics"][M.TEST_EXACT_MATCH] > 0.6
    assert record["metrics"][M.TEST_PPL] < 1.5
