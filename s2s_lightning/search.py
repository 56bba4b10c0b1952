"""Decoding outside the model: greedy and beam search, for one model or an ensemble.

Everything here drives `Seq2Seq.encode` and `Decoder.step` and knows nothing of Lightning. Each
search takes a model or a list of models; a list is an ensemble whose members' log-probabilities are
averaged at every step (Sutskever et al.'s ensembles of reversed LSTMs). An ensemble of one is the
single model.

Beam search is batched: B sentences x K hypotheses live in one [B*K] batch of decoder states.
It follows the paper's decoder: a hypothesis that appends <eos> leaves the beam for the set of
complete hypotheses, and the beam keeps K partial ones. A sentence stops when it has K complete
hypotheses, when no partial hypothesis can still beat the best complete one (exact only without
length normalisation, so used only then), or at its length limit `max_len_a * src_len + max_len_b`,
where the partial hypotheses count as complete (as greedy does). Sentences that stop leave the batch,
so the batch shrinks as decoding goes on.

Scores are sums of log-probabilities. With `length_normalize` the complete hypotheses are compared by
score / length (length counts the generated tokens, <eos> included); partial hypotheses are always
ranked by the raw sum. (GNMT's ((5 + len) / 6) ** alpha penalty would need an alpha in EvalConfig;
alpha = 1 without the 5/6 smoothing is the plain division used here.)

Outputs are [B, T] ids in greedy's format: tokens, <eos>, then <pad>; a hypothesis cut at its length
limit has no <eos>.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .config import EvalConfig
from .errors import S2SError
from .model import DecoderState, Seq2Seq
from .text import EOS_ID, PAD_ID, SOS_ID

DEFAULTS = (
    EvalConfig()
)  # decoding defaults (beam size, length limits, normalisation): the config's, in one place

Models = Seq2Seq | Sequence[Seq2Seq]


def max_lengths(src_len: torch.Tensor, a: float, b: int) -> torch.Tensor:
    """Per-sentence output limits: a * source length + b tokens ([B])."""
    return (src_len.float() * a).long() + b


def as_ensemble(models: Models) -> list[Seq2Seq]:
    """A list of models that can decode together; raises S2SError if their vocabularies differ in size.

    (Checking that the vocabularies hold the same words and that reverse_source agrees needs the
    runs' records: `inference.load_ensemble` does it.)
    """
    members = [models] if isinstance(models, Seq2Seq) else list(models)
    if not members:
        raise S2SError("an ensemble needs at least one model")
    sizes = {(m.encoder.embedding.num_embeddings, m.decoder.out.out_features) for m in members}
    if len(sizes) > 1:
        raise S2SError(f"ensemble members have different (source, target) vocabulary sizes: {sorted(sizes)}")
    return members


def encode(models: list[Seq2Seq], src: torch.Tensor, src_len: torch.Tensor) -> list[DecoderState]:
    return [m.encode(src, src_len) for m in models]


def step_log_probs(
    models: list[Seq2Seq], tokens: torch.Tensor, states: list[DecoderState]
) -> tuple[torch.Tensor, list[DecoderState]]:
    """One decoder step of every member: tokens [N] -> mean log-probabilities [N, V], new states.

    The mean of log-probabilities is the log of the members' geometric mean, not renormalised.
    """
    outs = [m.decoder.step(tokens, s) for m, s in zip(models, states)]
    if len(outs) == 1:
        log_probs = outs[0][0].log_softmax(-1)  # [N, V]
    else:
        log_probs = torch.stack([logits.log_softmax(-1) for logits, _ in outs]).mean(0)  # [N, V]
    return forbid_specials(log_probs), [s for _, s in outs]


def forbid_specials(scores: torch.Tensor) -> torch.Tensor:
    """Never generate <pad> or <sos>: -inf at their ids of scores [N, V] (in place).

    A trained model gives them almost no mass anyway; forbidding them keeps <pad> unambiguous as
    the filler after a hypothesis ends.
    """
    scores[:, PAD_ID] = float("-inf")
    scores[:, SOS_ID] = float("-inf")
    return scores


def _step_top(
    models: list[Seq2Seq], tokens: torch.Tensor, states: list[DecoderState], width: int
) -> tuple[torch.Tensor, torch.Tensor, list[DecoderState]]:
    """The `width` most likely next tokens of each row: log-probabilities and ids [N, width], states."""
    log_probs, states = step_log_probs(models, tokens, states)  # [N, V]
    top_lp, top_tok = log_probs.topk(min(width, log_probs.size(1)), dim=1)  # [N, width]
    return top_lp, top_tok, states


def _select(states: list[DecoderState], index: torch.Tensor) -> list[DecoderState]:
    return [s.select(index) for s in states]


@torch.no_grad()
def greedy(
    models: Models,
    src: torch.Tensor,
    src_len: torch.Tensor,
    max_len_a: float = DEFAULTS.max_len_a,
    max_len_b: int = DEFAULTS.max_len_b,
) -> torch.Tensor:
    """Batched greedy decoding: [B, S] -> [B, T] ids, <eos> then <pad> after each sentence ends."""
    models = as_ensemble(models)
    batch, device = src.size(0), src.device
    host_limits = max_lengths(src_len.cpu(), max_len_a, max_len_b)  # [B], read on the host
    limits = host_limits.to(device)
    states = encode(models, src, src_len)
    alive = torch.arange(batch, device=device)  # sentences still decoding, as rows of `out`
    tokens = torch.full((batch,), SOS_ID, dtype=torch.long, device=device)
    out = torch.full((batch, max(host_limits.tolist())), PAD_ID, dtype=torch.long, device=device)
    steps = 0
    # One device read per step (how many sentences go on), plus one when some stop.
    for t in range(out.size(1)):
        if len(models) == 1:  # argmax of the logits is argmax of the log-probabilities
            logits, state = models[0].decoder.step(tokens, states[0])  # [N, V]
            logits, states = forbid_specials(logits), [state]
        else:
            logits, states = step_log_probs(models, tokens, states)  # [N, V]
        tokens = logits.argmax(-1)  # [N]
        out[alive, t] = tokens
        steps = t + 1
        keep = (tokens != EOS_ID) & (t + 1 < limits[alive])  # [N]
        going = int(keep.sum())
        if going < keep.numel():
            if going == 0:
                break
            rows = keep.nonzero().squeeze(1)
            alive, tokens, states = alive[rows], tokens[rows], _select(states, rows)
    return out[:, :steps]  # [B, T]


@dataclass
class _Best:
    """The best complete hypothesis of every sentence so far, indexed by sentence."""

    ids: torch.Tensor  # [B, max_steps]
    score: torch.Tensor  # [B], normalised by length if length_normalize
    n_complete: torch.Tensor  # [B] complete hypotheses seen

    def update(self, alive, top_scores, top_tok, top_beam, history, last, k: int, t: int, normalize: bool):
        """Take the step's complete candidates: <eos> among the K best, or any of the K best at the
        length limit. Every alive sentence's row is rewritten, with its old value where no candidate is
        better: masked writes instead of selecting the better rows, which would read the device."""
        device = top_scores.device
        in_top_k = torch.arange(top_scores.size(1), device=device) < k  # [2K]
        complete = in_top_k & torch.isfinite(top_scores) & ((top_tok == EOS_ID) | last)  # [N, 2K]
        ranked = top_scores / (t + 1) if normalize else top_scores
        cand_best, cand_pos = ranked.masked_fill(~complete, float("-inf")).max(1)  # [N]
        better = cand_best > self.score[alive]  # [N]
        pick = cand_pos.unsqueeze(1)  # [N, 1]
        prefix = history[
            torch.arange(len(alive), device=device), top_beam.gather(1, pick).squeeze(1)
        ]  # [N, t]
        found = torch.cat([prefix, top_tok.gather(1, pick)], dim=1)  # [N, t+1]
        old = self.ids[alive]  # [N, max_steps]
        new = torch.cat([found, torch.full_like(old[:, t + 1 :], PAD_ID)], dim=1)  # [N, max_steps]
        self.ids[alive] = torch.where(better.unsqueeze(1), new, old)
        self.score[alive] = torch.where(better, cand_best, self.score[alive])
        self.n_complete[alive] += complete.sum(1)


def _continue(top_scores, top_tok, top_beam, history, states, h: int, k: int):
    """The K best partial hypotheses of each sentence continue (stable sort keeps their score order):
    their scores [N, K], histories [N, K, t+1], decoder states and last tokens [N*K]."""
    n, t, device = top_scores.size(0), history.size(2), top_scores.device
    partial = torch.isfinite(top_scores) & (top_tok != EOS_ID)  # [N, 2K]
    order = torch.sort((~partial).to(torch.uint8), dim=1, stable=True).indices[:, :k]  # [N, K]
    scores = top_scores.gather(1, order).masked_fill(~partial.gather(1, order), float("-inf"))  # [N, K]
    beams, new_tokens = top_beam.gather(1, order), top_tok.gather(1, order)  # [N, K]
    history = torch.cat(
        [history.gather(1, beams.unsqueeze(-1).expand(-1, -1, t)), new_tokens.unsqueeze(-1)], dim=2
    )  # [N, K, t+1]
    rows = (torch.arange(n, device=device).unsqueeze(1) * h + beams).view(-1)  # [N*K]
    return scores, history, _select(states, rows), new_tokens.view(-1)


@torch.no_grad()
def beam_search(
    models: Models,
    src: torch.Tensor,
    src_len: torch.Tensor,
    beam_size: int,
    length_normalize: bool = DEFAULTS.length_normalize,
    max_len_a: float = DEFAULTS.max_len_a,
    max_len_b: int = DEFAULTS.max_len_b,
) -> torch.Tensor:
    """Batched beam search: [B, S] -> [B, T] ids of each sentence's best complete hypothesis."""
    models = as_ensemble(models)
    if beam_size < 1:
        raise S2SError(f"beam size must be at least 1, got {beam_size}")
    batch, k, device = src.size(0), beam_size, src.device
    host_limits = max_lengths(src_len.cpu(), max_len_a, max_len_b)  # [B], read on the host
    limits, max_steps = host_limits.to(device), max(host_limits.tolist())
    best = _Best(
        torch.full((batch, max_steps), PAD_ID, dtype=torch.long, device=device),
        torch.full((batch,), float("-inf"), device=device),
        torch.zeros(batch, dtype=torch.long, device=device),
    )
    # The partial hypotheses of the sentences still decoding (N of them, H each): row i*H + j of the
    # states. Every sentence starts with one empty hypothesis (H = 1), so the first step runs N rows,
    # not N*K; from the second step on H = K (fewer only if the vocabulary is tiny).
    alive = torch.arange(batch, device=device)  # [N] sentence of each alive row
    states = encode(models, src, src_len)  # N*H rows
    tokens = torch.full((batch,), SOS_ID, dtype=torch.long, device=device)  # [N*H]
    scores = torch.zeros(batch, 1, device=device)  # [N, H]
    history = torch.zeros(batch, 1, 0, dtype=torch.long, device=device)  # [N, H, t]

    for t in range(max_steps):
        n, h = scores.shape
        # 2K candidates: at most K of them end in <eos>, so K partial ones always remain. The best
        # 2K of all H*V extensions are among the best 2K of each hypothesis: select in two stages.
        row_lp, row_tok, states = _step_top(models, tokens, states, 2 * k)  # [N*H, W] each, W <= 2K
        width = row_lp.size(1)
        cand = (scores.unsqueeze(-1) + row_lp.view(n, h, width)).view(n, h * width)  # [N, H*W]
        top_scores, top_idx = cand.topk(min(2 * k, h * width), dim=1)  # [N, C], C <= 2K
        top_beam = top_idx // width  # [N, C]
        top_tok = row_tok.view(n, h * width).gather(1, top_idx)  # [N, C]
        last = (t + 1 >= limits[alive]).unsqueeze(1)  # [N, 1]
        best.update(alive, top_scores, top_tok, top_beam, history, last, k, t, length_normalize)

        scores, history, states, tokens = _continue(top_scores, top_tok, top_beam, history, states, h, k)

        done = last.squeeze(1) | (best.n_complete[alive] >= k) | ~torch.isfinite(scores[:, 0])
        if not length_normalize:  # partial scores only fall: none can overtake the best complete one
            done |= best.score[alive] >= scores[:, 0]
        finished = int(done.sum())  # the step's one device read (and one more when some stop)
        if finished == done.numel():
            break
        if finished:
            keep = (~done).nonzero().squeeze(1)  # [N']
            alive, scores, history = alive[keep], scores[keep], history[keep]
            kept = scores.size(1)
            flat = (keep.unsqueeze(1) * kept + torch.arange(kept, device=device)).view(-1)  # [N'*K]
            states, tokens = _select(states, flat), tokens[flat]

    lengths = (best.ids != PAD_ID).sum(1)
    return best.ids[:, : max(int(lengths.max()), 1)]  # [B, T]


def decode(
    models: Models,
    src: torch.Tensor,
    src_len: torch.Tensor,
    beam_size: int = DEFAULTS.beam_size,
    length_normalize: bool = DEFAULTS.length_normalize,
    max_len_a: float = DEFAULTS.max_len_a,
    max_len_b: int = DEFAULTS.max_len_b,
) -> torch.Tensor:
    """Greedy for beam size 1, beam search otherwise: [B, S] -> [B, T] ids."""
    if beam_size == 1:
        return greedy(models, src, src_len, max_len_a, max_len_b)
    return beam_search(models, src, src_len, beam_size, length_normalize, max_len_a, max_len_b)


@torch.no_grad()
def sequence_log_probs(
    models: Models, src: torch.Tensor, src_len: torch.Tensor, hyps: torch.Tensor
) -> torch.Tensor:
    """Teacher-forced model score of each hypothesis: hyps [B, T] (greedy's format) -> [B].

    The sum of the (ensemble-averaged) log-probabilities of its tokens up to and including <eos>,
    the quantity beam search maximises before length normalisation.
    """
    models = as_ensemble(models)
    tgt_in = torch.cat([torch.full_like(hyps[:, :1], SOS_ID), hyps[:, :-1]], dim=1)  # [B, T]
    log_probs = torch.stack(
        [m.decoder(tgt_in, m.encode(src, src_len))[0].log_softmax(-1) for m in models]
    ).mean(0)  # [B, T, V]
    token_lp = log_probs.gather(2, hyps.unsqueeze(-1)).squeeze(-1)  # [B, T]
    return torch.where(hypothesis_mask(hyps), token_lp, torch.zeros_like(token_lp)).sum(1)


def hypothesis_mask(hyps: torch.Tensor) -> torch.Tensor:
    """True at every generated position of hyps [B, T]: up to and including the first <eos>.

    Search never generates <pad>, so <pad> only ever fills the positions after the end.
    """
    is_eos = (hyps == EOS_ID).long()
    before_eos = (is_eos.cumsum(1) - is_eos) == 0  # no <eos> strictly before this position
    return before_eos & (hyps != PAD_ID)


def hypothesis_lengths(hyps: torch.Tensor) -> torch.Tensor:
    """Generated tokens per hypothesis, <eos> included: [B, T] -> [B]."""
    return hypothesis_mask(hyps).sum(1)
