"""The COCO corpus metrics of any multiset of clips, recomputed from per-clip statistics.

A bootstrap interval for BLEU, METEOR or CIDEr must recompute the corpus statistic on
each resample of clips (a clip drawn twice counts twice), not average per-clip scores:

* BLEU-n (pycocoevalcap, "closest" reference length): from per-clip test and reference
  lengths and n-gram guess / correct counts, summed over the resample;
* METEOR: from the 23 statistics its jar prints per clip, summed as the jar's
  ``MeteorStats.addStats`` does and scored as its ``computeMetrics`` does (English
  defaults: alpha 0.85, beta 0.2, gamma 0.6, delta 0.75, module weights 1.0 0.6 0.8 0.6);
* CIDEr-D: the document frequencies (and log corpus size) change with the resample, so
  every clip's score changes; ``CiderD`` holds each clip's n-gram counts as sparse
  matrices and rescores a resample with a few matrix products;
* ROUGE-L is a mean of per-clip scores.

On the full set (all weights 1) each equals what pycocoevalcap returns; on a resample,
what pycocoevalcap returns for the resampled clips (the tests check both).  Inputs are
the per-clip table of ``coco_metrics(..., per_clip=True)``; ``weights`` is an (N,) array
of how many times each of its rows is in the resample, or a (k, N) array of k resamples
scored at once (``bleu_scores``, ``meteor_scores``, ``CiderD.corpus``: the bootstrap's
``bootstrap_weighted``).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from pycocoevalcap.bleu.bleu_scorer import cook_refs, cook_test
from pycocoevalcap.cider.cider_scorer import precook
from scipy import sparse


# ---------------------------------------------------------------------------------
# BLEU
# ---------------------------------------------------------------------------------


def bleu_stats(predictions: Sequence[str], references: Sequence[Sequence[str]],
               n: int = 4) -> np.ndarray:
    """(N, 2 + 2n): per clip, test length, closest reference length, then the n-gram
    guesses (k = 1..n) and the clipped correct n-grams (k = 1..n), as pycocoevalcap's
    ``BleuScorer`` cooks them."""
    rows = []
    for pred, refs in zip(predictions, references):
        comps = cook_test(pred, cook_refs(refs, n=n), n=n)
        testlen = comps["testlen"]
        reflen = min((abs(length - testlen), length) for length in comps["reflen"])[1]
        rows.append([testlen, reflen, *comps["guess"], *comps["correct"]])
    return np.array(rows, dtype=float).reshape(len(rows), 2 + 2 * n)


def bleu_scores(stats: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(k, n) corpus BLEU-1..n of k weighted sets of clips, weights (k, N)
    (``BleuScorer.compute_score`` on each)."""
    tiny, small = 1e-15, 1e-9
    total = weights @ stats                                        # (k, 2 + 2n)
    n = (stats.shape[1] - 2) // 2
    testlen, reflen, guess, correct = total[:, 0], total[:, 1], total[:, 2:2 + n], total[:, 2 + n:]
    precisions = np.cumprod((correct + tiny) / (guess + small), axis=1)
    bleus = precisions ** (1.0 / np.arange(1, n + 1))
    ratio = (testlen + tiny) / (reflen + small)
    penalty = np.where(ratio < 1, np.exp(1 - 1 / ratio), 1.0)      # brevity penalty
    return bleus * penalty[:, None]


def bleu_from_stats(stats: np.ndarray, weights: np.ndarray) -> list[float]:
    """Corpus BLEU-1..n of one weighted set of clips, weights (N,)."""
    return [float(b) for b in bleu_scores(stats, np.asarray(weights, dtype=float)[None])[0]]


# ---------------------------------------------------------------------------------
# METEOR
# ---------------------------------------------------------------------------------

METEOR_PARAMETERS = {"alpha": 0.85, "beta": 0.20, "gamma": 0.60, "delta": 0.75}
METEOR_MODULE_WEIGHTS = (1.0, 0.6, 0.8, 0.6)  # exact, stem, synonym, paraphrase


def meteor_stats(lines: Sequence[str]) -> np.ndarray:
    """(N, 23) METEOR statistics from its jar's SCORE lines: test / reference length,
    test / reference function words, per module (4) test content, reference content, test
    function, reference function matches, then chunks, test / reference word matches."""
    stats = np.array([[float(x) for x in line.split()] for line in lines], dtype=float)
    if stats.size and stats.shape[1] != 23:
        raise ValueError(f"METEOR statistics have 23 numbers, got {stats.shape[1]}")
    return stats.reshape(len(lines), 23)


def _perfect(stats: np.ndarray) -> np.ndarray:
    """Whether each row is a perfect match (all words matched in one chunk)."""
    matches = stats[..., 4:20].reshape(*stats.shape[:-1], 4, 4)
    test_total = matches[..., 0].sum(-1) + matches[..., 2].sum(-1)
    ref_total = matches[..., 1].sum(-1) + matches[..., 3].sum(-1)
    return (test_total == stats[..., 0]) & (ref_total == stats[..., 1]) & (stats[..., 20] == 1)


def meteor_scores(stats: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(k,) corpus METEOR of k weighted sets of clips: per-clip ``stats`` (N, 23) summed
    with weights (k, N) as the jar's ``addStats`` sums them, then scored."""
    chunks = stats[:, 20] * ~_perfect(stats)          # addStats skips perfect chunks
    summed = weights @ stats
    summed[:, 20] = weights @ chunks
    return _meteor_of_summed(summed)


def _meteor_of_summed(stats: np.ndarray) -> np.ndarray:
    """(k,) METEOR of summed statistics (k, 23), as the jar's ``computeMetrics``."""
    p = METEOR_PARAMETERS
    alpha, beta, gamma, delta = p["alpha"], p["beta"], p["gamma"], p["delta"]
    module = np.array(METEOR_MODULE_WEIGHTS)
    matches = stats[:, 4:20].reshape(-1, 4, 4)    # module x (tc, rc, tf, rf)
    test_len, ref_len, test_fn, ref_fn = stats[:, :4].T
    test_weighted_len = delta * (test_len - test_fn) + (1 - delta) * test_fn
    ref_weighted_len = delta * (ref_len - ref_fn) + (1 - delta) * ref_fn
    test_matches = (delta * matches[:, :, 0] + (1 - delta) * matches[:, :, 2]) @ module
    ref_matches = (delta * matches[:, :, 1] + (1 - delta) * matches[:, :, 3]) @ module
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = test_matches / test_weighted_len
        recall = ref_matches / ref_weighted_len
        fmean = 1.0 / ((1 - alpha) / precision + alpha / recall)
        frag = np.where(_perfect(stats), 0.0, stats[:, 20] / ((stats[:, 21] + stats[:, 22]) / 2))
        score = fmean * (1 - gamma * frag ** beta)
    return np.where(np.isnan(score), 0.0, np.maximum(score, 0.0))


def meteor_from_stats(stats: np.ndarray, weights: np.ndarray | None = None) -> float:
    """METEOR of summed statistics: one clip's score (``weights`` None, ``stats`` (23,))
    or one weighted corpus's (``stats`` (N, 23), ``weights`` (N,))."""
    if weights is None:
        return float(_meteor_of_summed(np.asarray(stats, dtype=float)[None])[0])
    return float(meteor_scores(stats, np.asarray(weights, dtype=float)[None])[0])


# ---------------------------------------------------------------------------------
# CIDEr-D
# ---------------------------------------------------------------------------------


class CiderD:
    """pycocoevalcap's CIDEr-D (n = 4, sigma = 6) of any weighted set of these clips.

    With ``g_v = log(N_w) - log(max(1, df_w(v)))`` the idf of n-gram v under weights w
    (``N_w`` clips, ``df_w(v)`` of them with v in a reference), the clipped similarity
    ``sum_v min(h_v g_v, r_v g_v) r_v g_v`` of hypothesis counts h and reference counts r
    is ``sum_v min(h_v, r_v) r_v g_v**2`` (g >= 0), and the norms are
    ``sqrt(sum_v h_v**2 g_v**2)``: every term is a fixed sparse count matrix times the
    vector g**2, split by n-gram order.  The length penalty uses pycocoevalcap's
    "length", which counts bigrams.
    """

    def __init__(self, predictions: Sequence[str], references: Sequence[Sequence[str]], *,
                 n: int = 4, sigma: float = 6.0):
        self.n, self.size = n, len(predictions)
        vocab: dict[tuple, int] = {}
        hyp, ref, clipped, present = ([], [], []), ([], [], []), ([], [], []), ([], [], [])
        owner, ref_lengths, hyp_lengths, num_refs = [], [], [], []

        def column(ngram):
            return vocab.setdefault(ngram, len(vocab))

        def add(triple, row, col, value):
            triple[0].append(row)
            triple[1].append(col)
            triple[2].append(value)

        for i, (pred, refs) in enumerate(zip(predictions, references)):
            h = precook(pred, n)
            for ngram, count in h.items():
                add(hyp, i, column(ngram), count)
            hyp_lengths.append(sum(c for g, c in h.items() if len(g) == 2))
            seen = set()
            for r_text in refs:
                j = len(owner)
                owner.append(i)
                r = precook(r_text, n)
                ref_lengths.append(sum(c for g, c in r.items() if len(g) == 2))
                for ngram, count in r.items():
                    col = column(ngram)
                    add(ref, j, col, count)
                    add(clipped, j, col, min(h.get(ngram, 0), count) * count)
                    seen.add(col)
            for col in seen:
                add(present, i, col, 1.0)
            num_refs.append(len(refs))
        shape_h, shape_r = (self.size, len(vocab)), (len(owner), len(vocab))

        def matrix(triple, shape):
            return sparse.csr_matrix((np.array(triple[2], dtype=float),
                                      (np.array(triple[0], dtype=int),
                                       np.array(triple[1], dtype=int))), shape=shape)

        hyp_m, ref_m = matrix(hyp, shape_h), matrix(ref, shape_r)
        self._hyp_sq = hyp_m.multiply(hyp_m).tocsr()
        self._ref_sq = ref_m.multiply(ref_m).tocsr()
        self._clipped = matrix(clipped, shape_r)
        self._present = matrix(present, shape_h).T.tocsr()       # (V, N)
        order = np.zeros(len(vocab), dtype=int)
        for ngram, col in vocab.items():
            order[col] = len(ngram) - 1
        self._order = order
        self._owner = np.array(owner, dtype=int)
        self._owner_sum = sparse.csr_matrix(   # (N, M): sums each reference's score into its clip
            (np.ones(len(owner)), (self._owner, np.arange(len(owner)))), shape=(self.size, len(owner)))
        delta = np.array(hyp_lengths, dtype=float)[self._owner] - np.array(ref_lengths, float)
        self._penalty = np.exp(-(delta ** 2) / (2 * sigma ** 2))
        self._num_refs = np.array(num_refs, dtype=float)

    def clip_scores(self, weights: np.ndarray) -> np.ndarray:
        """CIDEr-D of every clip with the idf of a weighted set of clips: weights (N,) ->
        (N,), or weights (k, N) of k sets -> (k, N)."""
        weights = np.asarray(weights, dtype=float)
        if weights.ndim == 1:
            return self.clip_scores(weights[None])[0]
        k, vocab = len(weights), len(self._order)
        df = self._present @ weights.T                                      # (V, k)
        g = np.log(weights.sum(axis=1)) - np.log(np.maximum(1.0, df))       # (V, k)
        by_order = np.zeros((vocab, self.n, k))                             # g**2 in its order's column
        by_order[np.arange(vocab), self._order] = g ** 2
        by_order = by_order.reshape(vocab, self.n * k)
        refs = len(self._owner)
        numerator = (self._clipped @ by_order).reshape(refs, self.n, k)
        hyp_norm = np.sqrt(self._hyp_sq @ by_order).reshape(self.size, self.n, k)[self._owner]
        ref_norm = np.sqrt(self._ref_sq @ by_order).reshape(refs, self.n, k)
        both = (hyp_norm != 0) & (ref_norm != 0)
        val = np.where(both, numerator / np.where(both, hyp_norm * ref_norm, 1.0), numerator)
        val = val * self._penalty[:, None, None]
        per_ref = val.mean(axis=1)                                          # (M, k)
        summed = self._owner_sum @ per_ref                                  # (N, k)
        return (10.0 * summed / self._num_refs[:, None]).T

    def corpus(self, weights: np.ndarray) -> np.ndarray:
        """(k,) corpus CIDEr-D of k weighted sets of clips, weights (k, N)."""
        weights = np.asarray(weights, dtype=float)
        return (weights * self.clip_scores(weights)).sum(axis=1) / weights.sum(axis=1)

    def __call__(self, weights: np.ndarray) -> float:
        """Corpus CIDEr-D of one weighted set of clips, weights (N,)."""
        return float(self.corpus(np.asarray(weights, dtype=float)[None])[0])


# ---------------------------------------------------------------------------------
# All together, as functions of resampled clip indices
# ---------------------------------------------------------------------------------


def corpus_statistics(table: pd.DataFrame) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """``{metric: statistic(weights)}`` for every COCO metric: ``weights`` (k, N) says how
    many times each row of ``table`` (the per-clip table of ``coco_metrics(...,
    per_clip=True)``) is in each of k resamples, the statistic gives the k values
    (``bootstrap.bootstrap_weighted``); on a row of ones each gives the corpus value
    ``coco_metrics`` reports."""
    preds, refs = table["prediction"].tolist(), table["references"].tolist()
    bleu = bleu_stats(preds, refs)
    meteor = meteor_stats(table["meteor_stats"].tolist())
    rouge = table["ROUGE-L"].to_numpy(dtype=float)
    cider = CiderD(preds, refs)

    def bleu_k(k: int):
        return lambda weights: bleu_scores(bleu, weights)[:, k]

    return {**{f"BLEU-{k + 1}": bleu_k(k) for k in range(4)},
            "METEOR": lambda weights: meteor_scores(meteor, weights),
            "ROUGE-L": lambda weights: weights @ rouge / weights.sum(axis=1),
            "CIDEr": cider.corpus}
