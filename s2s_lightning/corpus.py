"""Raw parallel text per split: the addition task, Multi30k (a local folder, else downloaded once
and checked against its checksums), the user's `parallel` files; reading them line-aligned, and
checking before a sweep that they are there. No torch here: a sweep checks its data with this module.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import random
import shutil
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from .config import DataConfig
from .environment import cache_dir
from .errors import S2SError

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
MAX_SENTENCE_TOKENS = 1000  # longer lines are almost surely not sentences (misaligned or binary files)


Corpus = dict[
    str, tuple[list[str], list[str]]
]  # split role (train/val/test) -> (sources, targets), raw lines


def make_addition(cfg: DataConfig, seed: int) -> Corpus:
    """Distinct "a+b" questions with a, b in 0..max_operand, split without overlap.

    Deterministic in `seed` alone. `digits` sampling follows the book's generator (digit count
    uniform, then uniform digits). Unlike the book's file, no question appears twice or in two
    splits, so test accuracy measures generalisation rather than memorisation.
    """
    a_cfg = cfg.addition
    sizes = {"train": a_cfg.train_size, "val": a_cfg.val_size, "test": a_cfg.test_size}
    total = sum(sizes.values())  # config.AdditionConfig checked they can be drawn
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
    return cache_dir() / "multi30k"


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
            with (
                urllib.request.urlopen(MULTI30K_URL.format(file=name), timeout=30) as resp,
                open(tmp, "wb") as out,
            ):
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
        out[role] = read_aligned(_need_file(folder, split, src), _need_file(folder, split, tgt))
    return out


def _need_file(folder: Path, split: str, lang: str) -> Path:
    path = _find_file(folder, split, lang)
    if path is None:
        raise S2SError(f"missing data file {folder / f'{split}.{lang}'} (or .gz)")
    return path


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
    given = "data.dir" if cfg.dir else f"${MULTI30K_ENV}" if os.environ.get(MULTI30K_ENV) else None
    if missing and given:  # a mistyped folder is an error: downloads go to the cache only
        raise S2SError(
            f"multi30k: {missing[0]} (and {len(missing) - 1} more) not in {folder}, the folder {given} "
            f"names; point it at a Multi30k copy, or unset it to download into {cache_dir() / 'multi30k'}"
        )
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
