"""The LSTM sequence-to-sequence model of Sutskever et al. (2014), with the book's Peeky decoder.

Plain torch.nn: no Lightning, W&B or Optuna here. The decoder exposes `forward` (the whole target,
teacher forced, one LSTM call) and `step` (one token); search code lives in `search.py` and drives
`step`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from .config import ModelConfig
from .errors import S2SError
from .text import PAD_ID


@dataclass
class DecoderState:
    h: torch.Tensor  # [L, B, H]
    c: torch.Tensor  # [L, B, H]
    summary: torch.Tensor  # [B, H] the encoder's final top-layer hidden vector (Peeky's input)

    def select(self, index: torch.Tensor) -> DecoderState:
        """Rows `index` of the batch (beam search reorders and expands hypotheses with this)."""
        return DecoderState(self.h[:, index], self.c[:, index], self.summary[index])


class Encoder(nn.Module):
    def __init__(self, vocab_size: int, cfg: ModelConfig):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, cfg.embedding_dim, padding_idx=PAD_ID)
        self.lstm = nn.LSTM(
            cfg.embedding_dim,
            cfg.hidden_dim,
            cfg.num_layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, src: torch.Tensor, src_len: torch.Tensor) -> DecoderState:
        assert src.dim() == 2 and src_len.shape == src.shape[:1], (src.shape, src_len.shape)
        emb = self.dropout(self.embedding(src))  # [B, S, E]
        # Packing makes padding invisible: the final state is taken at each sentence's own end.
        packed = pack_padded_sequence(emb, src_len.cpu(), batch_first=True, enforce_sorted=False)
        _, (h, c) = self.lstm(packed)  # [L, B, H] each, in the batch's original order
        return DecoderState(h, c, h[-1])


class Decoder(nn.Module):
    def __init__(self, vocab_size: int, cfg: ModelConfig):
        super().__init__()
        self.peeky = cfg.peeky
        extra = cfg.hidden_dim if cfg.peeky else 0
        self.embedding = nn.Embedding(vocab_size, cfg.embedding_dim, padding_idx=PAD_ID)
        self.lstm = nn.LSTM(
            cfg.embedding_dim + extra,
            cfg.hidden_dim,
            cfg.num_layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(cfg.hidden_dim + extra, vocab_size)

    def _peek(self, x: torch.Tensor, summary: torch.Tensor) -> torch.Tensor:
        """Concatenate the encoder summary to every time step of x: [B, T, D] -> [B, T, D + H]."""
        if not self.peeky:
            return x
        return torch.cat([x, summary.unsqueeze(1).expand(-1, x.size(1), -1)], dim=-1)

    def forward(self, tgt_in: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        """Teacher-forced logits for the whole target in one LSTM call: [B, T] -> [B, T, V]."""
        assert tgt_in.dim() == 2 and tgt_in.size(0) == state.h.size(1), (tgt_in.shape, state.h.shape)
        x = self._peek(self.dropout(self.embedding(tgt_in)), state.summary)  # [B, T, E(+H)]
        y, (h, c) = self.lstm(x, (state.h, state.c))  # y: [B, T, H]
        logits = self.out(self._peek(self.dropout(y), state.summary))  # [B, T, V]
        return logits, DecoderState(h, c, state.summary)

    def step(self, tokens: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        """One step: tokens [B] -> logits [B, V] and the next state."""
        logits, state = self.forward(tokens.unsqueeze(1), state)  # [B, 1, V]
        return logits.squeeze(1), state


class Seq2Seq(nn.Module):
    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(src_vocab_size, cfg)
        self.decoder = Decoder(tgt_vocab_size, cfg)
        for p in self.parameters():  # the paper's initialisation
            nn.init.uniform_(p, -cfg.init_range, cfg.init_range)
        with torch.no_grad():  # keep <pad> embeddings at zero, as padding_idx promises
            self.encoder.embedding.weight[PAD_ID].zero_()
            self.decoder.embedding.weight[PAD_ID].zero_()

    def encode(self, src: torch.Tensor, src_len: torch.Tensor) -> DecoderState:
        return self.encoder(src, src_len)

    def forward(
        self,
        src: torch.Tensor,
        src_len: torch.Tensor,
        tgt_in: torch.Tensor,
        teacher_forcing_ratio: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Logits [B, T, V] for targets tgt_in [B, T] (<sos> y1 .. yn).

        At ratio 1.0 the decoder reads the whole target in one call. Below 1.0 (scheduled
        sampling), each input token after <sos> is replaced by the model's previous argmax with
        probability 1 - ratio, so the decoder runs step by step.
        """
        state = self.encode(src, src_len)
        if teacher_forcing_ratio >= 1.0:
            return self.decoder(tgt_in, state)[0]
        # Which positions keep the true token: [B, T]; drawn up front so the loop has no RNG calls.
        keep = torch.rand(tgt_in.shape, generator=generator, device="cpu").to(tgt_in.device) < teacher_forcing_ratio
        return self.decode_scheduled(tgt_in, state, keep)

    def decode_scheduled(self, tgt_in: torch.Tensor, state: DecoderState, keep: torch.Tensor) -> torch.Tensor:
        """Step-by-step decoding: input t+1 is tgt_in[:, t+1] where keep[:, t+1], else the previous
        step's argmax. Returns logits [B, T, V]. With keep all True it equals the one-call path."""
        logits, tokens = [], tgt_in[:, 0]
        for t in range(tgt_in.size(1)):
            step_logits, state = self.decoder.step(tokens, state)  # [B, V]
            logits.append(step_logits)
            if t + 1 < tgt_in.size(1):
                tokens = torch.where(keep[:, t + 1], tgt_in[:, t + 1], step_logits.argmax(-1))
        return torch.stack(logits, dim=1)  # [B, T, V]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def mixed_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a Lightning mixed `train.precision`; None for full precision."""
    return {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(str(precision))


def check_precision(precision: str, device_type: str) -> None:
    """Refuse a mixed precision this device cannot run an LSTM in, before anything is written: without
    bf16 kernels a CPU's oneDNN cannot build a bf16 LSTM ("could not create a primitive descriptor")."""
    mixed = mixed_dtype(precision)
    if mixed is None or device_type == "cuda":
        return
    lstm = nn.LSTM(4, 4, batch_first=True)
    try:
        with torch.no_grad(), torch.autocast(device_type, dtype=mixed):
            lstm(torch.zeros(1, 2, 4))
    except RuntimeError:
        raise S2SError(
            f"train.precision={precision}: this {device_type.upper()} cannot run an LSTM in "
            f"{str(mixed).removeprefix('torch.')} (no such kernel here); use train.precision=32-true on it, "
            "mixed precision on a GPU"
        ) from None
