"""Text <-> ids: the special tokens, `Vocab`, source reversal, tokenizers and `TextCodec`.

The one place where tokenization is decided (`tokenizers`): characters for `addition`, Moses
(sacremoses) for every translation dataset. The training data bundle (data.py) and `s2s evaluate` /
`s2s translate` (inference.py) both encode sources and detokenize hypotheses through a `TextCodec`,
so a trained run reads new text exactly as it read its training data. The model and search code
import only the special ids from here.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import sacremoses
from sacremoses import MosesDetokenizer
from sacremoses import MosesTokenizer as _MosesTokenizer

from .config import DataConfig
from .environment import cache_dir
from .errors import S2SError
from .records import VOCAB_FILE, atomic_write_bytes, write_json

PAD, SOS, EOS, UNK = "<pad>", "<sos>", "<eos>", "<unk>"
SPECIALS = (PAD, SOS, EOS, UNK)
PAD_ID, SOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3


class Vocab:
    """Token <-> id, with the four specials first so their ids are fixed."""

    def __init__(self, tokens: Sequence[str]):
        self.itos = list(SPECIALS) + [t for t in tokens if t not in SPECIALS]
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def build(
        cls, sentences: Sequence[Sequence[str]], min_freq: int = 1, max_size: int | None = None
    ) -> Vocab:
        counts = Counter(tok for sent in sentences for tok in sent)
        # Most frequent first, ties broken alphabetically so the vocabulary is deterministic.
        ranked = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        return cls(ranked[:max_size] if max_size else ranked)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        return [self.stoi.get(t, UNK_ID) for t in tokens]

    def difference(self, other: Vocab) -> str | None:
        """None if both map every id to the same token, else the first difference, in words."""
        if self.itos == other.itos:
            return None
        for i, (mine, theirs) in enumerate(zip(self.itos, other.itos)):
            if mine != theirs:
                return f"id {i} is {mine!r} in one and {theirs!r} in the other"
        return f"{len(self)} words against {len(other)}"

    def decode(self, ids: Sequence[int]) -> list[str]:
        """Ids up to the first <eos>, without specials other than <unk>."""
        out = []
        for i in ids:
            if i == EOS_ID:
                break
            if i in (PAD_ID, SOS_ID):
                continue
            out.append(self.itos[i])
        return out

    def to_list(self) -> list[str]:
        return list(self.itos)


def reverse_tokens(ids: list[int]) -> list[int]:
    """Reverse real tokens only: specials (<sos>/<eos>/<pad>) keep their positions."""
    positions = [i for i, t in enumerate(ids) if t not in (PAD_ID, SOS_ID, EOS_ID)]
    out = list(ids)
    for pos, tok in zip(positions, reversed([ids[i] for i in positions])):
        out[pos] = tok
    return out


class Tokenizer(Protocol):
    def tokenize(self, text: str) -> list[str]: ...

    def detokenize(self, tokens: Sequence[str]) -> str: ...


class CharTokenizer:
    def tokenize(self, text: str) -> list[str]:
        return list(text)

    def detokenize(self, tokens: Sequence[str]) -> str:
        return "".join(tokens)


class MosesTokenizer:
    """sacremoses tokenization (escape=False so BLEU sees real characters) and detokenization."""

    def __init__(self, lang: str, lowercase: bool = False):
        self.lang, self.lowercase = lang, lowercase
        self.cache_key = f"moses {sacremoses.__version__} {lang} lowercase={lowercase} escape=False"
        self._tok = _MosesTokenizer(lang=lang)
        self._detok = MosesDetokenizer(lang=lang)

    def tokenize(self, text: str) -> list[str]:
        text = text.lower() if self.lowercase else text
        return self._tok.tokenize(text, escape=False)

    def detokenize(self, tokens: Sequence[str]) -> str:
        return self._detok.detokenize(list(tokens))


def tokenize_all(tokenizer: Tokenizer, lines: Sequence[str]) -> list[list[str]]:
    """Every line tokenized. Moses tokenizations are cached on disk, keyed by the tokenizer (language,
    lowercasing, sacremoses version) and the lines' content, so every trial of a study on one machine
    shares one tokenization of the corpus (seconds each) and changed data is never read from the cache.
    Each file is written whole under a temporary name and renamed: concurrent writers write the same
    bytes, and a reader sees one whole file or none. A cache that cannot be read or written is skipped."""
    key = getattr(tokenizer, "cache_key", None)
    if key is None or not lines:
        return [tokenizer.tokenize(line) for line in lines]
    digest = hashlib.sha256(key.encode())
    for line in lines:
        digest.update(line.encode("utf-8", "surrogatepass") + b"\n")
    path = cache_dir() / "tokenized" / f"{digest.hexdigest()}.json.gz"
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            cached = json.load(f)
        if isinstance(cached, list) and len(cached) == len(lines):
            return cached
    except (OSError, ValueError, EOFError):
        pass  # not cached yet, or unreadable: tokenize again
    out = [tokenizer.tokenize(line) for line in lines]
    try:
        atomic_write_bytes(path, gzip.compress(json.dumps(out, ensure_ascii=False).encode(), compresslevel=1))
    except OSError:
        pass  # a cache that cannot be written only costs the next run the same seconds
    return out


def tokenizers(cfg: DataConfig) -> tuple[Tokenizer, Tokenizer]:
    """(source, target) tokenizers of a dataset: characters for addition, Moses for translation."""
    if cfg.name == "addition":
        return CharTokenizer(), CharTokenizer()
    return MosesTokenizer(cfg.src_lang, cfg.lowercase), MosesTokenizer(cfg.tgt_lang, cfg.lowercase)


class TextCodec:
    """Raw text <-> ids for one dataset's tokenizers and vocabularies, reversal included."""

    def __init__(
        self,
        cfg: DataConfig,
        src_vocab: Vocab,
        tgt_vocab: Vocab,
        pair: tuple[Tokenizer, Tokenizer] | None = None,
    ):
        """`pair`: the (source, target) tokenizers when the caller already made them for `cfg`."""
        self.src_tokenizer, self.tgt_tokenizer = pair or tokenizers(cfg)
        self.src_vocab, self.tgt_vocab, self.reverse_source = src_vocab, tgt_vocab, cfg.reverse_source

    def encode_source_tokens(self, tokens: Sequence[str]) -> list[int]:
        """Source tokens -> ids as the model reads them (reversed if configured)."""
        ids = self.src_vocab.encode(tokens)
        return reverse_tokens(ids) if self.reverse_source else ids

    def encode_source(self, text: str) -> list[int]:
        """One raw source sentence -> ids as the model reads them."""
        return self.encode_source_tokens(self.src_tokenizer.tokenize(text))

    def detokenize(self, ids: Sequence[int]) -> str:
        return self.tgt_tokenizer.detokenize(self.tgt_vocab.decode(ids))


def write_vocabs(run_dir: Path, src: Vocab, tgt: Vocab) -> None:
    write_json(Path(run_dir) / VOCAB_FILE, {"src": src.to_list(), "tgt": tgt.to_list()})


def read_vocabs(run_dir: Path) -> tuple[Vocab, Vocab]:
    path = Path(run_dir) / VOCAB_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Vocab(data["src"]), Vocab(data["tgt"])
    except FileNotFoundError:
        raise S2SError(f"{path} not found: is {run_dir} a run directory written by 's2s train'?") from None
    except (ValueError, KeyError, TypeError):
        raise S2SError(f"{path} is corrupted") from None
