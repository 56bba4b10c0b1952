"""Scoring a split: decode, write line-aligned text files, compute task metrics.

sacreBLEU does every BLEU computation; exact match is for `addition`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from . import metrics as M
from .config import EvalConfig
from .data import DataBundle
from .model import Seq2Seq
from .records import write_lines
from .search import greedy


def exact_match(hyps: Sequence[str], refs: Sequence[str]) -> float:
    return sum(h == r for h, r in zip(hyps, refs)) / max(len(refs), 1)


def corpus_bleu(hyps: Sequence[str], refs: Sequence[str], tokenize: str = "13a"):
    import sacrebleu

    metric = sacrebleu.metrics.BLEU(tokenize=tokenize)
    return metric.corpus_score(list(hyps), [list(refs)]), metric.get_signature().format()


@torch.no_grad()
def decode_split(models: Sequence[Seq2Seq], bundle: DataBundle, role: str, cfg: EvalConfig,
                 device: torch.device | str = "cpu") -> list[list[int]]:
    """Hypothesis ids for every sentence of split `role`, in order."""
    model = models[0]
    was_training = model.training
    model.eval()
    hyps: list[list[int]] = []
    for batch in bundle.loader(role, batch_size=cfg.batch_size):
        batch = batch.to(device)
        out = greedy(model, batch.src, batch.src_len, cfg.max_len_a, cfg.max_len_b)
        hyps.extend(out.tolist())
    model.train(was_training)
    return hyps


def score(task: str, hyps: Sequence[str], refs: Sequence[str], prefix: str = "test") -> tuple[dict, str | None]:
    """Task metrics named `{prefix}/...` and the sacreBLEU signature (None for addition)."""
    if task == "addition":
        return {f"{prefix}/exact_match": exact_match(hyps, refs)}, None
    bleu, signature = corpus_bleu(hyps, refs)
    return {f"{prefix}/bleu": bleu.score}, signature


def evaluate_split(models: Sequence[Seq2Seq], bundle: DataBundle, role: str, cfg: EvalConfig,
                   out_dir: Path | None, device: torch.device | str = "cpu") -> dict:
    """Decode `role`, write {role}.src/ref/hyp.txt into out_dir, return metrics and signature."""
    ids = decode_split(models, bundle, role, cfg, device)
    split = bundle.splits[role]
    hyps = [bundle.detokenize(h) for h in ids]
    refs = split.tgt_text
    if out_dir is not None:
        write_lines(Path(out_dir) / f"{role}.src.txt", split.src_text)
        write_lines(Path(out_dir) / f"{role}.ref.txt", refs)
        write_lines(Path(out_dir) / f"{role}.hyp.txt", hyps)
    metrics, signature = score(bundle.task, hyps, refs, prefix=role)
    return {"metrics": metrics, "bleu_signature": signature, "hyps": hyps}


__all__ = ["evaluate_split", "decode_split", "score", "exact_match", "corpus_bleu", "M"]
