"""The LSTM sequence-to-sequence model of Sutskever et al. (2014), with the book's Peeky decoder.

Plain torch.nn: no Lightning, W&B or Optuna here. The decoder exposes `forward` (the whole target,
teacher forced, one LSTM call) and `step` (one token); search code lives in `search.py` and drives
`step`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from .config import EvalConfig, ModelConfig, TrainConfig
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


def run_lstm(lstm: nn.LSTM, x, hx, dtype: torch.dtype | None):
    """`lstm(x, hx)` in `dtype` under autocast, whatever autocast would choose; None: as autocast has it.

    Autocast's CUDA wrapper for cuDNN RNNs casts to float16 whatever dtype autocast was given (and
    nothing scales the loss under bf16-mixed), so the recurrent layers' precision is decided here,
    per device (`lstm_dtype`), not left to autocast. Returns the LSTM's output and (h, c)."""
    packed = isinstance(x, PackedSequence)
    device_type = (x.data if packed else x).device.type
    if dtype is None or (dtype != torch.float32 and not torch.is_autocast_enabled(device_type)):
        return lstm(x, hx)  # outside mixed precision (evaluation after training): as the weights are
    if dtype == torch.bfloat16 and device_type == "cpu" and not packed and torch.is_autocast_enabled("cpu"):
        if torch.get_autocast_dtype("cpu") == torch.bfloat16:
            # CPU autocast runs oneDNN's LSTM in true bf16 and caches the cast weights; a packed sequence it
            # leaves in fp32 (another overload), hence the explicit cast below for those.
            return lstm(x, hx)
    with torch.autocast(device_type, enabled=False):
        x = x.to(dtype)
        hx = tuple(t.to(dtype) for t in hx) if hx is not None else None
        if dtype == torch.float32:
            return lstm(x, hx)
        weights = {name: p.to(dtype) for name, p in lstm.named_parameters()}
        return functional_call(lstm, weights, (x, hx))


class Encoder(nn.Module):
    def __init__(self, vocab_size: int, cfg: ModelConfig):
        super().__init__()
        self.lstm_dtype: torch.dtype | None = None  # Seq2Seq.set_lstm_dtype
        self.ran_in: dict[str, str] = {}  # the dtypes its last forward ran in (recorded by a run)
        self.embedding = nn.Embedding(vocab_size, cfg.embedding_dim, padding_idx=PAD_ID)
        self.lstm = nn.LSTM(
            cfg.embedding_dim,
            cfg.hidden_dim,
            cfg.num_layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, src: torch.Tensor, src_len: torch.Tensor, uniform: bool | None = None) -> DecoderState:
        """src [B, S] padded ids; src_len [B] lengths, best kept on the host (packing reads them there);
        `uniform`: whether every source has length S (None: read from src_len)."""
        assert src.dim() == 2 and src_len.shape == src.shape[:1], (src.shape, src_len.shape)
        emb = self.dropout(self.embedding(src))  # [B, S, E]
        lengths = src_len.cpu()  # a no-op for host lengths; a device sync otherwise
        if uniform is None:
            uniform = min(lengths.tolist()) == src.size(1)
        if uniform:
            # Same length everywhere: packing changes nothing but the speed (a packed cuDNN LSTM is
            # several times slower than a padded one at these lengths, pytorch#149194).
            y, (h, c) = run_lstm(self.lstm, emb, None, self.lstm_dtype)  # [L, B, H] each
        else:
            # Packing makes padding invisible: the final state is taken at each sentence's own end. Sorted
            # here, as pack_padded_sequence(enforce_sorted=False) would, but with the order sent to the
            # device without blocking: that function's own copy of it waits for the GPU (a sync a batch).
            sorted_lengths, order = torch.sort(lengths, descending=True)  # on the host
            unorder = torch.empty_like(order)
            unorder[order] = torch.arange(order.numel())
            order, unorder = (t.to(emb.device, non_blocking=True) for t in (order, unorder))
            packed = pack_padded_sequence(emb.index_select(0, order), sorted_lengths, batch_first=True)
            y, (h, c) = run_lstm(self.lstm, packed, None, self.lstm_dtype)  # [L, B, H] in sorted order
            h, c, y = h.index_select(1, unorder), c.index_select(1, unorder), y.data
        self.ran_in = {"encoder_lstm": dtype_name(y)}
        return DecoderState(h, c, h[-1])


class Decoder(nn.Module):
    def __init__(self, vocab_size: int, cfg: ModelConfig):
        super().__init__()
        self.peeky = cfg.peeky
        self.lstm_dtype: torch.dtype | None = None  # Seq2Seq.set_lstm_dtype
        self.ran_in: dict[str, str] = {}
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

    def features(self, tgt_in: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        """The output layer's inputs for the whole target in one LSTM call: [B, T] -> [B, T, H(+H)]."""
        assert tgt_in.dim() == 2 and tgt_in.size(0) == state.h.size(1), (tgt_in.shape, state.h.shape)
        x = self._peek(self.dropout(self.embedding(tgt_in)), state.summary)  # [B, T, E(+H)]
        y, (h, c) = run_lstm(self.lstm, x, (state.h, state.c), self.lstm_dtype)  # y: [B, T, H]
        self.ran_in = {"decoder_lstm": dtype_name(y)}
        return self._peek(self.dropout(y), state.summary), DecoderState(h, c, state.summary)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """The output layer: [..., H(+H)] -> logits [..., V]."""
        logits = self.out(features)
        self.ran_in["output_layer"] = dtype_name(logits)
        return logits

    def forward(self, tgt_in: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        """Teacher-forced logits for the whole target in one LSTM call: [B, T] -> [B, T, V]."""
        features, state = self.features(tgt_in, state)  # [B, T, H(+H)]
        return self.project(features), state

    def step(self, tokens: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        """One step: tokens [B] -> logits [B, V] and the next state."""
        logits, state = self.forward(tokens.unsqueeze(1), state)  # [B, 1, V]
        return logits.squeeze(1), state


class Seq2Seq(nn.Module):
    checkpoint_position: dict | None = None  # where in training its loaded checkpoint was written

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

    def set_lstm_dtype(self, dtype: torch.dtype | None) -> None:
        """The dtype the encoder's and decoder's LSTMs run in (None: as autocast has it); `lstm_dtype`."""
        self.encoder.lstm_dtype = self.decoder.lstm_dtype = dtype

    def ran_in(self) -> dict[str, str]:
        """The dtypes the last forward pass ran in: encoder_lstm, decoder_lstm, output_layer."""
        return {**self.encoder.ran_in, **self.decoder.ran_in}

    def encode(self, src: torch.Tensor, src_len: torch.Tensor, uniform: bool | None = None) -> DecoderState:
        return self.encoder(src, src_len, uniform)

    def forward(
        self,
        src: torch.Tensor,
        src_len: torch.Tensor,
        tgt_in: torch.Tensor,
        teacher_forcing_ratio: float = 1.0,
        generator: torch.Generator | None = None,
        positions: torch.Tensor | None = None,
        uniform: bool | None = None,
    ) -> torch.Tensor:
        """Logits [B, T, V] for targets tgt_in [B, T] (<sos> y1 .. yn); with `positions` (flat indices
        into [B * T], e.g. the real target positions, Batch.tgt_pos) only those rows: [N, V].

        At ratio 1.0 the decoder reads the whole target in one call, and the output layer (the largest
        matmul) runs only at `positions`. Below 1.0 (scheduled sampling), each input token after <sos>
        is replaced by the model's previous argmax with probability 1 - ratio, so the decoder runs step
        by step. `uniform`: every source has the full length (Batch.uniform; skips packing).
        """
        state = self.encode(src, src_len, uniform)
        if teacher_forcing_ratio >= 1.0:
            if positions is None:
                return self.decoder(tgt_in, state)[0]
            features, _ = self.decoder.features(tgt_in, state)  # [B, T, D]
            return self.decoder.project(features.reshape(-1, features.size(-1)).index_select(0, positions))
        # Which positions keep the true token: [B, T]; drawn up front, on the device, so the loop has no
        # RNG calls and nothing crosses from the host per step.
        where = generator.device if generator is not None else tgt_in.device
        keep = (
            torch.rand(tgt_in.shape, generator=generator, device=where).to(tgt_in.device)
            < teacher_forcing_ratio
        )
        logits = self.decode_scheduled(tgt_in, state, keep)  # [B, T, V]
        if positions is None:
            return logits
        return logits.reshape(-1, logits.size(-1)).index_select(0, positions)  # [N, V]

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


def dtype_name(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def mixed_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a Lightning mixed `train.precision`; None for full precision."""
    return {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(str(precision))


LSTM_PRECISIONS = ("auto", "fp32", "bf16")
# bf16-mixed on a CPU: the LSTMs in bf16 (oneDNN) or fp32, chosen by measuring both (README, speed section).
CPU_BF16_LSTM_DTYPE = torch.bfloat16


def lstm_dtype(policy: str, precision: str, device_type: str) -> torch.dtype:
    """The dtype the LSTMs run in under `train.lstm_precision=policy` and `train.precision`.

    Full precision runs them in fp32. Under mixed precision, "32" keeps them in fp32 and "bf16" casts
    them to bf16 explicitly (not through autocast); "auto" is fp32 on CUDA (cuDNN's autocast would run
    them in fp16 without a loss scaler) and CPU_BF16_LSTM_DTYPE on a CPU under bf16-mixed."""
    mixed = mixed_dtype(precision)
    if mixed is None or policy == "fp32":
        return torch.float32
    if policy == "bf16":
        return torch.bfloat16
    if device_type == "cpu" and mixed == torch.bfloat16:
        return CPU_BF16_LSTM_DTYPE
    return torch.float32


DECODE_BATCH_SIZE = {"cpu": 64, "cuda": 512}  # eval.batch_size=auto


def fused_optimizer(cfg: TrainConfig, device_type: str) -> bool:
    """train.fused_optimizer resolved for the device: auto is fused on CUDA, unless a 16-mixed scaler
    would have to unscale before clipping (the validator refuses an explicit true there)."""
    if cfg.fused_optimizer != "auto":
        return bool(cfg.fused_optimizer)
    return device_type == "cuda" and not (cfg.precision.startswith("16") and cfg.grad_clip)


def decode_batch_size(cfg: EvalConfig, device_type: str) -> int:
    """eval.batch_size, resolved for the device the sentences are decoded on."""
    if cfg.batch_size != "auto":
        return cfg.batch_size
    return DECODE_BATCH_SIZE.get(device_type, DECODE_BATCH_SIZE["cpu"])


def use_tf32(enabled: bool, device_type: str) -> bool:
    """On CUDA, let float32 matmuls and cuDNN use TF32 tensor cores (train.tf32); returns whether they do."""
    if device_type != "cuda":
        return False
    torch.set_float32_matmul_precision("high" if enabled else "highest")
    torch.backends.cudnn.allow_tf32 = enabled
    return enabled


def deterministic_policy(setting: str | bool, device_type: str) -> dict:
    """What train.deterministic makes deterministic on `device_type` (recorded in `numerics`).

    true: torch's deterministic algorithms wherever it has them (a CUDA op without one warns) and
    cuDNN's deterministic kernels. On CUDA that costs a host sync every step: index_select's backward
    (the output layer on real positions) then runs a deterministic index_put_ whose range check reads
    the indices' max and min to the host. auto: all of it on a CPU (free: runs repeat exactly, resumes
    included), cuDNN's deterministic LSTM kernels on CUDA but the atomics of index_select's backward left
    as they are (no sync; the last bits of a gradient may differ between two runs). false: none."""
    full = setting is True or (setting == "auto" and device_type != "cuda")
    return {"setting": str(setting).lower(), "algorithms": full, "cudnn": setting is not False}


def use_deterministic(setting: str | bool, device_type: str) -> dict:
    """Apply deterministic_policy; returns it."""
    policy = deterministic_policy(setting, device_type)
    if policy["algorithms"]:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's own condition for it
    torch.use_deterministic_algorithms(policy["algorithms"], warn_only=True)
    torch.backends.cudnn.deterministic = policy["cudnn"]
    torch.backends.cudnn.benchmark = False
    # Deterministic mode would also fill every new tensor with NaN (a pass over memory per allocation).
    torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]  # (no stub)
    return policy


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
