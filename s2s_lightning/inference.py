"""Using trained runs: load a run directory (or several, as an ensemble), and what `s2s evaluate`
and `s2s translate` do with them (their parsers live in cli.py).

A run directory holds config.yaml, vocab.json and checkpoints/{best,last}.ckpt (records.py). The
members of an ensemble must share vocabularies, tokenization and reverse_source; their model sizes
may differ. Raw text is encoded and decoded by the run's `TextCodec` (text.py), as in training.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import load_into
from .config import Config, cpu_threads, load_config
from .corpus import addition_data_seed, data_folder, read_aligned, read_parallel
from .data import DataBundle, source_tensor
from .environment import parse_device
from .errors import S2SError
from .evaluation import beam_rows, check_same_inputs, decode_ids, evaluate_split, evaluation_inputs
from .model import Seq2Seq, decode_batch_size
from .records import (
    CHECKPOINTS,
    CONFIG_FILE,
    EVAL_FILE,
    REPRESENTATIONS_FILE,
    EvalKey,
    EvalRecord,
    as_line,
    check_writable,
    checkpoint_path,
    eval_dir,
    lock_holder,
    read_counts,
    read_lines,
    split_file,
    write_counts,
    write_json,
)
from .text import UNK_ID, TextCodec, Vocab, read_vocabs


@dataclass
class Ensemble:
    """Trained models that decode together (one run = an ensemble of one), with what they share."""

    run_dirs: list[Path]
    configs: list[Config]
    models: list[Seq2Seq]
    src_vocab: Vocab
    tgt_vocab: Vocab

    @property
    def cfg(self) -> Config:
        """The first member's config: data and eval settings (shared by every member)."""
        return self.configs[0]


def load_run(
    run_dir: str | Path, checkpoint: str = "best", device: torch.device | str = "cpu", as_is: bool = False
):
    """(config, model in eval mode, source vocab, target vocab) of one trained run. A run still training
    is refused (its checkpoint is intermediate) unless `as_is`; the model's `checkpoint_position` says
    at which epoch and step its checkpoint was written."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise S2SError(f"run directory not found: {run_dir}")
    pid = lock_holder(run_dir)
    if pid is not None and not as_is:
        raise S2SError(
            f"{run_dir} is still training (pid {pid}): its {checkpoint}.ckpt is intermediate, and "
            "scores of it would be stale once the run completes; wait for it to end, or pass --as-is to "
            "use the checkpoint as it is now"
        )
    if not (run_dir / CONFIG_FILE).is_file():
        raise S2SError(
            f"{run_dir / CONFIG_FILE} not found: is {run_dir} a run directory written by 's2s train'?"
        )
    if checkpoint not in CHECKPOINTS:
        raise S2SError(f"checkpoint must be one of {', '.join(CHECKPOINTS)}, got '{checkpoint}'")
    cfg = load_config(run_dir / CONFIG_FILE)
    src_vocab, tgt_vocab = read_vocabs(run_dir)
    path = checkpoint_path(run_dir, checkpoint)
    if not path.is_file():
        other = "last" if checkpoint == "best" else "best"
        raise S2SError(
            f"checkpoint not found: {path} (the run may not have finished an epoch; try --checkpoint {other})"
        )
    model = Seq2Seq(len(src_vocab), len(tgt_vocab), cfg.model)
    model.checkpoint_position = load_into(model, path)
    return cfg, model.to(device).eval(), src_vocab, tgt_vocab


# What members must agree on to be averaged: the same words in, the same words out, read the same way.
SHARED_DATA_KEYS = ("name", "src_lang", "tgt_lang", "lowercase", "reverse_source")


def load_ensemble(
    run_dirs: Sequence[str | Path],
    checkpoint: str = "best",
    device: torch.device | str = "cpu",
    as_is: bool = False,
) -> Ensemble:
    """Load every run; raise S2SError unless they share vocabularies, tokenization and reverse_source."""
    if not run_dirs:
        raise S2SError("no run directory given")
    loaded = [load_run(d, checkpoint, device, as_is) for d in run_dirs]
    first_cfg, _, src_vocab, tgt_vocab = loaded[0]
    for run_dir, (cfg, _, src, tgt) in zip(run_dirs[1:], loaded[1:]):
        for key in SHARED_DATA_KEYS:
            if getattr(cfg.data, key) != getattr(first_cfg.data, key):
                raise S2SError(
                    f"ensemble members disagree on data.{key}: {run_dirs[0]} has "
                    f"{getattr(first_cfg.data, key)!r}, {run_dir} has {getattr(cfg.data, key)!r}"
                )
        if cfg.data.name == "addition":
            _check_same_questions(run_dirs[0], first_cfg, run_dir, cfg)
        for side, mine, theirs in (("source", src, src_vocab), ("target", tgt, tgt_vocab)):
            difference = theirs.difference(mine)
            if difference:
                raise S2SError(
                    f"ensemble members have different {side} vocabularies: {run_dirs[0]} and "
                    f"{run_dir} ({difference}); were they trained on the same data?"
                )
    return Ensemble(
        [Path(d) for d in run_dirs], [c for c, *_ in loaded], [m for _, m, *_ in loaded], src_vocab, tgt_vocab
    )


def _check_same_questions(first_dir: str | Path, first: Config, run_dir: str | Path, cfg: Config) -> None:
    """Addition members must have drawn the same questions, or one's test set is another's training data."""
    seeds = addition_data_seed(first.data, first.seed), addition_data_seed(cfg.data, cfg.seed)
    if seeds[0] != seeds[1]:
        why = f"data seeds {seeds[0]} and {seeds[1]}"
    elif first.data.addition.model_dump(exclude={"seed"}) != cfg.data.addition.model_dump(exclude={"seed"}):
        why = "data.addition differs"
    else:
        return
    raise S2SError(
        f"ensemble members were trained on different addition questions: {first_dir} and {run_dir} "
        f"({why}), so one's test questions can be another's training data"
    )


def _eval_config(cfg: Config, beam: int | None, batch_size: int | None):
    update = {k: v for k, v in (("beam_size", beam), ("batch_size", batch_size)) if v is not None}
    if any(v < 1 for v in update.values()):
        raise S2SError(f"--beam and --batch-size must be at least 1, got {update}")
    return cfg.eval.model_copy(update=update)


OWN_SPLITS = ("train", "val", "test")


def evaluate_runs(
    run_dirs: Sequence[str | Path],
    split: str = "test",
    *,
    beam: int | None = None,
    out_dir: str | Path | None = None,
    checkpoint: str = "best",
    device: str = "auto",
    batch_size: int | None = None,
    source: str | Path | None = None,
    reference: str | Path | None = None,
    data_dir: str | Path | None = None,
    as_is: bool = False,
) -> tuple[EvalRecord, Path]:
    """Score runs (several = an ensemble) without training; returns (metrics.json dict, out dir).

    The test set: the runs' own `split` (train, val, test); another split of their data folder (or of
    `data_dir`), such as Multi30k's test_2017_flickr; or line-aligned `source` and `reference` files,
    named `split`. Sentences are read with the runs' own vocabulary and tokenization, and the outputs
    go to RUN/eval/{split}_beam{K}/. Metrics of any held-out set are named test/..."""
    own = _check_test_set(run_dirs, out_dir, split, (source, reference, data_dir))
    dev = parse_device(device)
    ens = load_ensemble(run_dirs, checkpoint, dev, as_is)
    eval_cfg = _eval_config(ens.cfg, beam, batch_size)
    beam_rows(ens.models[0], eval_cfg)  # a beam that cannot be decoded is refused before any folder is made
    out = Path(out_dir) if out_dir else eval_dir(run_dirs[0], split, eval_cfg.beam_size, checkpoint)
    bundle = _test_bundle(ens, run_dirs, split, own, (source, reference, data_dir))
    inputs = evaluation_inputs(run_dirs, split, checkpoint, eval_cfg.beam_size, (source, reference, data_dir))
    check_same_inputs(out, inputs)
    new_dir = not out.exists()
    check_writable(out)
    label = f"{split}, beam {eval_cfg.beam_size}" + (f", {len(run_dirs)} runs" if len(run_dirs) > 1 else "")
    try:
        result = evaluate_split(
            ens.models, bundle, split, eval_cfg, out, dev, prefix=None if own else "test", progress=label
        )
        assert result is not None  # one process: it scores
    except BaseException:  # Ctrl-C or a failure mid-decoding: leave no empty eval folder behind
        if new_dir and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise
    record = EvalRecord(
        beam_size=eval_cfg.beam_size,
        split=split,
        metrics=result["metrics"],
        bleu_signature=result["bleu_signature"],
        members=[str(d) for d in run_dirs],
        sentences_per_s=result["sentences_per_s"],
        checkpoint=checkpoint,
        checkpoint_positions=[m.checkpoint_position for m in ens.models],  # epoch, step
        length_normalize=eval_cfg.length_normalize,
        signatures=result["signatures"],
        num_sentences=len(result["hyps"]),
        unknown=result["unknown"],
        device=str(dev),
    )
    if source is not None:
        record[EvalKey.FILES] = {"source": str(source), "reference": str(reference)}
    write_json(out / EVAL_FILE, {**record, EvalKey.INPUTS: inputs})
    return record, out


def _check_test_set(run_dirs: Sequence, out_dir, split: str, files: tuple) -> bool:
    """Refuse what cannot be evaluated as given; returns whether `split` is the runs' own."""
    source, reference, data_dir = files
    if len(run_dirs) > 1 and out_dir is None:
        raise S2SError(f"evaluating an ensemble of {len(run_dirs)} runs needs --out DIR")
    if (source is None) != (reference is None):
        raise S2SError("--src and --ref go together: a source file and its line-aligned reference file")
    own = split in OWN_SPLITS and source is None and data_dir is None
    if split in OWN_SPLITS and not own:
        raise S2SError(
            f"--split {split} names the run's own {split} set; give the outside sentences a name of "
            f"their own (e.g. --split news), so their scores are never read as the run's {split} scores"
        )
    return own


def _test_bundle(ens, run_dirs: Sequence[str | Path], split: str, own: bool, files: tuple) -> DataBundle:
    """The data bundle holding the test set `split` (and the training counts its analyses need), read
    with the ensemble's vocabularies; the runs' own split must hold the sentences they were tested on."""
    counts = read_counts(run_dirs[0])
    roles = (
        ((split,) if own else ())
        if counts is not None
        else tuple(dict.fromkeys(("train", split if own else "train")))
    )
    bundle = DataBundle(ens.cfg, ens.src_vocab, ens.tgt_vocab, roles=roles, counts=counts)
    if counts is None:  # a run from before training counts were recorded: keep them for next time
        write_counts(run_dirs[0], bundle.src_freq, bundle.tgt_freq)
    if own:
        for run_dir in run_dirs:
            check_same_sentences(Path(run_dir), split, bundle.splits[split].src_text)
    else:
        bundle.add_split(split, *_test_set(ens.cfg, split, *files))
    return bundle


def _test_set(cfg: Config, split: str, source, reference, data_dir) -> tuple[list[str], list[str]]:
    """(sources, references) of a held-out set that is not one of the run's own splits."""
    if source is not None:
        return read_aligned(Path(source), Path(reference))
    if cfg.data.name == "addition":
        raise S2SError(f"addition runs have no data folder: --split takes train, val or test (got '{split}')")
    folder = Path(data_dir) if data_dir is not None else data_folder(cfg.data)
    return read_parallel(folder, {split: split}, cfg.data.src_lang, cfg.data.tgt_lang)[split]


def check_same_sentences(run_dir: Path, split: str, sources: Sequence[str]) -> None:
    """Refuse to score a run on other `split` sentences than it was tested on after training
    (RUN/{split}.src.txt): changed data files, or a run written before data.addition.seed existed."""
    saved = run_dir / split_file(split, "src")
    if not saved.is_file():
        return
    was, now = read_lines(saved), [as_line(s) for s in sources]
    if was != now:
        where = next((i for i, (a, b) in enumerate(zip(was, now)) if a != b), min(len(was), len(now)))
        raise S2SError(
            f"{run_dir} was tested on other {split} sentences than its data give now ({saved.name} "
            f"differs at line {where + 1}: {len(was)} sentences then, {len(now)} now); "
            f"was it trained on other data?"
        )


def translate_lines(
    ens: Ensemble,
    lines: Iterable[str],
    beam: int | None = None,
    batch_size: int | None = None,
    device: torch.device | str = "cpu",
    flush_every_line: bool = False,
    warn=None,
) -> Iterator[str]:
    """Translations of `lines`, one per line, in order; an empty (or blank) line gives an empty line.
    `warn(line_number, unknown, tokens)` hears of every line with tokens outside the source vocabulary:
    the model reads them as <unk>, so its translation of that line is a guess."""
    codec = TextCodec(ens.cfg.data, ens.src_vocab, ens.tgt_vocab)
    eval_cfg = _eval_config(ens.cfg, beam, batch_size)
    chunk = 1 if flush_every_line else decode_batch_size(eval_cfg, torch.device(device).type)
    number = 0

    def encode(text: str) -> list[int] | None:
        nonlocal number
        number += 1
        if not text.strip():
            return None
        ids = codec.encode_source(text)
        unknown = sum(i == UNK_ID for i in ids)
        if unknown and warn is not None:
            warn(number, unknown, len(ids))
        return ids

    def flush(pending: list[str]) -> Iterator[str]:
        src = [encode(s) for s in pending]
        todo = [s for s in src if s is not None]
        hyps = iter(decode_ids(ens.models, todo, eval_cfg, device)) if todo else iter(())
        for s in src:
            yield "" if s is None else codec.detokenize(next(hyps))

    pending: list[str] = []
    for line in lines:
        pending.append(line.rstrip("\r\n"))
        if len(pending) >= chunk:
            yield from flush(pending)
            pending = []
    if pending:
        yield from flush(pending)


def export_representations(
    run_dir: str | Path,
    phrases_file: str | Path,
    checkpoint: str = "best",
    device: str = "auto",
    as_is: bool = False,
) -> Path:
    """Write RUN_DIR/representations.json: {"phrases": [...], "vectors": [[...], ...]} (encoder summaries)."""
    path = Path(phrases_file)
    try:
        phrases = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except FileNotFoundError:
        raise S2SError(f"phrases file not found: {path}") from None
    except UnicodeDecodeError:
        raise S2SError(f"{path} is not valid UTF-8") from None
    if not phrases:
        raise S2SError(f"{path} holds no phrases (one per line)")
    dev = parse_device(device)
    cfg, model, src_vocab, tgt_vocab = load_run(run_dir, checkpoint, dev, as_is)
    codec = TextCodec(cfg.data, src_vocab, tgt_vocab)
    vectors = sentence_vectors(model, [codec.encode_source(p) for p in phrases], dev)  # [P, H]
    out = Path(run_dir) / REPRESENTATIONS_FILE
    write_json(out, {"phrases": phrases, "vectors": vectors.tolist()})
    return out


@torch.no_grad()
def sentence_vectors(
    model: Seq2Seq,
    src_ids: Sequence[Sequence[int]],
    device: torch.device | str = "cpu",
    batch_size: int = 256,
) -> torch.Tensor:
    """The encoder's final top-layer hidden vector for each source: [P, H] (Fig. 2's PCA input)."""
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(src_ids), batch_size):
        src, src_len = source_tensor(src_ids[start : start + batch_size])
        out.append(model.encode(src.to(device), src_len).summary.cpu())  # [b, H]
    model.train(was_training)
    return torch.cat(out)  # [P, H]


# ----------------------------------------------------------------------------------------------
# Commands (parsers in cli.py).


def use_threads(threads: int | None) -> None:
    """--threads, or the same default as train.threads=auto."""
    if threads is not None and threads < 1:
        raise S2SError(f"--threads must be at least 1 (got {threads})")
    torch.set_num_threads(cpu_threads(threads or "auto"))


def run_evaluate(args: argparse.Namespace) -> int:
    use_threads(args.threads)
    if args.represent is not None:
        if len(args.run_dirs) > 1:
            raise S2SError("--represent takes one run directory")
        out = export_representations(
            args.run_dirs[0], args.represent, args.checkpoint, args.device, args.as_is
        )
        print(f"wrote {out}")
        return 0
    start = time.perf_counter()
    record, out = evaluate_runs(
        args.run_dirs,
        args.split,
        beam=args.beam,
        out_dir=args.out,
        checkpoint=args.checkpoint,
        device=args.device,
        batch_size=args.batch_size,
        source=args.src,
        reference=args.ref,
        data_dir=args.data_dir,
        as_is=args.as_is,
    )
    metrics = " ".join(f"{k}={v:.4g}" for k, v in sorted(record[EvalKey.METRICS].items()))
    unk = record[EvalKey.UNKNOWN]
    empty = unk.get("empty_source_lines") or []
    if empty:  # a blank line is scored (its translation against its reference), never skipped
        shown = ", ".join(map(str, empty[:10])) + (", ..." if len(empty) > 10 else "")
        print(
            f"s2s: warning: {len(empty)} of {record[EvalKey.NUM_SENTENCES]} source lines are empty "
            f"(line {shown}); "
            "they are scored as they are",
            file=sys.stderr,
        )
    print(
        f"{metrics} beam={record[EvalKey.BEAM_SIZE]} ({time.perf_counter() - start:.1f} s); <unk>: "
        f"{unk['source_unk']} of {unk['source_tokens']} source tokens, {unk['hypothesis_unk']} in the "
        f"translations -> {out / EVAL_FILE}"
    )
    return 0


def run_translate(args: argparse.Namespace) -> int:
    use_threads(args.threads)
    dev = parse_device(args.device)
    ens = load_ensemble(args.run_dirs, args.checkpoint, dev, args.as_is)
    try:
        for stream in (sys.stdin, sys.stdout):
            if hasattr(stream, "reconfigure"):  # a real console stream, not a test's StringIO
                stream.reconfigure(encoding="utf-8")
        interactive = sys.stdin.isatty()

        def warn(number: int, unknown: int, tokens: int) -> None:
            print(
                f"s2s: warning: line {number}: {unknown} of {tokens} tokens are not in the model's source "
                "vocabulary (read as <unk>)",
                file=sys.stderr,
            )

        lines = translate_lines(
            ens, sys.stdin, args.beam, args.batch_size, dev, flush_every_line=interactive, warn=warn
        )
        for line in lines:
            sys.stdout.write(line + "\n")
            if interactive:
                sys.stdout.flush()
        sys.stdout.flush()
    except UnicodeDecodeError:
        raise S2SError("standard input is not valid UTF-8") from None
    except BrokenPipeError:  # e.g. `| head`: the reader left, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
    return 0
