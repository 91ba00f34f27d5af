"""Caption metrics on the smoke benchmark: pycocoevalcap (Java), corpus statistics
recomputed on resamples, grounded metrics on real labels, QA, ``evaluate_captions``.

Java starts a few times here (the PTB tokenizer once per ``coco_metrics`` call; METEOR,
10-20 s to load, once per session), so the COCO runs are module fixtures.
"""
import os
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from macm_core.data.benchmark import Benchmark, build_benchmark
from macm_core.eval import (COCO_METRICS, GROUNDED_METRICS, METRICS, coco_metrics,
                            corpus_statistics, evaluate_captions, grounded_metrics,
                            qa_accuracy)
from macm_core.eval import coco as coco_module
from macm_core.eval.bootstrap import weights_of
from macm_core.eval.corpus import meteor_from_stats, meteor_stats

needs_java = pytest.mark.skipif(shutil.which("java") is None,
                                reason="no java (apt-get install -y default-jre-headless)")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    old = os.environ.get("MACM_CACHE")
    os.environ["MACM_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    try:
        yield Benchmark(build_benchmark("smoke", progress=False))
    finally:
        if old is None:
            os.environ.pop("MACM_CACHE")
        else:
            os.environ["MACM_CACHE"] = old


@pytest.fixture(scope="module")
def captions(smoke):
    """(references, fine captions, coarse captions) of every smoke clip."""
    fine = smoke.clips["caption"].to_dict()
    return ({cid: [text] for cid, text in fine.items()}, fine,
            smoke.clips["coarse_caption"].to_dict())


@pytest.fixture(scope="module")
def coarse_run(captions):
    references, _, coarse = captions
    return coco_metrics(references, coarse, per_clip=True)


@pytest.fixture(scope="module")
def truth_run(captions):
    references, fine, _ = captions
    return coco_metrics(references, fine)


# ---------------------------------------------------------------------------------
# pycocoevalcap
# ---------------------------------------------------------------------------------


@needs_java
def test_coco_metrics_are_raw_fractions(coarse_run, truth_run, captions):
    scores, per_clip = coarse_run
    assert tuple(scores) == COCO_METRICS == tuple(truth_run)
    assert all(0.0 <= scores[m] <= 1.0 for m in COCO_METRICS if m != "CIDEr")
    assert 0.0 <= scores["CIDEr"] < 10.0
    assert list(per_clip.index) == sorted(captions[1])
    assert set(COCO_METRICS) <= set(per_clip.columns)
    # bleu / rouge / cider / meteor all see PTB tokens: lower case, no punctuation
    assert not per_clip["prediction"].str.contains(r"[A-Z.,]").any()


@needs_java
def test_a_caption_against_itself_is_perfect_and_beats_a_vague_one(coarse_run, truth_run):
    for metric in ("BLEU-1", "BLEU-4", "METEOR", "ROUGE-L"):
        assert truth_run[metric] == pytest.approx(1.0, abs=1e-6)
    assert truth_run["CIDEr"] == pytest.approx(10.0, abs=1e-6)    # CIDEr-D is x10
    for metric in COCO_METRICS:
        assert coarse_run[0][metric] < truth_run[metric] / 2


@needs_java
def test_corpus_statistics_reproduce_pycocoevalcap(coarse_run):
    scores, per_clip = coarse_run
    stats = corpus_statistics(per_clip)
    everything = np.ones((1, len(per_clip)))
    for metric in COCO_METRICS:
        assert stats[metric](everything)[0] == pytest.approx(scores[metric], rel=1e-9, abs=1e-12)
    meteor = meteor_stats(per_clip["meteor_stats"].tolist())
    np.testing.assert_allclose([meteor_from_stats(row) for row in meteor],
                               per_clip["METEOR"], rtol=1e-9, atol=1e-12)


@needs_java
def test_resampled_meteor_matches_the_jar(coarse_run):
    """The METEOR aggregate of a resample, as the jar computes it from the same stats."""
    _, per_clip = coarse_run
    lines = per_clip["meteor_stats"].tolist()
    idx = np.random.default_rng(0).integers(0, len(lines), size=len(lines))
    meteor = coco_module._meteor()
    with meteor.lock:
        meteor.meteor_p.stdin.write(
            ("EVAL ||| " + " ||| ".join(lines[i] for i in idx) + "\n").encode())
        meteor.meteor_p.stdin.flush()
        for _ in idx:
            meteor.meteor_p.stdout.readline()
        want = float(meteor.meteor_p.stdout.readline())
    got = meteor_from_stats(meteor_stats(lines), weights_of(idx, len(lines)))
    assert got == pytest.approx(want, rel=1e-9)


def test_missing_java_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(coco_module.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match=re.escape("apt-get install -y default-jre-headless")):
        coco_metrics({"a": ["a person waves"]}, {"a": "a person waves"})


def test_coco_metrics_checks_its_input():
    with pytest.raises(KeyError, match="no reference"):
        coco_metrics({"a": ["x"]}, {"b": "x"})
    with pytest.raises(ValueError, match="no predictions"):
        coco_metrics({"a": ["x"]}, {})
    with pytest.raises(ValueError, match="non-empty list"):
        coco_metrics({"a": "x"}, {"a": "x"})


# ---------------------------------------------------------------------------------
# grounded metrics and QA on the real labels
# ---------------------------------------------------------------------------------


def test_ground_truth_captions_score_perfectly_on_their_labels(smoke, captions):
    per_clip, summary = grounded_metrics(captions[1], smoke.segments)
    assert len(per_clip) == len(smoke.clips)
    assert summary == {m: (0.0 if m.startswith("CHAIR") else 1.0) for m in GROUNDED_METRICS}


def test_vague_captions_are_precise_but_recall_nothing(smoke, captions):
    _, summary = grounded_metrics(captions[2], smoke.segments)
    assert summary["part_recall"] == 0.0 and summary["count_recall"] == 0.0
    assert summary["CHAIR_i"] == 0.0 or np.isnan(summary["CHAIR_i"])


def test_swapped_parts_and_sides_on_real_captions(smoke, captions):
    _, truth = grounded_metrics(captions[1], smoke.segments)

    def swap(text, a, b):
        return re.sub(rf"\b({a}|{b})\b", lambda m: b if m.group(1) == a else a, text)

    for a, b in (("hand", "foot"), ("left", "right")):
        _, swapped = grounded_metrics({k: swap(v, a, b) for k, v in captions[1].items()},
                                      smoke.segments)
        assert swapped["part_precision"] < truth["part_precision"]
        assert swapped["CHAIR_i"] > truth["CHAIR_i"] and swapped["CHAIR_s"] > truth["CHAIR_s"]
        if a == "left":
            assert swapped["laterality"] < 0.5


def test_qa_gold_answers_score_one_and_flipped_verdicts_zero(smoke):
    qa = smoke.qa
    assert qa_accuracy(qa["answer"].tolist(), qa["answer"].tolist()) == 1.0
    judge = qa[qa["kind"] == "judge"]
    assert set(judge["answer"]) == {"true", "false"}
    flipped = ["False." if a == "true" else "True." for a in judge["answer"]]
    assert qa_accuracy(flipped, judge["answer"].tolist()) == 0.0


# ---------------------------------------------------------------------------------
# everything together
# ---------------------------------------------------------------------------------


@needs_java
def test_evaluate_captions_returns_every_metric_with_an_interval(smoke, captions,
                                                                 coarse_run):
    test_ids = smoke.split("test").index
    predictions = {cid: captions[2][cid] for cid in test_ids}
    out = evaluate_captions(predictions, smoke, bootstrap=300, seed=0)
    assert out["n_clips"] == len(test_ids)
    assert set(out) == {"n_clips"} | {f"{m}{s}" for m in METRICS for s in ("", "_low", "_high")}
    for metric in METRICS:
        value, low, high = out[metric], out[f"{metric}_low"], out[f"{metric}_high"]
        if not np.isnan(value) and not np.isnan(low):
            assert low - 1e-12 <= value <= high + 1e-12, metric
    assert out["CIDEr_low"] < out["CIDEr_high"]
    references = {cid: [smoke.clips.loc[cid, "caption"]] for cid in test_ids}
    direct = coco_metrics(references, predictions)
    for metric in COCO_METRICS:
        assert out[metric] == pytest.approx(direct[metric], rel=1e-9, abs=1e-12)
    tables = {"clips": smoke.clips.reset_index(), "segments": smoke.segments}
    again = evaluate_captions(predictions, tables, bootstrap=300, seed=0)
    assert again == pytest.approx(out, nan_ok=True)         # deterministic given the seed
    with pytest.raises(KeyError, match="not in the benchmark"):
        evaluate_captions({"nope": "x"}, smoke)


@needs_java
def test_blocks_of_resamples_score_as_one_resample_at_a_time(smoke, captions, coarse_run):
    """Every metric's weighted statistic, fed blocks of resamples at once (what
    ``evaluate_captions`` bootstraps), equals the same statistic fed one resample at a time
    (the per-resample loop of ``bootstrap_ci``): same resamples, same interval."""
    from macm_core.eval import bootstrap_ci, bootstrap_weighted
    from macm_core.eval.evaluate import grounded_statistics

    _, per_clip = coarse_run
    grounded_table, _ = grounded_metrics(captions[2], smoke.segments)
    size = len(per_clip)
    statistics = {**corpus_statistics(per_clip), **grounded_statistics(grounded_table)}
    assert set(statistics) == set(METRICS)
    for metric, statistic in statistics.items():
        blocks = bootstrap_weighted(statistic, size=size, n=300, seed=5)
        one_by_one = bootstrap_ci(lambda idx: float(statistic(weights_of(idx, size)[None])[0]),
                                  size=size, n=300, seed=5)
        np.testing.assert_allclose(blocks, one_by_one, rtol=1e-12, atol=1e-14, err_msg=metric)


@needs_java
def test_sets_scored_in_parallel_processes_equal_sets_scored_here(smoke, captions, monkeypatch):
    """``score_sets`` with two processes caches, for every set, exactly what
    ``score_captions`` computes in this process."""
    from dataclasses import replace

    from macm_core import results
    from macm_core.config import load_profile
    from macm_core.results import _scores_path, score_captions, score_sets

    profile = load_profile("smoke")
    test_ids = list(smoke.split("test").index)
    sets = [pd.DataFrame({"clip_id": test_ids, "caption": [captions[k][cid] for cid in test_ids]}) for k in (1, 2)]
    answers = pd.DataFrame({"answer": ["yes", "no"], "gold": ["yes", "yes"]})
    decoded = [(sets[0], None), (sets[1], answers)]
    monkeypatch.setattr(results, "SETS_PER_PROCESS", 1)
    score_sets(replace(profile, threads=2), decoded, seed=3)        # two processes, into the shared cache
    paths = [_scores_path(profile, c, a, 3) for c, a in decoded]
    assert all(path.is_file() for path in paths)
    parallel = [score_captions(profile, c, qa=a, seed=3) for c, a in decoded]
    for path in paths:
        path.unlink()                                                # now computed here
    here = [score_captions(profile, c, qa=a, seed=3) for c, a in decoded]
    for got, want in zip(parallel, here):
        assert got == pytest.approx(want, nan_ok=True)
    assert parallel[1]["QA accuracy"] == 0.5 and "QA accuracy" not in parallel[0]
