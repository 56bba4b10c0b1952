"""Decoding outside the model: it drives `Decoder.step` and never touches Lightning.

`greedy` is batched; beam search and ensembles build on the same one-step interface.
"""

from __future__ import annotations

import torch

from .data import EOS_ID, PAD_ID, SOS_ID
from .model import Seq2Seq


def max_lengths(src_len: torch.Tensor, a: float, b: int) -> torch.Tensor:
    """Per-sentence output limits: a * source length + b tokens ([B])."""
    return (src_len.float() * a).long() + b


@torch.no_grad()
def greedy(model: Seq2Seq, src: torch.Tensor, src_len: torch.Tensor, max_len_a: float = 1.5,
           max_len_b: int = 10) -> torch.Tensor:
    """Batched greedy decoding: [B, S] -> [B, T] ids, <eos> then <pad> after each sentence ends."""
    limits = max_lengths(src_len, max_len_a, max_len_b).to(src.device)  # [B]
    state = model.encode(src, src_len)
    tokens = torch.full((src.size(0),), SOS_ID, dtype=torch.long, device=src.device)
    finished = torch.zeros(src.size(0), dtype=torch.bool, device=src.device)
    out = []
    for t in range(int(limits.max())):
        logits, state = model.decoder.step(tokens, state)  # [B, V]
        tokens = logits.argmax(-1)
        tokens = torch.where(finished, torch.full_like(tokens, PAD_ID), tokens)
        out.append(tokens)
        finished |= (tokens == EOS_ID) | (t + 1 >= limits)
        if finished.all():
            break
    return torch.stack(out, dim=1)  # [B, T]
