"""`s2s bench`: the speed of a config, training and decoding, on CPU or CUDA (numbers, not tests).

Training runs the plain model's optimizer steps on length-bucketed batches at teacher forcing 1.0 and
0.5 (`--random-batches`: also on random batches, the paper's same-length minibatch speed-up); decoding
runs greedy and beam-12 search on validation sentences (`--one-at-a-time N`: also N of them one
sentence at a time, batching's speed-up, and the decoder step alone per row). Every throughput names
its unit: source tokens/s and target tokens/s count real tokens (with <eos>, without padding),
sentences/s whole sentence pairs; decoding's target tokens are the generated ones. The model is
untrained: speed only, so nearly every hypothesis runs to its length limit (the worst case). Peak
memory is the GPU allocator's peak on CUDA and the process's maximum RSS on CPU.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections.abc import Sequence

import torch

from .config import Config, load_config
from .data import DataBundle, source_tensor
from .environment import parse_device, peak_memory_mb
from .errors import S2SError
from .model import (
    Seq2Seq,
    check_precision,
    decode_batch_size,
    lstm_dtype,
    mixed_dtype,
    use_tf32,
)
from .search import decode
from .system import batch_nll

TEACHER_FORCING = (1.0, 0.5)
BEAMS = (("greedy", 1), ("beam12", 12))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(cfg: Config, device: torch.device):
    """The autocast context of `train.precision` as Lightning applies it: bf16-mixed / 16-mixed run the
    forward pass and loss in reduced precision, weights and optimizer state stay fp32."""
    dtype = mixed_dtype(cfg.train.precision)
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def measure(
    cfg: Config,
    bundle: DataBundle,
    bucketing: bool,
    steps: int,
    warmup: int,
    device: torch.device,
    ready=None,
) -> dict:
    """Target tokens/s, seconds per step, the share of padded slots and (CUDA) peak memory, at
    `train.precision`. `ready()`, if given, is called after the warm-up steps, before the clock starts
    (processes measured together wait there for each other)."""
    torch.manual_seed(cfg.seed)
    model = Seq2Seq(len(bundle.src_vocab), len(bundle.tgt_vocab), cfg.model).to(device).train()
    model.set_lstm_dtype(lstm_dtype(cfg.train.lstm_precision, cfg.train.precision, device.type))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr, fused=device.type == "cuda")
    batches = itertools.cycle(
        bundle.loader("train", shuffle=True, bucketing=bucketing, device_type=device.type)
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    tokens = real = slots = sentences = 0
    for step in range(warmup + steps):
        if step == warmup:
            _sync(device)
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
    _sync(device)
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


def decode_speed(
    model: Seq2Seq, src_ids: Sequence[list[int]], beam: int, batch_size: int, device, cfg
) -> dict:
    """Sentences/s, source tokens/s and generated target tokens/s of `beam` search over `src_ids`, in
    batches of `batch_size` sorted by length, as evaluation decodes."""
    model.eval()
    order = sorted(range(len(src_ids)), key=lambda i: len(src_ids[i]))
    generated = torch.zeros((), dtype=torch.long, device=device)
    e = cfg.eval
    _sync(device)
    start = time.perf_counter()
    with torch.no_grad():
        for s in range(0, len(order), batch_size):
            src, src_len = source_tensor([src_ids[i] for i in order[s : s + batch_size]])
            out = decode([model], src.to(device), src_len, beam, e.length_normalize, e.max_len_a, e.max_len_b)
            generated += (out > 0).sum()  # ids past <pad>: tokens and <eos> (read once, at the end)
    _sync(device)
    seconds = time.perf_counter() - start
    src_tokens = sum(len(s) + 1 for s in src_ids)
    return {
        "sentences_per_s": len(src_ids) / seconds,
        "src_tokens_per_s": src_tokens / seconds,
        "tgt_tokens_per_s": int(generated) / seconds,
    }


@torch.no_grad()
def step_time_per_row(model: Seq2Seq, rows: int, device: torch.device, reps: int) -> float:
    """Seconds per row of one `Decoder.step` (LSTM + output layer, no search) on a batch of `rows`."""
    vocab = model.decoder.out.out_features
    src = torch.randint(4, vocab, (rows, 10), device=device)
    state = model.encode(src, torch.full((rows,), 10))
    tokens = torch.randint(4, vocab, (rows,), device=device)
    for _ in range(2):
        model.decoder.step(tokens, state)
    _sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        model.decoder.step(tokens, state)
    _sync(device)
    return (time.perf_counter() - start) / reps / rows


def evenly_spaced(items: Sequence, n: int) -> list:
    """n items spread evenly over `items` (all of them if n >= len(items))."""
    if n >= len(items):
        return list(items)
    return [items[i * len(items) // n] for i in range(n)]


def profile_training(cfg, bundle: DataBundle, steps: int, warmup: int, device, top: int = 12) -> list[dict]:
    """The operators that took the most self time over `steps` training steps (torch.profiler): on
    CUDA by GPU time, on CPU by CPU time. Each: name, calls, self ms per step, share of the total."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        measure(cfg, bundle, True, steps, warmup, device)
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = [
        e for e in prof.key_averages() if getattr(e, attr, 0) > 0 and not e.key.startswith("ProfilerStep")
    ]
    total = sum(getattr(e, attr) for e in events) or 1.0
    events.sort(key=lambda e: getattr(e, attr), reverse=True)
    per_step = 1000 * (steps + warmup)
    return [
        {
            "op": e.key,
            "calls": e.count,
            "self_ms_per_step": getattr(e, attr) / per_step,
            "share": getattr(e, attr) / total,
        }
        for e in events[:top]
    ]


def _config_facts(cfg: Config, device: torch.device) -> dict:
    m = cfg.model
    lstm = lstm_dtype(cfg.train.lstm_precision, cfg.train.precision, device.type)
    return {
        "data": cfg.data.name,
        "layers": m.num_layers,
        "hidden": m.hidden_dim,
        "embedding": m.embedding_dim,
        "peeky": m.peeky,
        "batch_size": cfg.data.batch_size,
        "precision": str(cfg.train.precision),
        "tf32": use_tf32(cfg.train.tf32, device.type),
        "lstm_dtype": str(lstm).removeprefix("torch."),
    }


def _train_speeds(args: argparse.Namespace, cfg: Config, bundle: DataBundle, device) -> dict:
    """Per teacher-forcing ratio (and with --random-batches, on random batches at the configured ratio)."""
    out = {}
    variants = [(f"tf{r:g}", r, True) for r in TEACHER_FORCING]
    if args.random_batches:
        variants.append(("random", cfg.train.teacher_forcing_ratio, False))
    for name, ratio, bucketing in variants:
        ratio_cfg = cfg.model_copy(
            update={"train": cfg.train.model_copy(update={"teacher_forcing_ratio": ratio})}
        )
        r = measure(ratio_cfg, bundle, bucketing, args.steps, args.warmup, device)
        out[name] = {
            "src_tokens_per_s": r["src_tokens_per_s"],
            "tgt_tokens_per_s": r["tokens_per_s"],
            "sentences_per_s": r["sentences_per_s"],
            "padding": r["padding"],
        }
    return out


def _decode_speeds(
    args: argparse.Namespace, cfg: Config, bundle: DataBundle, device
) -> tuple[dict, dict | None]:
    """Batched decoding per search; with --one-at-a-time, the same searches one sentence at a time and
    the decoder step alone per row at K and batch x K rows (what bounds beam search's batching gain)."""
    torch.manual_seed(cfg.seed)
    model = Seq2Seq(len(bundle.src_vocab), len(bundle.tgt_vocab), cfg.model).to(device)
    model.set_lstm_dtype(lstm_dtype(cfg.train.lstm_precision, cfg.train.precision, device.type))
    src_ids = bundle.splits["val"].src_ids[: args.sentences]
    batch_size = decode_batch_size(cfg.eval, device.type)
    single_ids = evenly_spaced(sorted(src_ids, key=len), args.one_at_a_time or 0)
    batched: dict[str, dict] = {}
    single: dict[str, dict] | None = {} if args.one_at_a_time else None
    with autocast(cfg, device):
        for name, beam in BEAMS:
            batched[name] = decode_speed(model, src_ids, beam, batch_size, device, cfg)
            if single is not None:
                single[name] = decode_speed(model, single_ids, beam, 1, device, cfg)
        if single is not None:
            k, big = BEAMS[-1][1], BEAMS[-1][1] * batch_size
            rows = {n: step_time_per_row(model, n, device, max(3, 2000 // n)) for n in (k, big)}
            single["step_us_per_row"] = {str(n): t * 1e6 for n, t in rows.items()}
    return batched, single


def run_bench(args: argparse.Namespace) -> int:
    if args.steps < 1 or args.sentences < 1:
        raise S2SError("--steps and --sentences must be at least 1")
    if args.warmup < 0 or (args.one_at_a_time or 0) < 0:
        raise S2SError("--warmup and --one-at-a-time must be at least 0")
    cfg = load_config(args.config, args.overrides)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = parse_device(args.device)
    check_precision(cfg.train.precision, device.type)
    bundle = DataBundle(cfg)
    results: dict = {
        "config": _config_facts(cfg, device),
        "device": str(device),
        "threads": torch.get_num_threads(),
    }
    results["train"] = _train_speeds(args, cfg, bundle, device)
    results["decode"], single = _decode_speeds(args, cfg, bundle, device)
    if single is not None:
        results["decode_one_at_a_time"] = single
    results["peak_memory_mb"] = peak_memory_mb(device)
    if args.profile:
        results["profile"] = profile_training(cfg, bundle, min(args.steps, 5), 1, device)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print("\n".join(_text(results, cfg, device)))
    return 0


def _text(results: dict, cfg: Config, device: torch.device) -> list[str]:
    c = results["config"]
    lines = [
        f"{c['data']}: {c['layers']} x {c['hidden']} LSTM, embedding {c['embedding']}, peeky {c['peeky']}, "
        f"batch {c['batch_size']}, {c['precision']} "
        f"(LSTMs {c['lstm_dtype']}{', TF32' if c['tf32'] else ''}); "
        f"{results['device']}, {results['threads']} threads",
        f"{'':<16} {'src tok/s':>10} {'tgt tok/s':>10} {'sent/s':>8} {'padding':>8}",
    ]
    for name, r in results["train"].items():
        lines.append(
            f"{'train ' + name:<16} {r['src_tokens_per_s']:>10.0f} {r['tgt_tokens_per_s']:>10.0f} "
            f"{r['sentences_per_s']:>8.1f} {r['padding']:>8.1%}"
        )
    for name, r in results["decode"].items():
        lines.append(
            f"{'decode ' + name:<16} {r['src_tokens_per_s']:>10.0f} {r['tgt_tokens_per_s']:>10.0f} "
            f"{r['sentences_per_s']:>8.1f} {'':>8}"
        )
    peak = "allocator peak" if device.type == "cuda" else "max RSS"
    lines.append(
        "tok/s: real tokens with <eos>, no padding (decoding: target tokens generated); "
        f"peak memory {results['peak_memory_mb']:.0f} MiB ({peak})"
    )
    return lines + _speedup_lines(results) + _profile_lines(results, cfg, device)


def _speedup_lines(results: dict) -> list[str]:
    lines = []
    train = results["train"]
    if "random" in train:
        ratio = train[f"tf{TEACHER_FORCING[0]:g}"]["tgt_tokens_per_s"] / train["random"]["tgt_tokens_per_s"]
        lines.append(f"length bucketing speed-up over random batches (target tok/s): {ratio:.2f}x")
    single = results.get("decode_one_at_a_time")
    if single:
        for name, _ in BEAMS:
            ratio = results["decode"][name]["sentences_per_s"] / single[name]["sentences_per_s"]
            lines.append(f"decode {name}: batched {ratio:.1f}x the sentences/s of one sentence at a time")
        (k, small), (big_rows, big) = single["step_us_per_row"].items()
        lines.append(
            f"decoder step alone (no search), per row: {small:.1f} us at {k} rows, "
            f"{big:.2f} us at {big_rows} rows: {small / big:.1f}x"
        )
    return lines


def _profile_lines(results: dict, cfg: Config, device: torch.device) -> list[str]:
    if "profile" not in results:
        return []
    clock = "GPU" if device.type == "cuda" else "CPU"
    lines = [
        f"training steps profiled (teacher forcing {cfg.train.teacher_forcing_ratio:g}), by self {clock} "
        "time:",
        f"  {'op':<44} {'calls':>7} {'ms/step':>9} {'share':>7}",
    ]
    for r in results["profile"]:
        lines.append(f"  {r['op'][:44]:<44} {r['calls']:>7} {r['self_ms_per_step']:>9.2f} {r['share']:>7.1%}")
    return lines
