"""Decoding speed: sentences per second for greedy and beam search, batched vs one sentence at a time.

    python -m s2s_lightning.bench_search [--layers 2 --hidden 256 --vocab 8000 --beam 12 ...]

The model has random weights (speed does not depend on training), so nearly every hypothesis runs
to its length limit (1.5 * source length + 10): the numbers are for the longest outputs, the worst
case. One-at-a-time decoding runs on `--single` of the sentences only, to keep the run short: every
n-th of them in length order, so both runs decode the same mix of lengths.

The last line times the decoder step alone (LSTM + output layer) per row at K rows, what one
sentence's beam runs, and at batch x K rows, what the batched search runs. Where the step dominates
decoding (large models, large vocabularies) that ratio bounds beam search's speed-up, since batching
does not change the work per hypothesis; for small models the search's per-step bookkeeping, paid
once per batch instead of once per sentence, adds to it.
"""

from __future__ import annotations

import argparse
import time

import torch

from .config import ModelConfig
from .data import source_tensor
from .model import Seq2Seq
from .search import decode


def random_sources(n: int, vocab: int, min_len: int, max_len: int, seed: int = 0) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_len, max_len + 1, (n,), generator=g)
    return [torch.randint(4, vocab, (int(k),), generator=g).tolist() for k in lengths]


def evenly_spaced(items: list, n: int) -> list:
    """n items spread evenly over `items` (all of them if n >= len(items))."""
    if n >= len(items):
        return list(items)
    return [items[i * len(items) // n] for i in range(n)]


def sentences_per_s(
    model: Seq2Seq, sources: list[list[int]], beam: int, batch_size: int, device: torch.device
) -> float:
    """Decode `sources` in batches of `batch_size` sorted by length, as evaluation does."""
    order = sorted(sources, key=len)
    start = time.perf_counter()
    for i in range(0, len(order), batch_size):
        src, src_len = source_tensor(order[i : i + batch_size])
        decode(model, src.to(device), src_len.to(device), beam, True, 1.5, 10)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return len(sources) / (time.perf_counter() - start)


@torch.no_grad()
def step_time_per_row(model: Seq2Seq, rows: int, vocab: int, device: torch.device, reps: int) -> float:
    """Seconds per row of one `Decoder.step` (LSTM + output layer, no search) on a batch of `rows`."""
    src = torch.randint(4, vocab, (rows, 10), device=device)
    state = model.encode(src, torch.full((rows,), 10))
    tokens = torch.randint(4, vocab, (rows,), device=device)
    for _ in range(2):
        model.decoder.step(tokens, state)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(reps):
        model.decoder.step(tokens, state)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / reps / rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--embedding", type=int, default=256)
    p.add_argument("--vocab", type=int, default=8000)
    p.add_argument("--beam", type=int, default=12)
    p.add_argument("--sentences", type=int, default=128, help="sentences decoded in batches")
    p.add_argument("--single", type=int, default=16, help="sentences decoded one at a time")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--min-len", type=int, default=5)
    p.add_argument("--max-len", type=int, default=25)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    cfg = ModelConfig(num_layers=args.layers, hidden_dim=args.hidden, embedding_dim=args.embedding)
    model = Seq2Seq(args.vocab, args.vocab, cfg).to(device).eval()
    sources = random_sources(args.sentences, args.vocab, args.min_len, args.max_len)
    single = evenly_spaced(sorted(sources, key=len), args.single)
    decode(model, *[t.to(device) for t in source_tensor(single[:2])], 2, True, 1.5, 10)  # warm-up

    print(
        f"model: {args.layers} x {args.hidden} LSTM, embedding {args.embedding}, vocab {args.vocab}; "
        f"{device}, {torch.get_num_threads()} threads; source lengths {args.min_len}-{args.max_len}"
    )
    print(f"{'search':<10} {'batched (' + str(args.batch_size) + ')':>16} {'one at a time':>15} {'speed-up':>9}")
    for name, beam in (("greedy", 1), (f"beam {args.beam}", args.beam)):
        batched = sentences_per_s(model, sources, beam, args.batch_size, device)
        one = sentences_per_s(model, single, beam, 1, device)
        print(f"{name:<10} {batched:>12.1f} s/s {one:>11.1f} s/s {batched / one:>8.1f}x")
    # The model's own gain from batching bounds beam search's: one sentence's beam already runs its
    # K hypotheses as K rows, the batched search B*K rows, and the per-row work is the same.
    small, big = args.beam, args.beam * args.batch_size
    per_row = {n: step_time_per_row(model, n, args.vocab, device, max(3, 2000 // n)) for n in (small, big)}
    print(
        f"decoder step alone (no search), per row: {per_row[small] * 1e6:.1f} us at {small} rows, "
        f"{per_row[big] * 1e6:.2f} us at {big} rows: {per_row[small] / per_row[big]:.1f}x"
    )


if __name__ == "__main__":
    main()
