"""Training speed: target tokens/s and peak memory of one config, length-bucketed vs random batches.

    python -m s2s_lightning.bench_train [--steps 30] [--threads N] [--device cpu|cuda] [KEY=VALUE ...]

The KEY=VALUE overrides are those of `s2s train` (e.g. data.name=multi30k model.num_layers=4
model.hidden_dim=1000). Each variant runs `--steps` optimizer steps of the plain model (after
`--warmup` steps) on the configured training data, with the configured teacher-forcing ratio;
tokens/s counts real target tokens, not padding, so it is the number the paper's claim is about
(same-length minibatches about doubled its speed). Peak memory is the GPU's allocator peak on CUDA
and the process's maximum RSS on CPU (that one covers the whole run, not each variant).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time

import torch

from .config import load_config
from .data import DataBundle
from .errors import S2SError
from .model import Seq2Seq, lstm_dtype, mixed_dtype
from .records import peak_memory_mb
from .system import batch_nll


def autocast(cfg, device: torch.device):
    """The autocast context of `train.precision` as Lightning applies it: bf16-mixed / 16-mixed run the
    forward pass and loss in reduced precision, weights and optimizer state stay fp32."""
    dtype = mixed_dtype(cfg.train.precision)
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def measure(
    cfg, bundle: DataBundle, bucketing: bool, steps: int, warmup: int, device: torch.device, ready=None
) -> dict:
    """Target tokens/s, seconds per step, the share of padded slots and (CUDA) peak memory, at
    `train.precision`. `ready()`, if given, is called after the warm-up steps, before the clock starts
    (processes measured together wait there for each other)."""
    torch.manual_seed(cfg.seed)
    model = Seq2Seq(len(bundle.src_vocab), len(bundle.tgt_vocab), cfg.model).to(device).train()
    model.set_lstm_dtype(lstm_dtype(cfg.train.lstm_precision, cfg.train.precision, device.type))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr, fused=device.type == "cuda")
    batches = itertools.cycle(bundle.loader("train", shuffle=True, bucketing=bucketing, device_type=device.type))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    tokens = real = slots = sentences = 0
    for step in range(warmup + steps):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if ready is not None:
                ready()
            start, tokens, real, slots, sentences = time.perf_counter(), 0, 0, 0, 0
        host = next(batches)
        b = host.to(device)
        with autocast(cfg, device):
            nll, _ = batch_nll(model, b, cfg.train.teacher_forcing_ratio)
        opt.zero_grad(set_to_none=True)
        (nll / b.num_tokens).backward()
        if cfg.train.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        opt.step()
        # Counted from the host batch: the step reads nothing back from the device.
        tokens += b.num_tokens
        sentences += len(b)
        real += b.num_tokens + int(host.src_len.sum())  # source and target tokens ...
        slots += host.tgt_out.numel() + host.src.numel()  # ... and the padded slots they occupy
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    return {
        "tokens": tokens,  # target tokens trained on in the timed steps (with <eos>, without padding)
        "tokens_per_s": tokens / seconds,
        "src_tokens_per_s": (real - tokens) / seconds,  # source tokens (with <eos>, without padding)
        "sentences_per_s": sentences / seconds,
        "s_per_step": seconds / steps,
        "padding": 1 - real / slots,
        "peak_mb": peak_memory_mb(device) if device.type == "cuda" else None,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30, help="timed optimizer steps per variant")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--device", default="cpu")
    p.add_argument("overrides", nargs="*", help="KEY=VALUE config overrides, as for `s2s train`")
    args = p.parse_args(argv)
    try:
        if args.steps < 1 or args.warmup < 0:
            raise S2SError("--steps must be at least 1 and --warmup at least 0")
        cfg = load_config(None, args.overrides)
        bundle = DataBundle(cfg)
    except S2SError as exc:
        print(f"bench_train: error: {exc}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    m = cfg.model
    print(
        f"config: {cfg.data.name}, {m.num_layers} x {m.hidden_dim} LSTM, embedding {m.embedding_dim}, "
        f"peeky {m.peeky}, batch {cfg.data.batch_size}, teacher forcing {cfg.train.teacher_forcing_ratio}; "
        f"{device}, {torch.get_num_threads()} threads; {args.steps} steps after {args.warmup} warm-up"
    )
    print(f"{'batches':<10} {'tokens/s':>10} {'s/step':>8} {'padding':>8} {'peak MiB':>9}")
    results = {}
    for name, bucketing in (("bucketed", True), ("random", False)):
        r = results[name] = measure(cfg, bundle, bucketing, args.steps, args.warmup, device)
        peak = f"{r['peak_mb']:.0f}" if r["peak_mb"] is not None else "-"
        print(f"{name:<10} {r['tokens_per_s']:>10.0f} {r['s_per_step']:>8.3f} {r['padding']:>8.1%} {peak:>9}")
    print(f"bucketing speed-up: {results['bucketed']['tokens_per_s'] / results['random']['tokens_per_s']:.2f}x")
    if device.type == "cpu":
        print(f"peak memory (process max RSS): {peak_memory_mb(device):.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
