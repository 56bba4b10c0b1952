"""Model: shapes, packing, Peeky, the teacher-forcing fast path, and the masked loss."""

import pytest
import torch

from s2s_lightning.config import ModelConfig
from s2s_lightning.data import collate, source_tensor
from s2s_lightning.model import Seq2Seq
from s2s_lightning.system import masked_nll
from s2s_lightning.text import PAD_ID

V_SRC, V_TGT = 13, 11


def make(peeky=False, layers=2, seed=0):
    torch.manual_seed(seed)
    return Seq2Seq(
        V_SRC, V_TGT, ModelConfig(embedding_dim=10, hidden_dim=7, num_layers=layers, peeky=peeky)
    ).eval()


def batch_of(srcs, tgts):
    return collate([(i, s, t) for i, (s, t) in enumerate(zip(srcs, tgts))])


SRCS = [[4, 5, 6, 7, 8], [9, 10], [4, 12, 6]]
TGTS = [[4, 5], [6, 7, 8, 9], [10]]


@pytest.mark.parametrize("peeky", [False, True])
def test_shapes(peeky):
    model, b = make(peeky), batch_of(SRCS, TGTS)
    state = model.encode(b.src, b.src_len)
    assert state.h.shape == state.c.shape == (2, 3, 7) and state.summary.shape == (3, 7)
    assert model(b.src, b.src_len, b.tgt_in).shape == (3, 5, V_TGT)
    logits, nxt = model.decoder.step(b.tgt_in[:, 0], state)
    assert logits.shape == (3, V_TGT) and nxt.h.shape == (2, 3, 7)


def test_packing_a_batch_equals_each_sentence_alone():
    model, b = make(peeky=True), batch_of(SRCS, TGTS)
    batched = model(b.src, b.src_len, b.tgt_in)
    for i, (s, t) in enumerate(zip(SRCS, TGTS)):
        alone = batch_of([s], [t])
        single = model(alone.src, alone.src_len, alone.tgt_in)  # [1, T_i, V]
        torch.testing.assert_close(batched[i, : single.size(1)], single[0], rtol=1e-5, atol=1e-6)


def test_padding_never_changes_the_encoder_summary():
    model = make()
    src, lengths = source_tensor([[4, 5, 6]])
    padded = torch.cat([src, torch.full((1, 6), PAD_ID)], dim=1)
    torch.testing.assert_close(model.encode(src, lengths).summary, model.encode(padded, lengths).summary)


def test_peeky_changes_the_computation():
    plain, peeky = make(peeky=False), make(peeky=True)
    assert peeky.decoder.lstm.input_size == 10 + 7 and peeky.decoder.out.in_features == 7 + 7
    b = batch_of(SRCS, TGTS)
    # Same decoder input and state, different encoder summary: only a Peeky decoder notices.
    state = peeky.encode(b.src, b.src_len)
    for model in (plain, peeky):
        base = model.decoder(b.tgt_in, state)[0]
        other = type(state)(state.h, state.c, torch.randn_like(state.summary))
        changed = not torch.allclose(base, model.decoder(b.tgt_in, other)[0])
        assert changed == model.decoder.peeky


@pytest.mark.parametrize("peeky", [False, True])
def test_teacher_forcing_fast_path_equals_step_loop(peeky):
    model, b = make(peeky), batch_of(SRCS, TGTS)
    fast = model(b.src, b.src_len, b.tgt_in, teacher_forcing_ratio=1.0)
    keep = torch.ones_like(b.tgt_in, dtype=torch.bool)
    loop = model.decode_scheduled(b.tgt_in, model.encode(b.src, b.src_len), keep)
    torch.testing.assert_close(fast, loop, rtol=1e-5, atol=1e-6)


def test_ratio_zero_feeds_back_the_models_own_argmax():
    model, b = make(), batch_of(SRCS, TGTS)
    logits = model(b.src, b.src_len, b.tgt_in, teacher_forcing_ratio=0.0)
    # Re-run teacher forced on the model's own argmaxes: identical logits.
    fed = torch.cat([b.tgt_in[:, :1], logits.argmax(-1)[:, :-1]], dim=1)
    torch.testing.assert_close(model(b.src, b.src_len, fed, 1.0), logits, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(model(b.src, b.src_len, b.tgt_in, 1.0), logits)


def test_pad_positions_do_not_change_the_loss():
    model, b = make(), batch_of(SRCS, TGTS)
    logits = model(b.src, b.src_len, b.tgt_in)
    nll, tokens, _ = masked_nll(logits, b.tgt_out)
    assert tokens == sum(len(t) + 1 for t in TGTS)
    noisy = logits.clone()
    noisy[b.tgt_out == PAD_ID] = torch.randn_like(noisy[b.tgt_out == PAD_ID]) * 100
    assert torch.equal(masked_nll(noisy, b.tgt_out)[0], nll)
    # Extra padding columns in the batch leave the summed loss unchanged too.
    wider_in = torch.cat([b.tgt_in, torch.full((3, 3), PAD_ID)], 1)
    wider_out = torch.cat([b.tgt_out, torch.full((3, 3), PAD_ID)], 1)
    torch.testing.assert_close(masked_nll(model(b.src, b.src_len, wider_in), wider_out)[0], nll)


def test_uniform_init_range():
    model = make()
    for name, p in model.named_parameters():
        assert p.abs().max() <= 0.08 + 1e-6, name
