"""`s2s bench`: one command for the speed of a config, training and decoding, on CPU or CUDA.

Training runs the plain model's optimizer steps on length-bucketed batches at teacher forcing 1.0 and
0.5; decoding runs greedy and beam-12 search on validation sentences. Every throughput names its unit:
source tokens/s and target tokens/s count real tokens (with <eos>, without padding), sentences/s whole
sentence pairs; decoding's target tokens are the generated ones. The model is untrained: speed only.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from .bench_train import autocast, measure
from .config import decode_batch_size, load_config
from .data import DataBundle, source_tensor
from .errors import S2SError
from .model import Seq2Seq, check_precision, lstm_dtype, use_tf32
from .records import peak_memory_mb
from .search import decode


def decode_speed(model: Seq2Seq, src_ids: list[list[int]], beam: int, batch_size: int, device, cfg) -> dict:
    """Sentences/s, source tokens/s and generated target tokens/s of `beam` search over `src_ids`."""
    model.eval()
    order = sorted(range(len(src_ids)), key=lambda i: len(src_ids[i]))
    generated = 0
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    with torch.no_grad():
        for s in range(0, len(order), batch_size):
            src, src_len = source_tensor([src_ids[i] for i in order[s : s + batch_size]])
            out = decode([model], src.to(device), src_len, beam, cfg.eval.length_normalize,
                         cfg.eval.max_len_a, cfg.eval.max_len_b)  # fmt: skip
            generated += (out > 0).sum()  # ids past <pad>: tokens and <eos> (read once, at the end)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    generated = int(generated)
    src_tokens = sum(len(s) + 1 for s in src_ids)
    return {"sentences_per_s": len(src_ids) / seconds, "src_tokens_per_s": src_tokens / seconds,
            "tgt_tokens_per_s": generated / seconds}  # fmt: skip


def profile_training(cfg, bundle: DataBundle, steps: int, warmup: int, device, top: int = 12) -> list[dict]:
    """The operators that took the most self time over `steps` training steps (torch.profiler): on
    CUDA by GPU time, on CPU by CPU time. Each: name, calls, self ms per step, share of the total."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        measure(cfg, bundle, True, steps, warmup, device)
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = [e for e in prof.key_averages() if getattr(e, attr, 0) > 0 and not e.key.startswith("ProfilerStep")]
    total = sum(getattr(e, attr) for e in events) or 1.0
    events.sort(key=lambda e: getattr(e, attr), reverse=True)
    return [
        {"op": e.key, "calls": e.count, "self_ms_per_step": getattr(e, attr) / 1000 / (steps + warmup),
         "share": getattr(e, attr) / total}
        for e in events[:top]
    ]  # fmt: skip


def run_bench(args: argparse.Namespace) -> int:
    if args.steps < 1 or args.sentences < 1:
        raise S2SError("--steps and --sentences must be at least 1")
    cfg = load_config(args.config, args.overrides)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise S2SError(f"unknown device '{args.device}' (cpu, cuda, cuda:1)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise S2SError("--device cuda: no CUDA device is visible")
    check_precision(cfg.train.precision, device.type)
    tf32 = use_tf32(cfg.train.tf32, device.type)
    lstm = lstm_dtype(cfg.train.lstm_precision, cfg.train.precision, device.type)
    bundle = DataBundle(cfg)
    results: dict = {"config": {"data": cfg.data.name, "layers": cfg.model.num_layers, "hidden": cfg.model.hidden_dim,
                                "embedding": cfg.model.embedding_dim, "peeky": cfg.model.peeky,
                                "batch_size": cfg.data.batch_size, "precision": str(cfg.train.precision), "tf32": tf32,
                                "lstm_dtype": str(lstm).removeprefix("torch.")},
                     "device": str(device), "threads": torch.get_num_threads(), "train": {}, "decode": {}}  # fmt: skip
    for ratio in (1.0, 0.5):
        ratio_cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"teacher_forcing_ratio": ratio})})
        r = measure(ratio_cfg, bundle, True, args.steps, args.warmup, device)
        results["train"][f"tf{ratio:g}"] = {
            "src_tokens_per_s": r["src_tokens_per_s"],
            "tgt_tokens_per_s": r["tokens_per_s"],
            "sentences_per_s": r["sentences_per_s"],
            "padding": r["padding"],
        }
    torch.manual_seed(cfg.seed)
    model = Seq2Seq(len(bundle.src_vocab), len(bundle.tgt_vocab), cfg.model).to(device)
    model.set_lstm_dtype(lstm)
    src_ids = bundle.splits["val"].src_ids[: args.sentences]
    for name, beam in (("greedy", 1), ("beam12", 12)):
        with autocast(cfg, device):
            batch_size = decode_batch_size(cfg.eval, device.type)
            results["decode"][name] = decode_speed(model, src_ids, beam, batch_size, device, cfg)
    results["peak_memory_mb"] = peak_memory_mb(device)
    if args.profile:
        results["profile"] = profile_training(cfg, bundle, min(args.steps, 5), 1, device)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    c = results["config"]
    print(f"{c['data']}: {c['layers']} x {c['hidden']} LSTM, embedding {c['embedding']}, peeky {c['peeky']}, "
          f"batch {c['batch_size']}, {c['precision']} (LSTMs {c['lstm_dtype']}{', TF32' if c['tf32'] else ''}); "
          f"{results['device']}, {results['threads']} threads")  # fmt: skip
    print(f"{'':<16} {'src tok/s':>10} {'tgt tok/s':>10} {'sent/s':>8} {'padding':>8}")
    for name, r in results["train"].items():
        print(f"{'train ' + name:<16} {r['src_tokens_per_s']:>10.0f} {r['tgt_tokens_per_s']:>10.0f} "
              f"{r['sentences_per_s']:>8.1f} {r['padding']:>8.1%}")  # fmt: skip
    for name, r in results["decode"].items():
        print(f"{'decode ' + name:<16} {r['src_tokens_per_s']:>10.0f} {r['tgt_tokens_per_s']:>10.0f} "
              f"{r['sentences_per_s']:>8.1f} {'':>8}")  # fmt: skip
    peak = "allocator peak" if device.type == "cuda" else "max RSS"
    print(
        "tok/s: real tokens with <eos>, no padding (decoding: target tokens generated); "
        f"peak memory {results['peak_memory_mb']:.0f} MiB ({peak})"
    )
    if "profile" in results:
        clock = "GPU" if device.type == "cuda" else "CPU"
        print(f"training steps profiled (teacher forcing {cfg.train.teacher_forcing_ratio:g}), by self {clock} time:")
        print(f"  {'op':<44} {'calls':>7} {'ms/step':>9} {'share':>7}")
        for r in results["profile"]:
            print(f"  {r['op'][:44]:<44} {r['calls']:>7} {r['self_ms_per_step']:>9.2f} {r['share']:>7.1%}")
    return 0
