"""Search: greedy, batched beam search and ensembles on tiny random models."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch

from s2s_lightning.config import ModelConfig
from s2s_lightning.data import source_tensor
from s2s_lightning.errors import S2SError
from s2s_lightning.model import Seq2Seq
from s2s_lightning.search import (
    beam_search,
    decode,
    greedy,
    hypothesis_lengths,
    max_lengths,
    sequence_log_probs,
    step_log_probs,
)
from s2s_lightning.text import EOS_ID, PAD_ID, SOS_ID, UNK_ID

SRC_VOCAB, TGT_VOCAB = 9, 8
A, B = 0.5, 3  # length limit: 0.5 * source length + 3


def tiny_model(seed: int = 0, tgt_vocab: int = TGT_VOCAB, **cfg) -> Seq2Seq:
    torch.manual_seed(seed)
    # A wide init makes the distributions peaked and a zero <eos> bias keeps <eos> competitive, so
    # hypotheses end at many different lengths, some at the limit (checked below, not assumed).
    model_cfg = ModelConfig(**{"embedding_dim": 10, "hidden_dim": 7, "init_range": 3.0, **cfg})
    model = Seq2Seq(SRC_VOCAB, tgt_vocab, model_cfg).eval()
    with torch.no_grad():
        model.decoder.out.bias[EOS_ID] = 0.0
    return model


def sources(n: int = 12, seed: int = 1) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randint(4, SRC_VOCAB, (int(k),), generator=g).tolist()
        for k in torch.randint(1, 9, (n,), generator=g)
    ]


def unpad(row: torch.Tensor) -> list[int]:
    return [t for t in row.tolist() if t != PAD_ID]


MODELS = {"plain": {}, "peeky-2layer": {"peeky": True, "num_layers": 2}}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors decode fastest on one thread (and do not fight other jobs for cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=sorted(MODELS))
def model(request) -> Seq2Seq:
    return tiny_model(**MODELS[request.param])


def test_greedy_format_and_length_limits(model):
    src, src_len = source_tensor(sources())
    out = greedy(model, src, src_len, A, B)
    limits = max_lengths(src_len, A, B)
    lengths = hypothesis_lengths(out)
    ended = (out == EOS_ID).any(1)
    assert ended.any() and (~ended).any(), "the tiny model should give both ended and cut hypotheses"
    assert (lengths <= limits).all()
    assert (lengths[~ended] == limits[~ended]).all()  # cut exactly at the limit
    assert not (
        (out == SOS_ID).any()
        or (out == PAD_ID).logical_and(torch.arange(out.size(1)) < lengths[:, None]).any()
    )


@pytest.mark.parametrize("length_normalize", [True, False])
def test_beam_1_equals_greedy(model, length_normalize):
    src, src_len = source_tensor(sources(20))
    assert torch.equal(
        beam_search(model, src, src_len, 1, length_normalize, A, B), greedy(model, src, src_len, A, B)
    )


@pytest.mark.parametrize("beam", [2, 12])
@pytest.mark.parametrize("length_normalize", [True, False])
def test_batched_beam_equals_one_sentence_at_a_time(model, beam, length_normalize):
    srcs = sources(8)
    batched = beam_search(model, *source_tensor(srcs), beam, length_normalize, A, B)
    for i, s in enumerate(srcs):
        one = beam_search(model, *source_tensor([s]), beam, length_normalize, A, B)
        assert unpad(batched[i]) == unpad(one[0]), f"sentence {i}"


@pytest.mark.parametrize("beam", [2, 12])
def test_beam_never_scores_below_greedy(model, beam):
    """Model score = teacher-forced sum of log-probabilities, what unnormalised beam search maximises.

    (With length normalisation a sentence stops once K hypotheses are complete, as in fairseq, so a
    longer hypothesis with a better per-token score can be missed: no such guarantee there.)
    """
    src, src_len = source_tensor(sources(20))
    greedy_score = sequence_log_probs(model, src, src_len, greedy(model, src, src_len, A, B))
    found = beam_search(model, src, src_len, beam, False, A, B)
    gain = sequence_log_probs(model, src, src_len, found) - greedy_score
    assert (gain >= -1e-5).all(), gain
    assert (gain > 1e-3).any(), "a wider beam should find a better hypothesis for some sentence"


def test_wide_beam_finds_the_exact_best_hypothesis(model):
    """With 4 tokens it can emit (<eos>, <unk>, 2 words) and a limit of 3, a beam of 16 prunes nothing,
    so it must return the best of all possible hypotheses, scored by brute force."""
    model = tiny_model(
        6, tgt_vocab=6, **{k: v for k, v in model.cfg.model_dump().items() if k != "init_range"}
    )
    words, limit = [UNK_ID, 4, 5], 3
    hyps = [list(p) + [EOS_ID] for n in range(limit) for p in itertools.product(words, repeat=n)]
    hyps += [list(p) + [last] for p in itertools.product(words, repeat=limit - 1) for last in words]
    candidates = torch.tensor([h + [PAD_ID] * (limit - len(h)) for h in hyps])  # [H, 3]
    lengths = hypothesis_lengths(candidates)  # <eos> included
    normalisation_matters = length_definition_matters = 0
    for s in sources(10, seed=5):
        src, src_len = source_tensor([s] * len(hyps))
        raw = sequence_log_probs(model, src, src_len, candidates)
        for length_normalize, scores in ((False, raw), (True, raw / lengths)):
            found = beam_search(model, *source_tensor([s]), 16, length_normalize, 0.0, limit)
            assert unpad(found[0]) == unpad(candidates[scores.argmax()])
        normalisation_matters += int(raw.argmax() != (raw / lengths).argmax())
        length_definition_matters += int(
            (raw / (lengths - 1).clamp(min=1)).argmax() != (raw / lengths).argmax()
        )
    assert normalisation_matters and length_definition_matters, "the test should tell these apart"


def test_sequence_log_probs_matches_stepwise_scores():
    model = tiny_model(peeky=True)
    src, src_len = source_tensor(sources(5))
    hyps = greedy(model, src, src_len, A, B)
    states = [model.encode(src, src_len)]
    tokens, total = torch.full((5,), SOS_ID), torch.zeros(5)
    for t in range(hyps.size(1)):
        lp, states = step_log_probs([model], tokens, states)
        tokens = hyps[:, t]
        total += torch.where(
            t < hypothesis_lengths(hyps), lp.gather(1, tokens[:, None]).squeeze(1), torch.zeros(5)
        )
    assert torch.allclose(sequence_log_probs(model, src, src_len, hyps), total, atol=1e-5)


def test_ensemble_of_one_and_of_copies_equal_the_single_model(model):
    src, src_len = source_tensor(sources(10))
    twin = copy.deepcopy(model)
    for search in (
        lambda m: greedy(m, src, src_len, A, B),
        lambda m: beam_search(m, src, src_len, 3, True, A, B),
    ):
        single = search(model)
        assert torch.equal(search([model]), single)
        assert torch.equal(search([model, twin]), single)  # the mean of equal log-probabilities


def reference_ensemble_greedy(models, src, src_len, limit):
    """One sentence, one step at a time, the members' log-probabilities averaged by hand."""
    states = [m.encode(src, src_len) for m in models]
    token, out = torch.tensor([SOS_ID]), []
    for _ in range(limit):
        steps = [m.decoder.step(token, s) for m, s in zip(models, states)]
        states = [s for _, s in steps]
        log_probs = sum(logits.log_softmax(-1) for logits, _ in steps) / len(models)  # [1, V]
        log_probs[:, [PAD_ID, SOS_ID]] = float("-inf")
        token = log_probs.argmax(-1)
        out.append(int(token))
        if out[-1] == EOS_ID:
            break
    return out


def test_ensemble_averages_log_probabilities():
    members = [tiny_model(0), tiny_model(1, peeky=True, num_layers=2), tiny_model(2)]
    srcs = sources(10)
    src, src_len = source_tensor(srcs)
    ens = greedy(members, src, src_len, A, B)
    limits = max_lengths(src_len, A, B)
    for i, s in enumerate(srcs):
        assert unpad(ens[i]) == reference_ensemble_greedy(members, *source_tensor([s]), int(limits[i]))
    assert torch.equal(beam_search(members, src, src_len, 1, True, A, B), ens)
    tokens, states = ens[:, 0], [m.encode(src, src_len) for m in members]
    mean, _ = step_log_probs(members, tokens, states)
    by_hand = sum(m.decoder.step(tokens, st)[0].log_softmax(-1) for m, st in zip(members, states)) / 3
    real = [i for i in range(TGT_VOCAB) if i not in (PAD_ID, SOS_ID)]
    assert torch.allclose(mean[:, real], by_hand[:, real]) and torch.isinf(mean[:, [PAD_ID, SOS_ID]]).all()
    singles = [greedy(m, src, src_len, A, B) for m in members]
    assert all(not torch.equal(ens, single) for single in singles), (
        "the ensemble should differ from each member"
    )


def test_ensemble_members_must_share_vocabulary_sizes():
    src, src_len = source_tensor(sources(2))
    with pytest.raises(S2SError, match="vocabulary sizes"):
        greedy([tiny_model(tgt_vocab=8), tiny_model(tgt_vocab=9)], src, src_len)
    with pytest.raises(S2SError, match="at least one"):
        beam_search([], src, src_len, 2)


def test_decode_dispatches_on_beam_size(model):
    src, src_len = source_tensor(sources(6))
    assert torch.equal(decode(model, src, src_len, 1, True, A, B), greedy(model, src, src_len, A, B))
    assert torch.equal(
        decode(model, src, src_len, 5, False, A, B), beam_search(model, src, src_len, 5, False, A, B)
    )
