"""Datasets and batches: `addition`, `multi30k` and the user's `parallel` files, and the bundle.

Every dataset becomes raw (source, target) lines per split, tokenized and numericalized through
text.py (tokenizers, vocabularies, reversal). Vocabularies are built on train only. Source reversal
happens on real tokens only, before batching, so the model never sees it.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .config import Config, DataConfig
from .corpus import MAX_SENTENCE_TOKENS, load_corpus
from .errors import S2SError
from .metrics import task_of
from .text import EOS_ID, PAD_ID, SOS_ID, TextCodec, Vocab, tokenize_all, tokenizers

log = logging.getLogger(__name__)
AUTO_CUDA_WORKERS = 2  # data.num_workers=auto on CUDA


# ----------------------------------------------------------------------------------------------
# Tokenized, numericalized examples.


@dataclass
class Split:
    src_ids: list[list[int]]  # source ids, reversed if configured, no specials
    tgt_ids: list[list[int]]  # target ids, no specials
    src_text: list[str]  # raw lines, for the written test files
    tgt_text: list[str]
    tgt_tokens: list[list[str]]  # tokenized references (tokenized BLEU, frequency analyses)


class SplitDataset(Dataset):
    def __init__(self, split: Split):
        self.split = split

    def __len__(self) -> int:
        return len(self.split.src_ids)

    def __getitem__(self, i: int) -> tuple[int, list[int], list[int]]:
        return i, self.split.src_ids[i], self.split.tgt_ids[i]


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar source length (the paper's same-length minibatches) in random order.

    Examples are shuffled, cut into pools of 50 batches, each pool sorted by length and cut into
    batches; the batches are then shuffled. Epoch-dependent but seeded, so runs repeat.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, bucketing: bool = True):
        self.lengths, self.batch_size, self.seed, self.bucketing = list(lengths), batch_size, seed, bucketing
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        rng = random.Random(self.seed * 100_003 + self.epoch)
        self.epoch += 1  # the next epoch differs even if nobody calls set_epoch
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        if self.bucketing:
            pool = self.batch_size * 50
            order = [
                i
                for s in range(0, len(order), pool)
                for i in sorted(order[s : s + pool], key=lambda i: self.lengths[i])
            ]
        batches = [order[s : s + self.batch_size] for s in range(0, len(order), self.batch_size)]
        rng.shuffle(batches)
        return batches

    @staticmethod
    def _rank_world() -> tuple[int, int]:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def __iter__(self) -> Iterator[list[int]]:
        # Under DDP every rank draws the same batches (same seed) and keeps its own share, all of
        # equal count so no rank waits at a collective for a batch the others do not have.
        rank, world = self._rank_world()
        batches = self._batches()
        per_rank = len(batches) // world if world > 1 else len(batches)
        return iter(batches[rank::world][:per_rank])

    def __len__(self) -> int:
        total = (len(self.lengths) + self.batch_size - 1) // self.batch_size
        return total // self._rank_world()[1]


class EvalBatchSampler(Sampler[list[int]]):
    """Batches of a split in order; under DDP each rank takes every world-th sentence, so every sentence is
    scored and decoded once across ranks and every rank has a batch (validation has no collective per
    step: the ranks' batch counts may differ by one)."""

    def __init__(self, size: int, batch_size: int):
        self.size, self.batch_size = size, batch_size

    def _mine(self) -> range:
        rank, world = BucketBatchSampler._rank_world()
        return range(rank, self.size, world)

    def __iter__(self) -> Iterator[list[int]]:
        mine = self._mine()
        for start in range(0, len(mine), self.batch_size):
            yield list(mine[start : start + self.batch_size])

    def __len__(self) -> int:
        return (len(self._mine()) + self.batch_size - 1) // self.batch_size


@dataclass
class Batch:
    index: torch.Tensor  # [B] positions in the split
    src: torch.Tensor  # [B, S] padded source ids (reversed if configured), <eos> last
    src_len: torch.Tensor  # [B] lengths including <eos>; stays on the host (packing reads it there)
    tgt_in: torch.Tensor  # [B, T] <sos> y1 .. yn
    tgt_out: torch.Tensor  # [B, T] y1 .. yn <eos>
    tgt_pos: torch.Tensor  # [N] flat indices into [B * T] of the real (non-pad) target positions
    uniform: bool  # every source has length S: the encoder needs no packing

    def to(self, device, non_blocking: bool = True) -> Batch:
        """On `device`, lengths kept on the host; copies are asynchronous from pinned memory."""
        index, src, tgt_in, tgt_out, tgt_pos = (
            t.to(device, non_blocking=non_blocking) for t in self._tensors()
        )
        return Batch(index, src, self.src_len, tgt_in, tgt_out, tgt_pos, self.uniform)

    def _tensors(self) -> tuple[torch.Tensor, ...]:
        """The tensors that go to the device: all but the lengths."""
        return self.index, self.src, self.tgt_in, self.tgt_out, self.tgt_pos

    def pin_memory(self) -> Batch:
        """Page-locked copies (DataLoader's pin_memory calls this), so `to(cuda)` does not block."""
        index, src, tgt_in, tgt_out, tgt_pos = (t.pin_memory() for t in self._tensors())
        return Batch(index, src, self.src_len, tgt_in, tgt_out, tgt_pos, self.uniform)

    @property
    def num_tokens(self) -> int:
        """Real target tokens (with <eos>): known on the host, so no step reads it from a device."""
        return self.tgt_pos.numel()

    def __len__(self) -> int:
        return self.src.size(0)


def _padded(seqs: Sequence[Sequence[int]], width: int, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, width] <pad>-filled ids with each sequence written from column `offset`, and the lengths [B];
    one tensor built from the concatenated ids, no Python loop over rows."""
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    out = torch.full((len(seqs), width), PAD_ID, dtype=torch.long)
    body = torch.arange(width - offset) < lengths.unsqueeze(1)  # [B, width - offset]
    out[:, offset:][body] = torch.tensor(list(chain.from_iterable(seqs)), dtype=torch.long)
    return out, lengths


def pad(seqs: Sequence[Sequence[int]]) -> torch.Tensor:
    return _padded(seqs, max(len(s) for s in seqs))[0]


def _with_eos(seqs: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, max + 1]: each sequence, then <eos>, then <pad>; and lengths with <eos>."""
    out, lengths = _padded(seqs, max(len(s) for s in seqs) + 1)
    out[torch.arange(len(seqs)), lengths] = EOS_ID
    return out, lengths + 1


def source_tensor(src_ids: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded [B, S] sources ending in <eos>, and their lengths [B]."""
    return _with_eos(src_ids)


def collate(items: list[tuple[int, list[int], list[int]]]) -> Batch:
    index, srcs, tgts = zip(*items)
    src, src_len = _with_eos(srcs)
    tgt_out, tgt_len = _with_eos(tgts)
    tgt_in, _ = _padded(tgts, tgt_out.size(1), offset=1)
    tgt_in[:, 0] = SOS_ID
    return Batch(
        torch.tensor(index),
        src,
        src_len,
        tgt_in,
        tgt_out,
        (tgt_out != PAD_ID).view(-1).nonzero().squeeze(1),
        min(src_len.tolist()) == src.size(1),
    )


class DataBundle:
    """Everything training and evaluation need from the data: the codec (tokenizers, vocabularies,
    reversal), tokenized and numericalized splits, training word counts and loaders."""

    def __init__(
        self,
        cfg: Config,
        src_vocab: Vocab | None = None,
        tgt_vocab: Vocab | None = None,
        roles: Sequence[str] = ("train", "val", "test"),
        counts: tuple[Counter, Counter] | None = None,
    ):
        """`roles`: the splits to prepare. Without "train", a trained run's vocabularies and training word
        counts (`counts`: source, target; records.read_counts) stand in for the training corpus, so
        evaluating a run never tokenizes its training data again."""
        self.cfg = cfg.data
        self.seed = cfg.seed
        self.task = task_of(cfg.data.name)
        if "train" not in roles and (src_vocab is None or tgt_vocab is None or counts is None):
            raise ValueError("without the train split, vocabularies and training word counts must be given")
        self.pair = tokenizers(cfg.data)
        corpus = load_corpus(cfg.data, cfg.seed) if roles else {}
        tokenized = {}
        for role in roles:
            sources, targets = corpus[role]
            limit = self.cfg.max_train_sentences if role == "train" else self.cfg.max_eval_sentences
            tokenized[role] = self._tokenize(role, sources[:limit], targets[:limit])
        if "train" in tokenized:
            train_src, train_tgt = tokenized["train"][0], tokenized["train"][1]
            counts = (
                Counter(t for sent in train_src for t in sent),
                Counter(t for sent in train_tgt for t in sent),
            )
            src_vocab = src_vocab or Vocab.build(train_src, self.cfg.min_freq, self.cfg.max_src_vocab)
            tgt_vocab = tgt_vocab or Vocab.build(train_tgt, self.cfg.min_freq, self.cfg.max_tgt_vocab)
        assert src_vocab is not None and tgt_vocab is not None and counts is not None  # checked above
        self.src_vocab, self.tgt_vocab = src_vocab, tgt_vocab
        self.src_freq, self.tgt_freq = counts  # training word counts: frequency ranks in analyses
        self.codec = TextCodec(cfg.data, self.src_vocab, self.tgt_vocab, self.pair)
        self.splits = {role: self._numericalize(role, *parts) for role, parts in tokenized.items()}

    def add_split(self, role: str, sources: Sequence[str], targets: Sequence[str]) -> Split:
        """Any line-aligned source/reference sentences, read as this bundle's run reads its test set."""
        self.splits[role] = self._numericalize(role, *self._tokenize(role, list(sources), list(targets)))
        return self.splits[role]

    def _tokenize(self, role, sources, targets):
        src_tok, tgt_tok, keep_src, keep_tgt = [], [], [], []
        dropped = {"empty": 0, "long": 0}
        tokenized = zip(tokenize_all(self.pair[0], sources), tokenize_all(self.pair[1], targets))
        for n, (s, t, (s_toks, t_toks)) in enumerate(zip(sources, targets, tokenized), start=1):
            if role == "train":
                if not s_toks or not t_toks:
                    dropped["empty"] += 1  # teaches nothing; evaluation keeps such lines, aligned
                    continue
                if self.cfg.max_length and max(len(s_toks), len(t_toks)) > self.cfg.max_length:
                    dropped["long"] += 1
                    continue
            longest = max(len(s_toks), len(t_toks))
            if longest > MAX_SENTENCE_TOKENS and not (role == "train" and self.cfg.max_length):
                raise S2SError(
                    f"{role} sentence {n} has {longest} tokens (limit {MAX_SENTENCE_TOKENS}); "
                    f"set data.max_length to drop long training pairs, or check the files are "
                    f"sentence-per-line"
                )
            src_tok.append(s_toks)
            tgt_tok.append(t_toks)
            keep_src.append(s)
            keep_tgt.append(t)
        if not src_tok:
            raise S2SError(
                f"the {role} split has no usable sentence pairs (all {len(sources)} are empty "
                f"or longer than data.max_length)"
            )
        for reason, count in dropped.items():
            if count:
                log.warning(
                    "dropped %d training pairs: %s",
                    count,
                    "a side is empty" if reason == "empty" else f"longer than {self.cfg.max_length} tokens",
                )
        return src_tok, tgt_tok, keep_src, keep_tgt

    def _numericalize(self, role, src_tok, tgt_tok, src_text, tgt_text) -> Split:
        src_ids = [self.codec.encode_source_tokens(s) for s in src_tok]
        return Split(src_ids, [self.tgt_vocab.encode(t) for t in tgt_tok], src_text, tgt_text, tgt_tok)

    def loader(
        self,
        role: str,
        shuffle: bool = False,
        batch_size: int | None = None,
        bucketing: bool | None = None,
        device_type: str = "cpu",
    ) -> DataLoader:
        """Shuffled batches (length-bucketed unless `bucketing`, default data.bucketing, is False) or
        batches in split order (each DDP rank its share). `device_type`: where the batches go, for
        data.num_workers and data.pin_memory set to auto."""
        split = self.splits[role]
        bs = batch_size or self.cfg.batch_size
        if shuffle:
            lengths = [len(s) for s in split.src_ids]
            bucketing = self.cfg.bucketing if bucketing is None else bucketing
            sampler: Sampler = BucketBatchSampler(lengths, bs, self.seed, bucketing)
        else:
            sampler = EvalBatchSampler(len(split.src_ids), bs)
        workers, pin = loader_settings(self.cfg, device_type)
        return DataLoader(
            SplitDataset(split),
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=workers,
            pin_memory=pin,
            persistent_workers=workers > 0,
        )


def loader_settings(cfg: DataConfig, device_type: str) -> tuple[int, bool]:
    """(worker processes, pinned memory) for batches bound for `device_type`. auto: on CUDA, batches
    are built by AUTO_CUDA_WORKERS workers (collating takes as long as a GPU step) into pinned memory;
    on a CPU in the training process (workers would take cores from training)."""
    cuda = device_type == "cuda"
    workers = cfg.num_workers if cfg.num_workers != "auto" else (AUTO_CUDA_WORKERS if cuda else 0)
    pin = cfg.pin_memory if cfg.pin_memory != "auto" else cuda
    return workers, bool(pin) and torch.cuda.is_available()
