"""Evaluation: metrics against the sacreBLEU command line, analyses recomputed from the written files,
and `s2s evaluate` / `s2s translate` on tiny trained runs."""

from __future__ import annotations

import gzip
import io
import json
import math
import random
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import sacrebleu
import torch
import yaml

from s2s_lightning.analysis import (
    SentenceScores,
    average_rank,
    bootstrap,
    buckets,
    frequency_ranks,
    read_scores,
    sentence_scores,
)
from s2s_lightning.cli import main as s2s
from s2s_lightning.config import build_config
from s2s_lightning.data import DataBundle
from s2s_lightning.errors import S2SError
from s2s_lightning.evaluation import cased_tokenizer, score, score_split
from s2s_lightning.inference import evaluate_runs, load_ensemble, load_run
from s2s_lightning.records import as_line, read_json, read_lines, write_lines
from s2s_lightning.text import MosesTokenizer, TextCodec
from s2s_lightning.train import train

REPO = Path(__file__).resolve().parents[2]
MULTI30K = REPO.parent / "shared" / "data" / "multi30k"
SACREBLEU = Path(sys.executable).parent / "sacrebleu"
TINY = {
    "data.addition.train_size": 300,
    "data.addition.val_size": 50,
    "data.addition.test_size": 50,
    "model.hidden_dim": 8,
    "model.embedding_dim": 6,
    "train.max_epochs": 1,
    "tracking.wandb": "disabled",
    "train.progress_bar": False,
    "eval.bootstrap_samples": 200,
}
TINY_MULTI30K = {
    **{k: v for k, v in TINY.items() if not k.startswith("data.addition")},
    "data.name": "multi30k",
    "data.dir": str(MULTI30K),
    "data.max_train_sentences": 300,
    "data.max_eval_sentences": 50,
    "eval.max_len_a": 0.5,
    "eval.max_len_b": 5,
}
needs_multi30k = pytest.mark.skipif(not (MULTI30K / "train.de.gz").is_file(), reason="no local Multi30k copy")


@pytest.fixture(scope="module")
def addition_run(tmp_path_factory) -> Path:
    """A tiny trained run whose final test used beam 2 (eval.beam_size)."""
    run_dir = tmp_path_factory.mktemp("runs") / "addition"
    record = train(build_config({}, {**TINY, "eval.beam_size": 2}), run_dir)
    assert record["status"] == "completed", record["error"]
    return run_dir


@pytest.fixture(scope="module")
def multi30k_bundle():
    if not (MULTI30K / "train.de.gz").is_file():
        pytest.skip("no local Multi30k copy")
    cfg = build_config({}, TINY_MULTI30K)
    return cfg, DataBundle(cfg)


def sacrebleu_cli(ref: Path, hyp: Path, *args: str) -> float:
    out = subprocess.run(
        [str(SACREBLEU), str(ref), "-i", str(hyp), "-b", "-w", "6", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip())


def noisy_copies(refs: list[str], seed: int = 0) -> list[str]:
    """Hypotheses with a realistic spread of sentence BLEU: references with words dropped and swapped."""
    rng = random.Random(seed)
    out = []
    for ref in refs:
        words = [w for w in ref.split() if rng.random() > rng.choice([0.0, 0.2, 0.5])]
        if len(words) > 2 and rng.random() < 0.5:
            i = rng.randrange(len(words) - 1)
            words[i], words[i + 1] = words[i + 1], words[i]
        out.append(" ".join(words))
    return out


# ----------------------------------------------------------------------------------------------
# Metrics and analyses against sacreBLEU, on real Multi30k references.


@pytest.mark.integration
def test_recorded_metrics_equal_the_sacrebleu_command_line(multi30k_bundle, tmp_path):
    cfg, bundle = multi30k_bundle
    hyps = noisy_copies(bundle.splits["test"].tgt_text)
    result = score_split(bundle, "test", hyps, cfg.eval, tmp_path)
    metrics = result["metrics"]
    assert 5 < metrics["test/bleu"] < 95  # a score that says something
    assert metrics["test/bleu"] == pytest.approx(
        sacrebleu_cli(tmp_path / "test.ref.txt", tmp_path / "test.hyp.txt"), abs=1e-5
    )
    assert metrics["test/bleu_tok"] == pytest.approx(
        sacrebleu_cli(tmp_path / "test.ref.tok.txt", tmp_path / "test.hyp.tok.txt", "-tok", "none"), abs=1e-5
    )
    assert metrics["test/chrf"] == pytest.approx(
        sacrebleu_cli(tmp_path / "test.ref.txt", tmp_path / "test.hyp.txt", "-m", "chrf"), abs=1e-5
    )
    assert result["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert "tok:none" in result["signatures"]["bleu_tok"]
    # The tokenized files are the Moses tokenization of the cased text: only spacing differs.
    for name in ("ref", "hyp"):
        plain = (tmp_path / f"test.{name}.txt").read_text(encoding="utf-8").splitlines()
        tokenized = (tmp_path / f"test.{name}.tok.txt").read_text(encoding="utf-8").splitlines()
        assert [t.replace(" ", "") for t in tokenized] == [p.replace(" ", "") for p in plain]


def test_bucket_scores_recompute_from_the_written_files(multi30k_bundle, tmp_path):
    cfg, bundle = multi30k_bundle
    score_split(bundle, "test", noisy_copies(bundle.splits["test"].tgt_text, seed=1), cfg.eval, tmp_path)
    analysis = read_json(tmp_path / "analysis.json")
    assert set(analysis) == {"metric", "by_length", "by_frequency", "bootstrap", "sentences"}
    rows = read_scores(tmp_path / analysis["sentences"])
    hyps = (tmp_path / "test.hyp.txt").read_text(encoding="utf-8").splitlines()
    refs = (tmp_path / "test.ref.txt").read_text(encoding="utf-8").splitlines()
    srcs = (tmp_path / "test.src.txt").read_text(encoding="utf-8").splitlines()
    assert len(rows) == len(hyps) == len(refs) == len(srcs) == 50
    ranks = frequency_ranks(bundle.src_freq)
    for row in rows:
        i = row["index"]
        assert row["score"] == pytest.approx(sacrebleu.sentence_bleu(hyps[i], [refs[i]]).score, abs=1e-5)
        tokens = bundle.codec.src_tokenizer.tokenize(srcs[i])
        assert row["src_len"] == len(tokens)
        assert row["avg_freq_rank"] == pytest.approx(average_rank(tokens, ranks), abs=1e-4)
    for key, column, edges in (
        ("by_length", "src_len", cfg.eval.length_buckets),
        ("by_frequency", "avg_freq_rank", cfg.eval.frequency_buckets),
    ):
        low_key, high_key = ("min_len", "max_len") if key == "by_length" else ("min_rank", "max_rank")
        assert sum(b["n"] for b in analysis[key]) == len(rows)
        assert len(analysis[key]) >= (3 if key == "by_length" else 1)
        for b in analysis[key]:
            assert [b[low_key], b[high_key]] in [list(p) for p in zip(edges[:-1], edges[1:])]
            members = [r["index"] for r in rows if b[low_key] < r[column] <= b[high_key]]
            assert b["n"] == len(members) > 0
            expected = sacrebleu.corpus_bleu([hyps[i] for i in members], [[refs[i] for i in members]]).score
            assert b["score"] == pytest.approx(expected, abs=1e-6)
    boot = analysis["bootstrap"]
    assert boot["n_resamples"] == cfg.eval.bootstrap_samples
    assert boot["low"] < boot["mean"] < boot["high"]


def test_corpus_bleu_of_any_subset_equals_sacrebleu():
    """Including subsets without a single 4-gram match, where BLEU's smoothing decides the score."""
    hyps = ["the cat sat on the mat", "a dog", "it rains today in Paris", "x y z a b"]
    refs = ["the cat sat on a mat", "the dog barks", "today it rains in Paris", "x y w a b"]
    scores = sentence_scores("translation", hyps, refs)
    for subset in ([0, 1, 2, 3], [1, 3], [3], [0, 2], [1, 1, 3]):
        expected = sacrebleu.corpus_bleu([hyps[i] for i in subset], [[refs[i] for i in subset]]).score
        assert scores.corpus(np.array(subset)) == pytest.approx(expected, abs=1e-9)
    assert 0 < scores.corpus(np.array([3])) < 100  # no 4-gram matches: smoothing at work


def test_tokenized_bleu_is_cased_even_for_lowercased_data():
    bundle = SimpleNamespace(
        codec=SimpleNamespace(tgt_tokenizer=MosesTokenizer("en", lowercase=True)),
        cfg=SimpleNamespace(tgt_lang="en"),
    )
    assert cased_tokenizer(bundle).tokenize("A Dog's bone.") == ["A", "Dog", "'s", "bone", "."]


def test_exact_match_buckets_and_bootstrap():
    scores = sentence_scores("addition", ["12", "7", "100", "3"], ["12", "8", "100", "30"])
    assert scores.scores.tolist() == [1.0, 0.0, 1.0, 0.0]
    lengths = np.array([2.0, 1.0, 3.0, 5.0])  # 5 is exactly an edge: it belongs to the bucket below
    assert buckets(lengths, [0, 2, 5, 10], scores, "min_len", "max_len") == [
        {"min_len": 0, "max_len": 2, "n": 2, "score": 0.5},
        {"min_len": 2, "max_len": 5, "n": 2, "score": 0.5},
    ]
    assert buckets(np.array([0.0]), [0, 2], scores, "min_len", "max_len") == []  # empty buckets left out
    perfect = SentenceScores("exact_match", np.ones(30), None)
    assert bootstrap(perfect, 50) == {"low": 1.0, "high": 1.0, "mean": 1.0, "n_resamples": 50}
    mixed = SentenceScores("exact_match", np.array([1.0, 0.0] * 20), None)
    first, again = bootstrap(mixed, 300), bootstrap(mixed, 300)
    assert first == again  # seeded
    assert first["low"] < 0.5 < first["high"] and first["high"] - first["low"] < 0.5


def test_frequency_ranks_and_unknown_words():
    ranks = frequency_ranks({"a": 5, "b": 9, "c": 5})
    assert ranks == {"b": 1, "a": 2, "c": 3}  # ties alphabetical, like Vocab.build
    assert average_rank(["b", "c", "zzz"], ranks) == pytest.approx((1 + 3 + 4) / 3)  # unknown: 3 + 1
    assert average_rank([], ranks) == 0.0


def test_validation_score_is_bleu_only_and_addition_exact_match():
    metrics, signature = score(
        "translation", ["a cat sat on the mat"], ["a cat sat on the mat"], prefix="val"
    )
    assert metrics == {"val/bleu": pytest.approx(100.0)} and "tok:13a" in signature
    assert score("addition", ["1", "2"], ["1", "3"], prefix="test") == ({"test/exact_match": 0.5}, None)


# ----------------------------------------------------------------------------------------------
# Commands on a trained run.


def test_train_uses_the_configured_beam_and_writes_analyses(addition_run):
    record = read_json(addition_run / "record.json")
    assert record["beam_size"] == 2
    analysis = read_json(addition_run / "analysis.json")
    assert analysis["metric"] == "exact_match" and analysis["by_frequency"] == []
    assert sum(b["n"] for b in analysis["by_length"]) == 50  # characters of "a+b": 3 to 7
    rows = read_scores(addition_run / "test.scores.tsv")
    srcs = (addition_run / "test.src.txt").read_text().splitlines()
    assert [r["src_len"] for r in rows] == [len(s) for s in srcs]
    assert np.mean([r["score"] for r in rows]) == pytest.approx(record["metrics"]["test/exact_match"])


def test_evaluate_round_trips_a_run(addition_run, capsys):
    assert s2s(["evaluate", str(addition_run), "--beam", "2"]) == 0
    out = addition_run / "eval" / "test_beam2"
    metrics = read_json(out / "metrics.json")
    assert {"beam_size", "split", "metrics", "bleu_signature", "members", "sentences_per_s"} <= set(metrics)
    assert (
        metrics["beam_size"] == 2 and metrics["split"] == "test" and metrics["members"] == [str(addition_run)]
    )
    record = read_json(addition_run / "record.json")
    assert metrics["metrics"] == {"test/exact_match": record["metrics"]["test/exact_match"]}
    # The same checkpoint and beam as the run's own final test: the same hypotheses.
    assert (out / "test.hyp.txt").read_text() == (addition_run / "test.hyp.txt").read_text()
    for name in ("analysis.json", "test.scores.tsv", "test.src.txt", "test.ref.txt"):
        assert (out / name).is_file()
    assert "test/exact_match=" in capsys.readouterr().out


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_evaluate_shows_a_progress_bar_on_a_terminal_only(addition_run, monkeypatch, capsys):
    n = len((addition_run / "test.src.txt").read_text().splitlines())
    assert s2s(["evaluate", str(addition_run), "--beam", "2"]) == 0
    assert capsys.readouterr().err == ""  # not a terminal (a log, CI): no bar
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert s2s(["evaluate", str(addition_run), "--beam", "2"]) == 0
    bar = terminal.getvalue()
    assert "test, beam 2" in bar and f"{n}/{n}" in bar and "sentences" in bar


def test_translate_reads_stdin_line_by_line(addition_run, monkeypatch, capsys):
    srcs = (addition_run / "test.src.txt").read_text().splitlines()[:7]
    hyps = (addition_run / "test.hyp.txt").read_text().splitlines()[:7]
    lines = srcs[:3] + [""] + srcs[3:] + ["   "]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(lines) + "\n"))
    assert s2s(["translate", str(addition_run), "--beam", "2", "--batch-size", "3"]) == 0
    assert capsys.readouterr().out.split("\n") == hyps[:3] + [""] + hyps[3:] + ["", ""]


def test_translate_warns_about_input_outside_the_vocabulary(addition_run, monkeypatch, capsys):
    """`12*3` and `abc` are not addition questions: each line's unknown tokens are counted on stderr."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("12+3\n12*3\nabc\n"))
    assert s2s(["translate", str(addition_run)]) == 0
    out = capsys.readouterr()
    assert len(out.out.splitlines()) == 3
    assert out.err.splitlines() == [
        "s2s: warning: line 2: 1 of 4 tokens are not in the model's source vocabulary (read as <unk>)",
        "s2s: warning: line 3: 3 of 3 tokens are not in the model's source vocabulary (read as <unk>)",
    ]


def test_ensembles_need_out_and_matching_members(addition_run, tmp_path, capsys):
    assert s2s(["evaluate", str(addition_run), str(addition_run), "--beam", "2"]) == 2
    assert "needs --out" in capsys.readouterr().err
    # An ensemble of a run with itself averages equal log-probabilities: the run's own hypotheses.
    assert (
        s2s(["evaluate", str(addition_run), str(addition_run), "--beam", "2", "--out", str(tmp_path / "e")])
        == 0
    )
    assert (tmp_path / "e" / "test.hyp.txt").read_text() == (addition_run / "test.hyp.txt").read_text()
    assert read_json(tmp_path / "e" / "metrics.json")["members"] == [str(addition_run)] * 2

    flipped = tmp_path / "flipped"
    shutil.copytree(addition_run, flipped, ignore=shutil.ignore_patterns("eval"))
    cfg = yaml.safe_load((flipped / "config.yaml").read_text())
    cfg["data"]["reverse_source"] = not cfg["data"]["reverse_source"]
    (flipped / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(S2SError, match="reverse_source"):
        load_ensemble([addition_run, flipped])

    shuffled = tmp_path / "shuffled"
    shutil.copytree(addition_run, shuffled, ignore=shutil.ignore_patterns("eval"))
    vocab = json.loads((shuffled / "vocab.json").read_text())
    vocab["tgt"][4], vocab["tgt"][5] = vocab["tgt"][5], vocab["tgt"][4]
    (shuffled / "vocab.json").write_text(json.dumps(vocab))
    with pytest.raises(S2SError, match="target vocabularies.*id 4 is"):
        load_ensemble([addition_run, shuffled])


def test_runs_of_different_seeds_share_the_questions_and_ensemble(addition_run, tmp_path):
    # The paper's ensembles are of runs that differ in their seed. Addition runs draw one dataset
    # (data.addition.seed) whatever their seed, so their vocabularies and test sets agree.
    other = tmp_path / "seed1"
    assert train(build_config({}, {**TINY, "eval.beam_size": 2, "seed": 1}), other)["status"] == "completed"
    assert (other / "test.src.txt").read_text() == (addition_run / "test.src.txt").read_text()
    assert (other / "vocab.json").read_text() == (addition_run / "vocab.json").read_text()
    assert s2s(["evaluate", str(addition_run), str(other), "--beam", "2", "--out", str(tmp_path / "e")]) == 0
    assert read_json(tmp_path / "e" / "metrics.json")["members"] == [str(addition_run), str(other)]

    # With data.addition.seed null each run draws its own questions: one's test questions can be
    # another's training data, so such runs are refused as an ensemble even if their vocabularies agree.
    for run, seed in ((addition_run, 0), (other, 1)):
        own = tmp_path / f"own{seed}"
        shutil.copytree(run, own, ignore=shutil.ignore_patterns("eval"))
        cfg = yaml.safe_load((own / "config.yaml").read_text())
        cfg["data"]["addition"]["seed"] = None
        (own / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(S2SError, match="different addition questions.*data seeds 0 and 1"):
        load_ensemble([tmp_path / "own0", tmp_path / "own1"])
    with pytest.raises(S2SError, match="different addition questions.*data seeds 0 and 1"):
        load_ensemble([addition_run, tmp_path / "own1"])
    load_ensemble([addition_run, tmp_path / "own0"])  # the same questions: seed 0 either way


def test_evaluate_refuses_a_run_whose_test_sentences_changed(addition_run, tmp_path, capsys):
    # A run tested on other questions than its config now draws (a run written before
    # data.addition.seed existed, or edited data files) would be scored on what it may have trained on.
    moved = tmp_path / "moved"
    shutil.copytree(addition_run, moved, ignore=shutil.ignore_patterns("eval"))
    lines = (moved / "test.src.txt").read_text().split("\n")
    (moved / "test.src.txt").write_text("\n".join(["1+1"] + lines[1:]))
    assert s2s(["evaluate", str(moved)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("s2s: error: ") and "other test sentences" in err and "line 1" in err
    assert not (moved / "eval").exists()


def test_evaluate_errors_are_one_line(addition_run, tmp_path, capsys):
    assert s2s(["evaluate", str(tmp_path / "missing")]) == 2
    assert s2s(["evaluate", str(addition_run), "--beam", "0"]) == 2
    broken = tmp_path / "broken"
    shutil.copytree(addition_run, broken, ignore=shutil.ignore_patterns("eval"))
    (broken / "checkpoints" / "best.ckpt").write_bytes(b"not a checkpoint")
    assert s2s(["evaluate", str(broken)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("s2s: error: ") for line in err)
    assert "not found" in err[0] and "at least 1" in err[1] and "corrupted" in err[2]


def test_represent_exports_encoder_summaries(addition_run, tmp_path):
    phrases = tmp_path / "phrases.txt"
    phrases.write_text("12+3\n\n3+12\n12+3\n")
    assert s2s(["evaluate", str(addition_run), "--represent", str(phrases)]) == 0
    rep = read_json(addition_run / "representations.json")
    assert rep["phrases"] == ["12+3", "3+12", "12+3"]
    vectors = torch.tensor(rep["vectors"])
    assert vectors.shape == (3, 8)  # model.hidden_dim
    assert torch.equal(vectors[0], vectors[2]) and not torch.equal(vectors[0], vectors[1])
    cfg, model, src_vocab, tgt_vocab = load_run(addition_run)
    ids = TextCodec(cfg.data, src_vocab, tgt_vocab).encode_source("3+12")
    src = torch.tensor([ids + [2]])
    assert torch.allclose(model.encode(src, torch.tensor([len(ids) + 1])).summary[0], vectors[1], atol=1e-6)


@pytest.mark.integration
@needs_multi30k
def test_evaluate_a_translation_run(tmp_path):
    run_dir = tmp_path / "m30k"
    assert train(build_config({}, TINY_MULTI30K), run_dir)["status"] == "completed"
    assert s2s(["evaluate", str(run_dir), "--beam", "3", "--out", str(tmp_path / "ev")]) == 0
    metrics = read_json(tmp_path / "ev" / "metrics.json")
    assert set(metrics["metrics"]) == {"test/bleu", "test/bleu_tok", "test/bleu_tok_lc", "test/chrf"}
    assert metrics["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert metrics["metrics"]["test/chrf"] == pytest.approx(
        sacrebleu_cli(tmp_path / "ev" / "test.ref.txt", tmp_path / "ev" / "test.hyp.txt", "-m", "chrf"),
        abs=1e-5,
    )

    # Any line-aligned pair of files, read with the run's own vocabulary and tokenization; the training
    # corpus is not tokenized again (its word counts are in the run directory).
    val_de, val_en = (
        gzip.open(MULTI30K / f"val.{lang}.gz", "rt").read().splitlines()[:25] for lang in ("de", "en")
    )
    (tmp_path / "mine.de").write_text("\n".join(val_de) + "\n")
    (tmp_path / "mine.en").write_text("\n".join(val_en) + "\n")
    tokenized = []
    original = DataBundle._tokenize

    def spy(self, role, sources, targets):
        tokenized.append(role)
        return original(self, role, sources, targets)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(DataBundle, "_tokenize", spy)
        args = ["evaluate", str(run_dir), "--split", "mine", "--src", str(tmp_path / "mine.de")]
        assert s2s([*args, "--ref", str(tmp_path / "mine.en")]) == 0
    assert tokenized == ["mine"]
    mine = read_json(run_dir / "eval" / "mine_beam1" / "metrics.json")
    assert mine["split"] == "mine" and mine["num_sentences"] == 25 and "test/bleu" in mine["metrics"]
    assert mine["unknown"]["source_tokens"] > mine["unknown"]["source_unk"] > 0  # a 300-pair vocabulary
    assert read_lines(run_dir / "eval" / "mine_beam1" / "mine.ref.txt") == val_en
    (tmp_path / "short.en").write_text("\n".join(val_en[:3]) + "\n")
    with pytest.raises(
        S2SError, match="mine.de has 25 lines but short.en has 3: source and target files must be"
    ):
        evaluate_runs([run_dir], "mine", source=tmp_path / "mine.de", reference=tmp_path / "short.en")
    with pytest.raises(S2SError, match="missing data file .*test_2017_flickr.de"):
        evaluate_runs([run_dir], "test_2017_flickr")


def test_written_lines_read_back_one_per_sentence(tmp_path):
    # Sentences may hold characters str.splitlines splits on; hyp/ref files must stay aligned.
    sentences = ["a\u2028b", "c\rd", "e\x85f", "g\nh", ""]
    write_lines(tmp_path / "x.txt", sentences)
    assert read_lines(tmp_path / "x.txt") == [as_line(s) for s in sentences] == sentences[:3] + ["g h", ""]


def test_word_f_by_training_frequency_by_hand():
    """compare-mt's word accuracy: clipped matches per sentence, bucketed by training frequency."""
    from collections import Counter

    from s2s_lightning.analysis import word_f_by_frequency

    counts = Counter({"the": 1000, "dog": 5, "runs": 1})
    hyps = [["the", "the", "dog", "walks"]]
    refs = [["the", "dog", "runs"]]
    rows = {(r["min_freq"], r["max_freq"]): r for r in word_f_by_frequency(hyps, refs, counts)}
    assert rows[(-1, 0)] == {
        "min_freq": -1,
        "max_freq": 0,
        "ref_words": 0,
        "hyp_words": 1,
        "precision": 0.0,
        "recall": 0.0,
        "f": 0.0,
    }  # "walks": unseen, not in the reference
    assert rows[(0, 1)]["recall"] == 0.0 and rows[(0, 1)]["hyp_words"] == 0  # "runs" was never produced
    assert rows[(4, 9)]["f"] == 1.0  # "dog"
    the = rows[(999, math.inf)]
    assert (the["precision"], the["recall"]) == (0.5, 1.0) and the["f"] == pytest.approx(
        2 / 3
    )  # clipped to 1


def test_tokenized_bleu_does_not_warn_that_the_text_looks_tokenized(caplog):
    from s2s_lightning.evaluation import translation_metrics

    refs = [f"A man rides bike number {i}." for i in range(120)]
    tokenized = [f"A man rides bike number {i} ." for i in range(120)]
    with caplog.at_level("WARNING"):
        translation_metrics(refs, refs, tokenized, tokenized)
    assert not [r for r in caplog.records if "tokenized" in r.getMessage()]


def test_an_interrupted_evaluation_leaves_no_empty_folder(addition_run, monkeypatch):
    """Ctrl-C of `s2s evaluate` left an empty RUN/eval/<split>_beam<K>/ behind."""
    from s2s_lightning import inference

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(inference, "evaluate_split", interrupted)
    with pytest.raises(KeyboardInterrupt):
        inference.evaluate_runs([addition_run], "val", beam=3)
    assert not (addition_run / "eval" / "val_beam3").exists()


def test_evaluations_are_named_by_what_they_scored_and_never_replace_another(addition_run, tmp_path, capsys):
    """`--split test --src/--ref` wrote the outside set's score into RUN/eval/test_beamK, which the report
    then showed as the run's test score; `--checkpoint last` and `best` shared one folder."""
    run = tmp_path / "run"
    shutil.copytree(addition_run, run, ignore=shutil.ignore_patterns("eval"))

    def evaluate(*args):
        return s2s(["evaluate", str(run), "--beam", "1", *args])

    (tmp_path / "a.txt").write_text("1+1\n2+2\n")
    (tmp_path / "b.txt").write_text("2\n4\n")
    (tmp_path / "c.txt").write_text("2\n5\n")
    outside = ["--src", str(tmp_path / "a.txt"), "--ref", str(tmp_path / "b.txt")]
    assert evaluate("--split", "test", *outside) == 2
    assert "--split test names the run's own test set" in capsys.readouterr().err
    assert not (run / "eval" / "test_beam1").exists()

    assert evaluate("--checkpoint", "last") == 0
    assert evaluate() == 0
    last = read_json(run / "eval" / "test_beam1_last" / "metrics.json")
    best = read_json(run / "eval" / "test_beam1" / "metrics.json")
    assert last["checkpoint"] == "last" and best["checkpoint"] == "best"

    assert evaluate("--split", "sums", *outside) == 0
    capsys.readouterr()
    other = ["--src", str(tmp_path / "a.txt"), "--ref", str(tmp_path / "c.txt")]  # other references
    before = (run / "eval" / "sums_beam1" / "metrics.json").read_text()
    assert evaluate("--split", "sums", *other) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds an evaluation of another pair of test files; it is kept" in err[0]
    assert (run / "eval" / "sums_beam1" / "metrics.json").read_text() == before
    assert evaluate("--split", "sums", *outside) == 0  # the same again: fine
    evaluated = "--out", str(run / "eval" / "sums_beam1")
    assert evaluate("--checkpoint", "last", *evaluated, "--split", "sums", *outside) == 2
    assert "another checkpoint" in capsys.readouterr().err


def test_the_report_reads_only_the_evaluations_that_belong_to_its_rows(tmp_path):
    """An outside set scored as `test` (before it was refused) and a `--checkpoint last` evaluation are not
    the run's test score at that beam."""
    from s2s_lightning.report.load import eval_rows

    def evaluation(name, **extra):
        folder = tmp_path / name
        folder.mkdir()
        record = {"split": "test", "beam_size": 12, "members": ["r"], "metrics": {"test/bleu": 1.0}, **extra}
        (folder / "metrics.json").write_text(json.dumps(record))
        return folder

    folders = [
        evaluation("own"),
        evaluation("outside", files={"source": "/x/news.de", "reference": "/x/news.en"}),
        evaluation("last", checkpoint="last"),
    ]
    import pandas as pd

    rows = eval_rows(folders, pd.DataFrame({"run_dir": ["r"]}))
    assert list(rows["split"]) == ["test", "news.de"]


def test_blank_source_lines_are_counted_not_scored_silently(addition_run, tmp_path, capsys):
    """Blank lines in --src were scored silently ("0 of 0 source tokens" for those lines)."""
    run = tmp_path / "run"
    shutil.copytree(addition_run, run, ignore=shutil.ignore_patterns("eval"))
    (tmp_path / "a.txt").write_text("1+1\n\n2+2\n\n")
    (tmp_path / "b.txt").write_text("2\n0\n4\n1\n")
    args = ["--split", "gaps", "--src", str(tmp_path / "a.txt"), "--ref", str(tmp_path / "b.txt")]
    assert s2s(["evaluate", str(run), *args]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["s2s: warning: 2 of 4 source lines are empty (line 2, 4); they are scored as they are"]
    assert read_json(run / "eval" / "gaps_beam2" / "metrics.json")["unknown"]["empty_source_lines"] == [2, 4]


def test_a_beam_wider_than_the_vocabulary_is_refused_before_decoding(addition_run, tmp_path, capsys):
    """`--beam 10000` on the addition model grew to 24 GB and was killed by the OOM killer after 117 s,
    leaving an empty eval/test_beam10000."""
    from s2s_lightning.evaluation import DECODE_MEMORY, beam_rows

    run = tmp_path / "run"
    shutil.copytree(addition_run, run, ignore=shutil.ignore_patterns("eval"))
    assert s2s(["evaluate", str(run), "--beam", "10000"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and "beam 10000 (--beam, eval.beam_size) is wider than the target vocabulary" in err[0]
    )
    assert not (run / "eval").exists()
    # Batches are sized by the beams' memory: a wide beam decodes fewer sentences at once.
    cfg, model, _, _ = load_run(run)
    vocab = model.decoder.out.out_features
    wide = cfg.eval.model_copy(update={"beam_size": vocab})
    assert (
        beam_rows(model, wide) < beam_rows(model, cfg.eval)
        and beam_rows(model, wide) * vocab * vocab * 16 <= DECODE_MEMORY
    )
