"""Statistics over test sentences: per-sentence scores and what is built from them (length and
word-frequency buckets, the paper's Fig. 3; bootstrap confidence intervals), and paired significance
tests between two systems on the same sentences (exact McNemar for exact match, sacreBLEU's paired
bootstrap for BLEU).

Corpus BLEU of any subset of sentences is computed from per-sentence sufficient statistics
(n-gram matches and totals, hypothesis and reference lengths) summed over the subset, which is what
sacreBLEU's `corpus_score` does; so a bucket's or a resample's BLEU is the corpus BLEU of those
sentences, never an average of sentence BLEUs. Exact match of a subset is the mean of its 0/1 scores.

`analysis.json` (schema read by the report generator):
  {"metric": "bleu" | "exact_match",
   "by_length": [{"min_len", "max_len", "n", "score"}, ...],      # min_len < source length <= max_len
   "by_frequency": [{"min_rank", "max_rank", "n", "score"}, ...], # min_rank < avg rank <= max_rank
   "bootstrap": {"low", "high", "mean", "n_resamples"},           # 95% percentile interval
   "sentences": "{split}.scores.tsv"}                              # index, src_len, avg_freq_rank, score
Scores are in the metric's own units, as in metrics.json: BLEU 0-100, exact match 0-1.
Empty buckets are left out. Source length counts tokens (characters for `addition`, where
by_frequency is empty: digit frequencies say nothing).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sacrebleu.metrics import BLEU
from sacrebleu.significance import PairedTest, Result

from . import metrics as M
from .records import atomic_write_text, read_counts, read_lines, split_file

SCORES_COLUMNS = ("index", "src_len", "avg_freq_rank", "score")
BOOTSTRAP_SEED = 12345
ALPHA = 0.05  # the reports' significance level: every test, interval (95%) and power calculation
PAIRED_BOOTSTRAP_SAMPLES = 1000


@dataclass
class SentenceScores:
    """Scores of each sentence and how to score any subset of them as a corpus."""

    metric: str  # "bleu" or "exact_match"
    scores: np.ndarray  # [N] sentence BLEU (0-100) or 0/1 exact match
    stats: np.ndarray | None  # [N, 2 + 2 * 4] BLEU statistics: hyp len, ref len, matches, totals

    def corpus(self, index: np.ndarray | None = None) -> float:
        """Corpus score of the sentences `index` (all by default)."""
        rows = slice(None) if index is None else index
        if self.stats is None:
            return float(self.scores[rows].mean())
        return bleu_from_stats(self.stats[rows].sum(0))

    def resampled(self, weights: np.ndarray) -> np.ndarray:
        """Corpus scores of resamples given as counts per sentence: weights [R, N] -> [R]."""
        if self.stats is None:
            return weights @ self.scores / weights.sum(1)
        return np.array([bleu_from_stats(row) for row in weights @ self.stats])  # [R, 2 + 2 * 4]


def bleu_from_stats(stats: np.ndarray) -> float:
    """sacreBLEU's corpus BLEU (default 'exp' smoothing) from summed statistics."""
    sys_len, ref_len, order = int(stats[0]), int(stats[1]), (len(stats) - 2) // 2
    correct, total = [int(x) for x in stats[2 : 2 + order]], [int(x) for x in stats[2 + order :]]
    return BLEU.compute_bleu(correct, total, sys_len, ref_len, smooth_method="exp").score


def sentence_scores(task: str, hyps: Sequence[str], refs: Sequence[str]) -> SentenceScores:
    """Sentence BLEU (sacrebleu.sentence_bleu) with its statistics, or 0/1 exact match for addition."""
    if M.TASKS[task].exact_match:
        return SentenceScores("exact_match", np.array([float(h == r) for h, r in zip(hyps, refs)]), None)
    metric = BLEU(effective_order=True)  # sacrebleu.sentence_bleu's settings
    scores, stats = [], []
    for hyp, ref in zip(hyps, refs):
        s = metric.sentence_score(hyp, [ref])
        scores.append(s.score)
        stats.append([s.sys_len, s.ref_len, *s.counts, *s.totals])
    return SentenceScores(
        "bleu", np.array(scores, dtype=float), np.array(stats, dtype=np.int64).reshape(-1, 10)
    )


def frequency_ranks(counts: Counter) -> dict[str, int]:
    """Rank of each training word: 1 = most frequent, ties broken alphabetically (as Vocab.build)."""
    ranked = sorted(counts, key=lambda t: (-counts[t], t))
    return {tok: i for i, tok in enumerate(ranked, start=1)}


def average_rank(tokens: Sequence[str], ranks: dict[str, int]) -> float:
    """Mean frequency rank of `tokens`; a word unseen in training gets len(ranks) + 1. Empty: 0."""
    if not tokens:
        return 0.0
    unknown = len(ranks) + 1
    return sum(ranks.get(t, unknown) for t in tokens) / len(tokens)


def buckets(
    values: np.ndarray, edges: Sequence[float], scores: SentenceScores, low_key: str, high_key: str
) -> list[dict]:
    """Corpus score per bucket edges[i] < value <= edges[i+1], with its sentence count; empty ones left
    out."""
    out = []
    for low, high in zip(edges[:-1], edges[1:]):
        index = np.nonzero((values > low) & (values <= high))[0]
        if len(index):
            out.append({low_key: low, high_key: high, "n": int(len(index)), "score": scores.corpus(index)})
    return out


def bootstrap(scores: SentenceScores, samples: int, seed: int = BOOTSTRAP_SEED) -> dict:
    """95% percentile interval of the corpus score over `samples` resamples of the sentences."""
    n = len(scores.scores)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=samples)  # [R, N] times each sentence is drawn
    values = scores.resampled(weights)  # [R]
    low, high = np.percentile(values, [2.5, 97.5])
    return {"low": float(low), "high": float(high), "mean": float(values.mean()), "n_resamples": int(samples)}


def analyse(
    task: str,
    hyps: Sequence[str],
    refs: Sequence[str],
    src_lens: Sequence[int],
    avg_ranks: Sequence[float],
    length_edges: Sequence[int],
    frequency_edges: Sequence[int],
    bootstrap_samples: int,
    scores_file: str,
) -> tuple[dict, list[tuple]]:
    """The analysis.json dict and the rows of the per-sentence scores file."""
    scores = sentence_scores(task, hyps, refs)
    lengths, ranks = np.array(src_lens, dtype=float), np.array(avg_ranks, dtype=float)
    analysis = {
        "metric": scores.metric,
        "by_length": buckets(lengths, length_edges, scores, "min_len", "max_len"),
        "by_frequency": []
        if M.TASKS[task].exact_match
        else buckets(ranks, frequency_edges, scores, "min_rank", "max_rank"),
        "bootstrap": bootstrap(scores, bootstrap_samples),
        "sentences": scores_file,
    }
    rows = [
        (i, int(n), float(r), float(s)) for i, (n, r, s) in enumerate(zip(src_lens, avg_ranks, scores.scores))
    ]
    return analysis, rows


def write_scores(path: Path, rows: list[tuple]) -> None:
    """The per-sentence scores file: tab-separated, one header line (SCORES_COLUMNS)."""
    lines = ["\t".join(SCORES_COLUMNS)] + [f"{i}\t{n}\t{r:.4f}\t{s:.6f}" for i, n, r, s in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_scores(path: Path) -> list[dict]:
    """Rows of a scores file as dicts of numbers (index and src_len as int)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    return [
        {k: (int(v) if k in ("index", "src_len") else float(v)) for k, v in zip(header, line.split("\t"))}
        for line in lines[1:]
    ]


# ------------------------------------------------------------------------- word F by frequency
# compare-mt's buckets of training frequency: words never seen in training, each of the rarest counts,
# then widening ranges. A bucket is (low, high]: (0, 1] holds words seen once.
WORD_FREQUENCY_EDGES = (-1, 0, 1, 2, 3, 4, 9, 99, 999, math.inf)


def word_f_by_frequency(
    hyps: Sequence[Sequence[str]], refs: Sequence[Sequence[str]], counts: Counter, edges=WORD_FREQUENCY_EDGES
) -> list[dict]:
    """Word precision, recall and F-measure by the word's frequency in the training targets (compare-mt).

    A hypothesis word is correct where the reference of its sentence holds it, counted with clipping
    (min of the two counts per sentence); precision counts hypothesis words of the bucket, recall
    reference words. Buckets without a word on either side are left out. Rows:
    {"min_freq", "max_freq" ((min, max] of training counts), "ref_words", "hyp_words", "precision",
    "recall", "f"}.
    """
    n = len(edges) - 1
    matched, hyp_total, ref_total = np.zeros(n), np.zeros(n), np.zeros(n)

    def bucket(word: str) -> int:
        return int(np.searchsorted(edges, counts.get(word, 0), side="left")) - 1

    for hyp, ref in zip(hyps, refs):
        hyp_counts, ref_counts = Counter(hyp), Counter(ref)
        for word, c in hyp_counts.items():
            hyp_total[bucket(word)] += c
        for word, c in ref_counts.items():
            ref_total[bucket(word)] += c
            matched[bucket(word)] += min(c, hyp_counts.get(word, 0))
    out = []
    for i in range(n):
        if not hyp_total[i] and not ref_total[i]:
            continue
        p = matched[i] / hyp_total[i] if hyp_total[i] else 0.0
        r = matched[i] / ref_total[i] if ref_total[i] else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        out.append(
            {
                "min_freq": edges[i],
                "max_freq": edges[i + 1],
                "ref_words": int(ref_total[i]),
                "hyp_words": int(hyp_total[i]),
                "precision": p,
                "recall": r,
                "f": f,
            }
        )
    return out


# ---------------------------------------------------------------------------------- significance
def exact_mcnemar(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p-value of the paired sign-flip (permutation) test on per-sentence 0/1 correctness.

    Only discordant sentences can change under a flip, so the permutation distribution is exactly
    Binomial(k, 1/2) over the k discordant pairs: the exact McNemar test, with no sampling noise.
    """
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    wins, losses = int(np.sum(a & ~b)), int(np.sum(~a & b))
    k, observed = wins + losses, abs(wins - losses)
    if k == 0:
        return 1.0
    tail = sum(math.comb(k, x) for x in range(k + 1) if abs(2 * x - k) >= observed)
    return min(1.0, tail / 2**k)  # Python ints: exact until the final division


def _bleu_options(signature: str | None) -> dict:
    """BLEU options matching the runs' recorded signature (tok, case), so p-values test the reported BLEU."""
    fields = dict(part.split(":", 1) for part in (signature or "").split("|") if ":" in part)
    return {"tokenize": fields.get("tok", "13a"), "lowercase": fields.get("case") == "lc"}


def paired_bleu(
    hyps_a: list[str], hyps_b: list[str], refs: list[str], signature: str | None
) -> tuple[float, float, float]:
    """(BLEU a, BLEU b, p) from sacreBLEU's paired bootstrap resampling (seed SACREBLEU_SEED, 12345)."""
    opts = _bleu_options(signature)
    if hyps_a == hyps_b:  # sacreBLEU's strict '>' would report p = 1/(n+1) for identical systems
        score = BLEU(**opts).corpus_score(hyps_a, [refs]).score
        return score, score, 1.0
    test = PairedTest(
        [("a", hyps_a), ("b", hyps_b)],
        {"BLEU": BLEU(**opts)},
        references=[refs],
        test_type="bs",
        n_samples=PAIRED_BOOTSTRAP_SAMPLES,
    )
    _, results = test()
    base, other = next(v for k, v in results.items() if k != "System")
    assert isinstance(base, Result) and isinstance(other, Result) and other.p_value is not None
    return base.score, other.score, other.p_value


AR_TRIALS = 10_000  # approximate randomization trials: sacreBLEU's default (--paired-ar-n)
AR_CHUNK = 500  # trials drawn and scored at a time (a [chunk, sentences] swap matrix per seed)


def pooled_randomization(
    pairs: Sequence[tuple[SentenceScores, SentenceScores]],
    samples: int = AR_TRIALS,
    seed: int = BOOTSTRAP_SEED,
    stream: int = 0,
) -> float:
    """Two-sided p-value that B differs from A over all seeds at once: approximate randomization
    (Riezler & Maxwell, 2005; MultEval; sacreBLEU's --paired-ar for one seed) on the mean over seeds of
    corpus(B) - corpus(A), swapping each sentence's A and B outputs with probability 1/2 within its
    seed; (count + 1) / (samples + 1). `stream`: each comparison draws its own shuffles (a table's
    pairs sharing one shuffle matrix would share its Monte Carlo error)."""
    rng = np.random.default_rng([seed, stream])

    def mean_delta(keep: list[np.ndarray]) -> np.ndarray:  # keep[s]: [R, N], 1 where A's output stays A's
        deltas = []
        for (a, b), k in zip(pairs, keep):
            if a.stats is None:  # exact match: means of 0/1
                deltas.append((k @ (b.scores - a.scores) - (1 - k) @ (b.scores - a.scores)) / len(a.scores))
            else:
                sa, sb = k @ a.stats + (1 - k) @ b.stats, k @ b.stats + (1 - k) @ a.stats  # [R, 10]
                deltas.append(np.array([bleu_from_stats(y) - bleu_from_stats(x) for x, y in zip(sa, sb)]))
        return np.mean(deltas, axis=0)  # [R]

    observed = abs(mean_delta([np.ones((1, len(a.scores))) for a, _ in pairs])[0])
    count = 0
    for start in range(0, samples, AR_CHUNK):
        size = min(AR_CHUNK, samples - start)
        keep = [(rng.random((size, len(a.scores))) >= 0.5).astype(float) for a, _ in pairs]
        count += int(np.sum(np.abs(mean_delta(keep)) >= observed - 1e-12))
    return float((count + 1) / (samples + 1))


def monte_carlo_error(p: float, samples: int) -> float:
    """The standard error of a p-value estimated from `samples` random trials."""
    return math.sqrt(p * (1 - p) / samples)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input's order."""
    m, order = len(p_values), np.argsort(p_values, kind="stable")
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def run_word_f(run_dir: Path) -> list[dict] | None:
    """Word F-measure by training frequency from a run's tokenized test files and training counts
    (translation runs that recorded them); None otherwise."""
    hyp, ref = run_dir / split_file("test", "hyp.tok"), run_dir / split_file("test", "ref.tok")
    counts = read_counts(run_dir)
    if counts is None or not hyp.is_file() or not ref.is_file():
        return None
    hyps, refs = read_lines(hyp), read_lines(ref)
    if len(hyps) != len(refs):
        return None
    return word_f_by_frequency([h.split() for h in hyps], [r.split() for r in refs], counts[1])
