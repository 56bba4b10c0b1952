"""Metric names and task descriptions, shared by the LightningModule, the sweeps and the reports.

A sweep's objective must be one of these, so it can never optimise a metric that is not logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TRAIN_LOSS = "train/loss"
TRAIN_TOKENS_PER_S = "train/tokens_per_s"
LR = "lr"
TEACHER_FORCING = "train/teacher_forcing_ratio"
EPOCH_S = "time/epoch_s"  # wall seconds of one epoch: training steps and validation
VAL_DECODE_SHARE = "time/val_decode_share"  # share of the epoch spent decoding the val set (the BLEU curve)

VAL_LOSS = "val/loss"
VAL_PPL = "val/ppl"
VAL_TOKEN_ACC = "val/token_acc"
VAL_EXACT_MATCH = "val/exact_match"
VAL_BLEU = "val/bleu"

TEST_LOSS = "test/loss"
TEST_PPL = "test/ppl"
TEST_TOKEN_ACC = "test/token_acc"
TEST_EXACT_MATCH = "test/exact_match"
TEST_BLEU = "test/bleu"  # sacreBLEU on detokenized text (13a)
TEST_BLEU_TOK = "test/bleu_tok"  # paper-comparable: tokenize='none' on Moses-tokenized, cased text
TEST_BLEU_TOK_LC = "test/bleu_tok_lc"  # the same lowercased: how public Multi30k tutorials report BLEU
TEST_CHRF = "test/chrf"

# Logged once per validation epoch (history.csv columns and intermediate values for pruners).
PER_EPOCH = (
    TRAIN_LOSS,
    VAL_LOSS,
    VAL_PPL,
    VAL_TOKEN_ACC,
    VAL_EXACT_MATCH,
    VAL_BLEU,
    LR,
    TRAIN_TOKENS_PER_S,
    TEACHER_FORCING,
    EPOCH_S,
    VAL_DECODE_SHARE,
)
FINAL = (
    VAL_PPL,
    VAL_TOKEN_ACC,
    VAL_EXACT_MATCH,
    VAL_BLEU,
    TEST_LOSS,
    TEST_PPL,
    TEST_TOKEN_ACC,
    TEST_EXACT_MATCH,
    TEST_BLEU,
    TEST_BLEU_TOK,
    TEST_BLEU_TOK_LC,
    TEST_CHRF,
)

Direction = Literal["minimize", "maximize"]

# Direction of "better" for every metric a sweep may optimise.
DIRECTIONS: dict[str, Direction] = {
    VAL_LOSS: "minimize",
    VAL_PPL: "minimize",
    VAL_TOKEN_ACC: "maximize",
    VAL_EXACT_MATCH: "maximize",
    VAL_BLEU: "maximize",
    TEST_LOSS: "minimize",
    TEST_PPL: "minimize",
    TEST_TOKEN_ACC: "maximize",
    TEST_EXACT_MATCH: "maximize",
    TEST_BLEU: "maximize",
    TEST_BLEU_TOK: "maximize",
    TEST_BLEU_TOK_LC: "maximize",
    TEST_CHRF: "maximize",
}

_LOGGED = {TRAIN_LOSS, VAL_LOSS, VAL_PPL, VAL_TOKEN_ACC, TEST_LOSS, TEST_PPL, TEST_TOKEN_ACC, LR}
_LOGGED |= {TRAIN_TOKENS_PER_S, TEACHER_FORCING}


@dataclass(frozen=True)
class Task:
    """What a task is scored by. Everything that differs by task (the objective a sweep may use, the
    report's headline metric, Table 1, the curves, which significance test) reads it from here."""

    name: str
    logged: frozenset[str]  # the metrics its runs log (a translation has no exact match, addition no BLEU)
    primary: str  # the headline test metric of reports
    table1: tuple[str, ...]  # the metrics of the paper's Table 1 layout
    curve: str  # the task metric of the validation curves, next to perplexity
    exact_match: bool  # scored sentence by sentence as right or wrong (else corpus BLEU on text)


ADDITION = Task(
    "addition",
    frozenset(_LOGGED | {VAL_EXACT_MATCH, TEST_EXACT_MATCH}),
    primary=TEST_EXACT_MATCH,
    table1=(TEST_EXACT_MATCH,),
    curve=VAL_EXACT_MATCH,
    exact_match=True,
)
TRANSLATION = Task(
    "translation",
    frozenset(_LOGGED | {VAL_BLEU, TEST_BLEU, TEST_BLEU_TOK, TEST_BLEU_TOK_LC, TEST_CHRF}),
    primary=TEST_BLEU,
    table1=(TEST_BLEU, TEST_BLEU_TOK),
    curve=VAL_BLEU,
    exact_match=False,
)
TASKS = {t.name: t for t in (ADDITION, TRANSLATION)}


def task_of(data_name: str) -> str:
    """`addition` is scored by exact match; every other dataset is translation scored by BLEU."""
    return "addition" if data_name == "addition" else "translation"
