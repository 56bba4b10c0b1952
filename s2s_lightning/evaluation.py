"""Scoring a split: decode (greedy or beam, one model or an ensemble), write line-aligned text files,
compute the task metrics and the per-run analyses.

sacreBLEU does every BLEU computation:
  {split}/bleu      corpus BLEU on detokenized text (13a tokenization); its signature is recorded
  {split}/bleu_tok  the paper-comparable number: tokenize='none' on Moses-tokenized, cased text
  {split}/chrf      chrF on detokenized text
Exact match is for `addition`. Files written into out_dir (see records.py):
  {split}.src.txt / .ref.txt / .hyp.txt   raw source, reference, detokenized hypothesis
  {split}.ref.tok.txt / .hyp.tok.txt      Moses-tokenized, cased (translation only): the bleu_tok input
  {split}.scores.tsv, analysis.json       per-sentence scores and buckets (analysis.py)
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Collection, Sequence
from pathlib import Path

import sacrebleu
import torch
from tqdm import tqdm

from . import metrics as M
from .analysis import analyse, average_rank, frequency_ranks, write_scores
from .config import EvalConfig
from .data import DataBundle, source_tensor
from .errors import S2SError
from .model import Seq2Seq, decode_batch_size
from .records import ANALYSIS_FILE, EVAL_FILE, read_json, scores_file, split_file, write_json, write_lines
from .search import as_ensemble, decode
from .text import EOS_ID, PAD_ID, UNK_ID, MosesTokenizer


def exact_match(hyps: Sequence[str], refs: Sequence[str]) -> float:
    return sum(h == r for h, r in zip(hyps, refs)) / max(len(refs), 1)


def corpus_bleu(hyps: Sequence[str], refs: Sequence[str], tokenize: str = "13a", lowercase: bool = False):
    # tokenize="none" scores Moses-tokenized text on purpose (the paper's number): `force` tells sacreBLEU
    # so, instead of the warning that the data look tokenized; every other warning stays.
    metric = sacrebleu.metrics.BLEU(tokenize=tokenize, lowercase=lowercase, force=tokenize == "none")
    return metric.corpus_score(list(hyps), [list(refs)]), metric.get_signature().format()


def corpus_chrf(hyps: Sequence[str], refs: Sequence[str]):
    metric = sacrebleu.metrics.CHRF()
    return metric.corpus_score(list(hyps), [list(refs)]), metric.get_signature().format()


def cased_tokenizer(bundle: DataBundle) -> MosesTokenizer:
    """The target-side Moses tokenizer without lowercasing: bleu_tok is always cased."""
    tok = bundle.codec.tgt_tokenizer
    if isinstance(tok, MosesTokenizer) and not tok.lowercase:
        return tok
    return MosesTokenizer(bundle.cfg.tgt_lang, lowercase=False)


def moses_tokenized(tokenizer, texts: Sequence[str]) -> list[str]:
    return [" ".join(tokenizer.tokenize(t)) for t in texts]


def score(
    task: str, hyps: Sequence[str], refs: Sequence[str], prefix: str = "test", tokenizer=None
) -> tuple[dict, str | None]:
    """Task metrics named `{prefix}/...` and the 13a BLEU signature (None for addition).

    Translation gets `{prefix}/bleu`; with a `tokenizer` (the cased target Moses tokenizer) also
    `{prefix}/bleu_tok` and `{prefix}/chrf` (the final test; validation skips them for speed).
    """
    if M.TASKS[task].exact_match:
        return {f"{prefix}/exact_match": exact_match(hyps, refs)}, None
    if tokenizer is None:
        bleu, signature = corpus_bleu(hyps, refs)
        return {f"{prefix}/bleu": bleu.score}, signature
    metrics, signatures = translation_metrics(
        hyps, refs, moses_tokenized(tokenizer, hyps), moses_tokenized(tokenizer, refs), prefix
    )
    return metrics, signatures["bleu"]


class HypothesisScorer:
    """scorer(stage, {sentence index: hypothesis ids}) -> the task metrics of those sentences of split
    `stage`: how the LightningModule scores its validation decoding without knowing the data. A class,
    not a closure, so the module pickles for ddp_spawn."""

    def __init__(self, bundle: DataBundle):
        self.bundle = bundle

    def __call__(self, stage: str, hyps: dict[int, list[int]]) -> dict[str, float]:
        order = sorted(hyps)
        texts = [self.bundle.codec.detokenize(hyps[i]) for i in order]
        refs = [self.bundle.splits[stage].tgt_text[i] for i in order]
        return score(self.bundle.task, texts, refs, prefix=stage)[0]

    def samples(self, stage: str, hyps: dict[int, list[int]], n: int) -> list[list[str]]:
        """[source, reference, hypothesis] of the first `n` sentences of split `stage` among `hyps`: the
        same sentences at every validation, so their hypotheses show the model learning."""
        split = self.bundle.splits[stage]
        return [
            [split.src_text[i], split.tgt_text[i], self.bundle.codec.detokenize(hyps[i])]
            for i in sorted(hyps)[:n]
        ]


def translation_metrics(
    hyps: Sequence[str],
    refs: Sequence[str],
    tok_hyps: Sequence[str],
    tok_refs: Sequence[str],
    prefix: str = "test",
) -> tuple[dict, dict]:
    """bleu and chrf on detokenized text; bleu_tok (cased) and bleu_tok_lc (lowercased, as the public
    Multi30k tutorials score) on the Moses-tokenized versions; their signatures."""
    bleu, bleu_sig = corpus_bleu(hyps, refs)
    bleu_tok, tok_sig = corpus_bleu(tok_hyps, tok_refs, "none")
    bleu_tok_lc, tok_lc_sig = corpus_bleu(tok_hyps, tok_refs, "none", lowercase=True)
    chrf, chrf_sig = corpus_chrf(hyps, refs)
    metrics = {
        f"{prefix}/bleu": bleu.score,
        f"{prefix}/bleu_tok": bleu_tok.score,
        f"{prefix}/bleu_tok_lc": bleu_tok_lc.score,
        f"{prefix}/chrf": chrf.score,
    }
    return metrics, {"bleu": bleu_sig, "bleu_tok": tok_sig, "bleu_tok_lc": tok_lc_sig, "chrf": chrf_sig}


@torch.no_grad()
def decode_ids(
    models: Sequence[Seq2Seq],
    src_ids: Sequence[Sequence[int]],
    cfg: EvalConfig,
    device: torch.device | str = "cpu",
    progress: str | None = None,
) -> list[list[int]]:
    """Hypothesis ids (<eos> and <pad> stripped) for each source, in order.

    Sources are decoded in batches of similar length (less padding, similar length limits); the
    result does not depend on the batching (tests/test_search.py checks batched = one at a time).
    With `progress` (a label), a bar of sentences decoded goes to stderr when stderr is a terminal.
    """
    models = as_ensemble(models)
    modes = [m.training for m in models]
    for m in models:
        m.eval()
    order = sorted(range(len(src_ids)), key=lambda i: len(src_ids[i]))
    out: list[list[int]] = [[] for _ in src_ids]
    bar = tqdm(
        total=len(order),
        desc=progress,
        unit=" sentences",
        file=sys.stderr,
        disable=None if progress else True,
    )  # disable=None: off when stderr is not a terminal (logs, CI)
    try:
        batch_size = min(decode_batch_size(cfg, torch.device(device).type), beam_rows(models[0], cfg))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            src, src_len = source_tensor([src_ids[i] for i in chunk])
            hyps = decode(
                models,
                src.to(device),
                src_len,  # lengths stay on the host
                cfg.beam_size,
                cfg.length_normalize,
                cfg.max_len_a,
                cfg.max_len_b,
            )  # [b, T]
            for i, row in zip(chunk, hyps.tolist()):
                out[i] = _strip(row)
            bar.update(len(chunk))
    finally:
        bar.close()
        for m, mode in zip(models, modes):
            m.train(mode)
    return out


DECODE_MEMORY = 2**30  # bytes a decoding batch's beams may take (logits, states, histories, temporaries)


def beam_rows(model: Seq2Seq, cfg: EvalConfig) -> int:
    """How many sentences one decoding batch may hold at cfg.beam_size, from an estimate of its memory
    (a beam of 10,000 grew to 24 GB before the OOM killer stopped it). A beam wider than the target
    vocabulary, or one whose single sentence would not fit, is refused before anything is decoded."""
    vocab = model.decoder.out.out_features
    if cfg.beam_size > vocab:
        raise S2SError(
            f"beam {cfg.beam_size} (--beam, eval.beam_size) is wider than the target vocabulary ({vocab} "
            f"words): at most {vocab}"
        )
    cells = model.decoder.out.in_features * 2 * model.cfg.num_layers + cfg.max_len_b + 100  # states, tokens
    per_sentence = cfg.beam_size * (vocab + cells) * 4 * 4  # float32, x4 for scores and temporaries
    if per_sentence > DECODE_MEMORY:
        raise S2SError(
            f"beam {cfg.beam_size} (--beam, eval.beam_size): one sentence's beams would take "
            f"~{per_sentence / 2**30:.1f} GiB (target vocabulary {vocab}); use a narrower beam"
        )
    return max(1, DECODE_MEMORY // per_sentence)


def _strip(ids: list[int]) -> list[int]:
    end = ids.index(EOS_ID) if EOS_ID in ids else len(ids)
    return [i for i in ids[:end] if i != PAD_ID]


def decode_split(
    models: Sequence[Seq2Seq],
    bundle: DataBundle,
    role: str,
    cfg: EvalConfig,
    device: torch.device | str = "cpu",
    progress: str | None = None,
) -> list[list[int]]:
    """Hypothesis ids for every sentence of split `role`, in order (cfg.beam_size; 1 = greedy)."""
    return decode_ids(models, bundle.splits[role].src_ids, cfg, device, progress)


def evaluate_split(
    models: Sequence[Seq2Seq],
    bundle: DataBundle,
    role: str,
    cfg: EvalConfig,
    out_dir: Path | None,
    device: torch.device | str = "cpu",
    prefix: str | None = None,
    progress: str | None = None,
    ranks: tuple[int, int] = (0, 1),
) -> dict | None:
    """Decode `role` with cfg.beam_size, score it, and (with out_dir) write the files and analyses.
    Metrics are named `{prefix}/...` (default: the role; any held-out test set scores as `test`).
    `progress`: a label for decode_ids' progress bar. `ranks`: this process's rank and the world size of
    an initialised process group (DDP): each rank decodes every world-th sentence, as in validation,
    and rank 0 scores them all; the other ranks return None.

    Returns {"metrics", "bleu_signature", "hyps", "signatures", "analysis", "sentences_per_s", "unknown"}.
    """
    start = time.perf_counter()
    rank, world = ranks
    sources = bundle.splits[role].src_ids
    mine = list(range(rank, len(sources), world))
    decoded = decode_ids(models, [sources[i] for i in mine], cfg, device, progress)
    if world > 1:
        parts: list = [None] * world
        torch.distributed.all_gather_object(parts, list(zip(mine, decoded)))
        if rank:
            return None
        ids = [h for _, h in sorted(pair for part in parts for pair in part)]
    else:
        ids = decoded
    elapsed = time.perf_counter() - start
    result = score_split(bundle, role, [bundle.codec.detokenize(h) for h in ids], cfg, out_dir, prefix)
    result["sentences_per_s"] = len(ids) / max(elapsed, 1e-9)
    src_ids = bundle.splits[role].src_ids
    result["unknown"] = {  # words outside the vocabulary: what the model could not read or write
        "source_tokens": sum(len(s) for s in src_ids),
        "source_unk": sum(t == UNK_ID for s in src_ids for t in s),
        "hypothesis_tokens": sum(len(h) for h in ids),
        "hypothesis_unk": sum(t == UNK_ID for h in ids for t in h),
        "empty_source_lines": [n for n, s in enumerate(src_ids, start=1) if not s],  # scored as they are
    }
    return result


def score_split(
    bundle: DataBundle,
    role: str,
    hyps: Sequence[str],
    cfg: EvalConfig,
    out_dir: Path | None,
    prefix: str | None = None,
) -> dict:
    """Score detokenized hypotheses of split `role`; with out_dir, write the text files and analyses."""
    prefix = prefix or role
    split = bundle.splits[role]
    hyps, refs = list(hyps), split.tgt_text
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses for {len(refs)} references")
    if not M.TASKS[bundle.task].exact_match:
        tokenizer = cased_tokenizer(bundle)
        tok_hyps, tok_refs = moses_tokenized(tokenizer, hyps), moses_tokenized(tokenizer, refs)
        metrics, sigs = translation_metrics(hyps, refs, tok_hyps, tok_refs, prefix=prefix)
    else:
        metrics, sigs = score(bundle.task, hyps, refs, prefix=prefix)[0], {}
    scores_name = scores_file(role)
    ranks = frequency_ranks(bundle.src_freq)
    avg_ranks = [average_rank(bundle.codec.src_tokenizer.tokenize(s), ranks) for s in split.src_text]
    analysis, rows = analyse(
        bundle.task,
        hyps,
        refs,
        [len(s) for s in split.src_ids],
        avg_ranks,
        cfg.length_buckets,
        cfg.frequency_buckets,
        cfg.bootstrap_samples,
        scores_name,
    )
    if out_dir is not None:
        out_dir = Path(out_dir)
        write_lines(out_dir / split_file(role, "src"), split.src_text)
        write_lines(out_dir / split_file(role, "ref"), refs)
        write_lines(out_dir / split_file(role, "hyp"), hyps)
        if not M.TASKS[bundle.task].exact_match:
            write_lines(out_dir / split_file(role, "ref.tok"), tok_refs)
            write_lines(out_dir / split_file(role, "hyp.tok"), tok_hyps)
        write_scores(out_dir / scores_name, rows)
        write_json(out_dir / ANALYSIS_FILE, analysis)
    return {
        "metrics": metrics,
        "bleu_signature": sigs.get("bleu"),
        "hyps": hyps,
        "signatures": sigs,
        "analysis": analysis,
    }


INPUT_KEYS = ("members", "split", "checkpoint", "beam_size", "files_sha256", "data_dir")  # evaluation_inputs


def evaluation_inputs(
    run_dirs: Sequence[str | Path], split: str, checkpoint: str, beam: int, files: tuple
) -> dict:
    """What an evaluation scored: its runs, split, checkpoint, beam and outside data (files by content)."""
    source, reference, data_dir = files
    out = {
        "members": [str(Path(d).resolve()) for d in run_dirs],
        "split": split,
        "checkpoint": checkpoint,
        "beam_size": beam,
    }
    if source is not None:
        out["files_sha256"] = [_sha256(source), _sha256(reference)]
    if data_dir is not None:
        out["data_dir"] = str(Path(data_dir).resolve())
    return out


def _sha256(path: str | Path) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        raise S2SError(f"cannot read {path} ({exc.strerror or exc})") from None


def check_same_inputs(out: Path, inputs: dict) -> None:
    """Refuse to replace an evaluation in `out` that scored other inputs (another checkpoint, other
    files, other runs); the same inputs scored again replace it."""
    path = Path(out) / EVAL_FILE
    if not path.is_file():
        return
    old = read_json(path)
    keys: Collection[str]
    if "inputs" in old:
        before, keys = old["inputs"], INPUT_KEYS
    else:  # written before evaluations recorded their inputs: what they did record
        before = {
            "split": old.get("split", "test"),
            "checkpoint": old.get("checkpoint", "best"),
            "beam_size": old.get("beam_size"),
            "files_sha256": "unknown" if "files" in old else None,
        }
        keys = before.keys()
    differs = [k for k in INPUT_KEYS if k in keys and before.get(k) != inputs.get(k)]
    if differs:
        what = {
            "files_sha256": "pair of test files",
            "data_dir": "data folder",
            "members": "set of runs",
        }.get(differs[0], differs[0].replace("_", " "))
        raise S2SError(
            f"{out} holds an evaluation of another {what}; it is kept: pass --out DIR (or another "
            "--split name) for this one"
        )
