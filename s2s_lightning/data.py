"""Datasets and batches: `addition`, `multi30k` and the user's `parallel` files, and the bundle.

Every dataset becomes raw (source, target) lines per split, tokenized and numericalized through
text.py (tokenizers, vocabularies, reversal). Vocabularies are built on train only. Source reversal
happens on real tokens only, before batching, so the model never sees it.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import random
import shutil
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .config import Config, DataConfig
from .errors import S2SError
from .metrics import task_of
from .text import EOS_ID, PAD_ID, SOS_ID, TextCodec, Vocab, tokenizers

log = logging.getLogger(__name__)

MULTI30K_URL = "https://github.com/multi30k/dataset/raw/master/data/task1/raw/{file}"
MULTI30K_LANGS = ("de", "en", "fr", "cs")
MULTI30K_SPLITS = ("train", "val", "test_2016_flickr")
MULTI30K_SHA256 = {
    "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "train.fr.gz": "622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c",
    "train.cs.gz": "a65adb8b32e3bc664f21ecba7a6e7f6950fd1f405e135f7c312faabdb6255077",
    "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "val.fr.gz": "ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9",
    "val.cs.gz": "b63226e05c4bd5dd6a42897d74b86a1b9d2c31498252c572b1ea7f7996927fcc",
    "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
    "test_2016_flickr.fr.gz": "6d326e188d259fb1d04ac19eae3af956559b3a0b93d7635e56c90987c40c8b90",
    "test_2016_flickr.cs.gz": "200a4a74cc9560f051924abb9803be008d1908d77f747e9141aeb86dfd2797f1",
}
MULTI30K_ENV = "S2S_MULTI30K_DIR"
CACHE_ENV = "S2S_CACHE_DIR"
AUTO_CUDA_WORKERS = 2  # data.num_workers=auto on CUDA
MAX_SENTENCE_TOKENS = 1000  # longer lines are almost surely not sentences (misaligned or binary files)


# ----------------------------------------------------------------------------------------------
# Raw text per split.


Corpus = dict[str, tuple[list[str], list[str]]]  # split role (train/val/test) -> (sources, targets), raw lines


def make_addition(cfg: DataConfig, seed: int) -> Corpus:
    """Distinct "a+b" questions with a, b in 0..max_operand, split without overlap.

    Deterministic in `seed` alone. `digits` sampling follows the book's generator (digit count
    uniform, then uniform digits). Unlike the book's file, no question appears twice or in two
    splits, so test accuracy measures generalisation rather than memorisation.
    """
    a_cfg = cfg.addition
    sizes = {"train": a_cfg.train_size, "val": a_cfg.val_size, "test": a_cfg.test_size}
    total = sum(sizes.values())
    space = (a_cfg.max_operand + 1) ** 2
    if total > space // 2:
        raise S2SError(
            f"data.addition: {total} distinct questions requested; at most {space // 2} "
            f"can be drawn with max_operand={a_cfg.max_operand}"
        )
    rng = random.Random(f"addition-{seed}")
    digits = len(str(a_cfg.max_operand))

    def operand() -> int:
        if a_cfg.sampling == "uniform":
            return rng.randint(0, a_cfg.max_operand)
        while True:  # the book's: how many digits, then which digits
            value = int("".join(rng.choice("0123456789") for _ in range(rng.randint(1, digits))))
            if value <= a_cfg.max_operand:
                return value

    seen: set[tuple[int, int]] = set()
    pairs: list[tuple[int, int]] = []
    while len(pairs) < total:
        pair = (operand(), operand())
        if pair not in seen:
            seen.add(pair)
            pairs.append(pair)
    splits, start = {}, 0
    for name, size in sizes.items():
        chunk = pairs[start : start + size]
        start += size
        splits[name] = ([f"{a}+{b}" for a, b in chunk], [str(a + b) for a, b in chunk])
    return splits


def _read_lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="\n") as f:
            return [line.rstrip("\n").rstrip("\r") for line in f]
    except UnicodeDecodeError as exc:
        raise S2SError(f"{path} is not valid UTF-8 (byte {exc.start})") from None
    except (OSError, EOFError) as exc:
        raise S2SError(f"cannot read {path}: {exc}") from None


def _find_file(folder: Path, split: str, lang: str) -> Path | None:
    for name in (f"{split}.{lang}", f"{split}.{lang}.gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def multi30k_dir(cfg: DataConfig) -> Path:
    """The local folder to read: data.dir, $S2S_MULTI30K_DIR, else a download cache."""
    if cfg.dir:
        return Path(cfg.dir).expanduser()
    if os.environ.get(MULTI30K_ENV):
        return Path(os.environ[MULTI30K_ENV]).expanduser()
    cache = Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "s2s_lightning"))
    return cache / "multi30k"


def download_multi30k(folder: Path, files: Sequence[str]) -> None:
    """Fetch missing upstream files into `folder`, verifying each sha256 before it is kept; a folder made
    for a download that failed is removed again."""
    made = [p for p in (folder, *folder.parents) if not p.exists()]  # the folders this call creates
    folder.mkdir(parents=True, exist_ok=True)
    try:
        _download(folder, files)
    except S2SError:
        for path in made:  # innermost first; only those left empty
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        raise


def _download(folder: Path, files: Sequence[str]) -> None:
    for name in files:
        target = folder / name
        if target.is_file():
            continue
        tmp = target.with_suffix(target.suffix + ".part")
        try:
            with urllib.request.urlopen(MULTI30K_URL.format(file=name), timeout=30) as resp, open(tmp, "wb") as out:
                shutil.copyfileobj(resp, out)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise S2SError(
                f"multi30k: {name} is not in {folder} and cannot be downloaded ({exc}); "
                f"set data.dir or ${MULTI30K_ENV} to a local copy"
            ) from None
        if _sha256(tmp) != MULTI30K_SHA256[name]:
            tmp.unlink(missing_ok=True)
            raise S2SError(f"multi30k: downloaded {name} fails its sha256 check")
        os.replace(tmp, target)


def read_aligned(source: Path, target: Path) -> tuple[list[str], list[str]]:
    """The lines of a source file and its line-aligned target (reference) file, plain or .gz."""
    for path in (source, target):
        if not path.is_file():
            raise S2SError(f"data file not found: {path}")
    sources, targets = _read_lines(source), _read_lines(target)
    if len(sources) != len(targets):
        raise S2SError(
            f"{source.name} has {len(sources)} lines but {target.name} has "
            f"{len(targets)}: source and target files must be line-aligned"
        )
    return sources, targets


def read_parallel(folder: Path, splits: dict[str, str], src: str, tgt: str) -> Corpus:
    if not folder.is_dir():
        raise S2SError(f"data folder not found: {folder}")
    out = {}
    for role, split in splits.items():
        paths = [_find_file(folder, split, lang) for lang in (src, tgt)]
        for lang, path in zip((src, tgt), paths):
            if path is None:
                raise S2SError(f"missing data file {folder / f'{split}.{lang}'} (or .gz)")
        out[role] = read_aligned(paths[0], paths[1])
    return out


def data_folder(cfg: DataConfig) -> Path:
    """The folder a translation dataset is read from (multi30k: data.dir, $S2S_MULTI30K_DIR or the cache)."""
    if cfg.name == "multi30k":
        return multi30k_dir(cfg)
    if cfg.dir is None:
        raise S2SError("data.name=parallel needs data.dir: a folder with {split}.{lang} files")
    return Path(cfg.dir).expanduser()


def addition_data_seed(cfg: DataConfig, run_seed: int) -> int:
    """The seed that draws an addition run's questions: data.addition.seed, or the run's if null."""
    return run_seed if cfg.addition.seed is None else cfg.addition.seed


def multi30k_missing(cfg: DataConfig) -> tuple[Path, list[str]]:
    """The folder Multi30k is read from and the upstream files a run of `cfg` needs that it lacks."""
    folder = multi30k_dir(cfg)
    splits = (cfg.train_split, cfg.val_split, cfg.test_split)
    needed = [f"{s}.{lang}.gz" for s in splits for lang in (cfg.src_lang, cfg.tgt_lang)]
    missing = [n for n in needed if _find_file(folder, n.rsplit(".", 2)[0], n.rsplit(".", 2)[1]) is None]
    unknown = [n for n in missing if n not in MULTI30K_SHA256]
    if unknown:
        raise S2SError(f"multi30k has no file {unknown[0]} (splits: {', '.join(MULTI30K_SPLITS)})")
    return folder, missing


def check_data(cfg: DataConfig, seed: int, fetch: bool) -> str:
    """Where a run of `cfg` gets its data, checked once for a whole sweep before anything is enqueued:
    files present, or (multi30k) downloaded now with `fetch`, or at least downloadable. Raises S2SError
    with the full reason when every trial would fail on it; returns a line for the user."""
    if cfg.name == "addition":
        return "addition questions, drawn by each run (no files)"
    if cfg.name == "parallel":
        load_corpus(cfg, seed)  # present, readable and line-aligned
        return f"parallel files in {data_folder(cfg)}"
    folder, missing = multi30k_missing(cfg)
    if not missing:
        return f"multi30k from {folder}"
    if fetch:
        download_multi30k(folder, missing)
        return f"multi30k downloaded into {folder}"
    try:
        request = urllib.request.Request(MULTI30K_URL.format(file=missing[0]), method="HEAD")
        urllib.request.urlopen(request, timeout=10).close()
    except OSError as exc:
        raise S2SError(
            f"multi30k: {missing[0]} (and {len(missing) - 1} more) not in {folder} and cannot be downloaded "
            f"({exc}); set data.dir or ${MULTI30K_ENV} to a local copy"
        ) from None
    return f"multi30k: {len(missing)} file(s) not in {folder}; the sweep downloads them first"


def load_corpus(cfg: DataConfig, seed: int) -> Corpus:
    if cfg.name == "addition":
        return make_addition(cfg, addition_data_seed(cfg, seed))
    if cfg.src_lang == cfg.tgt_lang:
        raise S2SError(f"data.src_lang and data.tgt_lang are both '{cfg.src_lang}'")
    splits = {"train": cfg.train_split, "val": cfg.val_split, "test": cfg.test_split}
    if cfg.name == "multi30k":
        for lang in (cfg.src_lang, cfg.tgt_lang):
            if lang not in MULTI30K_LANGS:
                raise S2SError(
                    f"data.{'src' if lang == cfg.src_lang else 'tgt'}_lang '{lang}' is not a "
                    f"Multi30k language (allowed: {', '.join(MULTI30K_LANGS)})"
                )
        folder, missing = multi30k_missing(cfg)
        if missing:
            download_multi30k(folder, missing)
    else:
        folder = data_folder(cfg)
    return read_parallel(folder, splits, cfg.src_lang, cfg.tgt_lang)


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
        index, src, tgt_in, tgt_out, tgt_pos = (t.to(device, non_blocking=non_blocking) for t in self._tensors())
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
            counts = Counter(t for sent in train_src for t in sent), Counter(t for sent in train_tgt for t in sent)
            src_vocab = src_vocab or Vocab.build(train_src, self.cfg.min_freq, self.cfg.max_src_vocab)
            tgt_vocab = tgt_vocab or Vocab.build(train_tgt, self.cfg.min_freq, self.cfg.max_tgt_vocab)
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
        for n, (s, t) in enumerate(zip(sources, targets), start=1):
            s_toks, t_toks = self.pair[0].tokenize(s), self.pair[1].tokenize(t)
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
