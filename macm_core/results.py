"""The result tables of the book: every trained variant x seed x decoder, scored.

``caption_sets(profile)`` lists what is decoded (``decoders_for``): visual-only variants
with ``greedy_visual`` only (they have no motion pathway), ``macm`` with every decoder of
``eval.decoders``, the other two-pathway variants with the ablation's decoders.  ``score_captions`` scores one set of captions (COCO and
grounded metrics with bootstrap intervals, ``macm_core.eval``), cached by the hash of
the captions themselves; ``score_sets`` scores many sets in parallel processes.
``evaluate_profile`` (``macm eval``) decodes every set, scores them, and puts everything in one
long table; ``summarise_seeds`` gives mean and spread over training seeds.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd

from .cache import source_digest, stage_dir, write_json_atomic
from .config import Profile, load_profile
from .variants import get_variant


# the decoders each variant is scored with: M-ACM with every decoder of ``eval.decoders``;
# the other two-pathway variants (macm-uniform, macm-coarse) with the ablation's (greedy on
# each input, MSD); visual-only models greedily
ABLATION_DECODERS = ("greedy_visual", "greedy_joint", "msd")


def decoders_for(profile: Profile, variant: str) -> tuple[str, ...]:
    if not get_variant(variant).uses_motion:
        return ("greedy_visual",)
    if variant == "macm":
        return tuple(profile.eval.decoders)
    return tuple(d for d in profile.eval.decoders if d in ABLATION_DECODERS)


def caption_sets(profile: Profile, *, seeds: list[int] | None = None) -> list[tuple[str, int, str]]:
    """(variant, seed, decoder) of every caption set the profile's tables need."""
    sets = []
    for variant in profile.train.variants:
        decoders = decoders_for(profile, variant)
        for seed in seeds or profile.train.seeds_for(variant):
            sets.extend((variant, seed, decoder) for decoder in decoders)
    return sets


def _captions_digest(captions: pd.DataFrame, *extra) -> str:
    """sha256 of a caption set's clip ids and captions (and of ``extra``): what is scored."""
    text = json.dumps([captions["clip_id"].tolist(), captions["caption"].tolist(), *extra])
    return hashlib.sha256(text.encode()).hexdigest()


def _scores_path(profile: Profile, captions: pd.DataFrame, qa: pd.DataFrame | None, seed: int):
    answers = None if qa is None else [qa["answer"].tolist(), qa["gold"].tolist()]
    key = {"captions": _captions_digest(captions, answers), "bootstrap": profile.eval.bootstrap,
           "seed": seed, "data": profile.data, "source": source_digest("eval", "results")}
    return stage_dir("scores", key) / "scores.json"


def score_captions(profile: Profile, captions: pd.DataFrame, *, qa: pd.DataFrame | None = None,
                   seed: int = 0) -> dict[str, float]:
    """Every metric of ``captions`` (``clip_id``, ``caption``) against the benchmark, with
    bootstrap intervals; with ``qa`` (``answer``, ``gold``) also the true/false QA accuracy."""
    from .data.benchmark import Benchmark
    from .eval import evaluate_captions, qa_accuracy

    path = _scores_path(profile, captions, qa, seed)
    if path.is_file():
        return json.loads(path.read_text())
    bench = Benchmark.load(profile)
    predictions = dict(zip(captions["clip_id"], captions["caption"]))
    scores = evaluate_captions(predictions, bench, bootstrap=profile.eval.bootstrap, seed=seed)
    if qa is not None:
        scores["QA accuracy"] = float(qa_accuracy(qa["answer"].tolist(), qa["gold"].tolist()))
    write_json_atomic(path, scores)
    return scores


def evaluate_profile(profile: str | Profile, *, split: str = "test", seeds: list[int] | None = None,
                     qa: bool = True, judge: bool = False, progress: bool = True) -> pd.DataFrame:
    """One row per (variant, seed, decoder): every metric, its interval, QA accuracy; with
    ``judge`` also the LLM judge's mean per HMI dimension (``judge_split``)."""
    from .captioning import caption_split

    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    judge_model = _load_profile_judge(profile) if judge else None
    sets = caption_sets(profile, seeds=seeds)
    decoded = []
    for variant, seed, decoder in sets:
        captions = caption_split(profile, variant, decoder=decoder, seed=seed, split=split, progress=progress)
        answers = caption_split(profile, variant, decoder=decoder, seed=seed, split=split, qa=True,
                                progress=progress) if qa else None
        decoded.append((captions, answers))
    score_sets(profile, decoded, seed=profile.seed)
    rows = []
    for (variant, seed, decoder), (captions, answers) in zip(sets, decoded):
        scores = score_captions(profile, captions, qa=answers, seed=profile.seed)
        if judge_model is not None:
            scores.update(judge_split(profile, captions, judge_model)[1])
        rows.append({"variant": variant, "seed": seed, "decoder": decoder, **scores,
                     "distinct_captions": distinct_share(captions["caption"])})
    return pd.DataFrame(rows)


# a scoring process's start (imports, loading the METEOR jar) costs about what scoring 5-6 test-split
# sets does (cpu profile: the main-results chapter's 27 sets took 59 s here and 30 s in two processes;
# the latency and open-questions chapters' 6 sets each took longer in two processes than here)
SETS_PER_PROCESS = 6


def score_sets(profile: Profile, decoded: list[tuple[pd.DataFrame, pd.DataFrame | None]], *,
               seed: int = 0) -> None:
    """Score (``score_captions``) every (captions, QA answers or None) of ``decoded`` that is
    not cached yet, ``profile.threads`` sets at a time in spawned processes (one thread
    each) when there are at least ``SETS_PER_PROCESS`` per process, else here.  Scoring is
    Python and a Java subprocess (METEOR), one core's work per set; the scores are the same
    whichever process computes them.  Afterwards ``score_captions`` reads each from the
    cache."""
    from concurrent.futures import ProcessPoolExecutor

    from .determinism import spawned_with_threads

    todo = [(c, a) for c, a in decoded if not _scores_path(profile, c, a, seed).is_file()]
    jobs = min(profile.threads, len(todo) // SETS_PER_PROCESS)
    if jobs < 2:
        for captions, answers in todo:
            score_captions(profile, captions, qa=answers, seed=seed)
        return
    with spawned_with_threads(1) as context, ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = [pool.submit(score_captions, profile, captions, qa=answers, seed=seed) for captions, answers in todo]
        errors = [error for error in (f.exception() for f in futures) if error is not None]
    if errors:
        raise errors[0]


def _load_profile_judge(profile: Profile):
    from .eval.llm_judge import load_judge
    from .paths import resolve

    if not profile.eval.judge_path:
        raise ValueError(f"profile {profile.name!r} names no LLM judge: set eval.judge_path to a local "
                         "instruction-tuned model folder to score the five HMI dimensions")
    return load_judge(resolve(profile.eval.judge_path))


def judge_split(profile: Profile, captions: pd.DataFrame, judge) -> tuple[pd.DataFrame, dict[str, float]]:
    """The LLM judge on one caption set: (every judgement, mean per dimension).

    Cached by the captions, the judge folder and the prompt version; every raw reply is
    saved as ``judgements.jsonl`` in the cache folder (``eval.llm_judge``)."""
    from .data.benchmark import Benchmark
    from .eval.llm_judge import PROMPT_VERSION, judge_captions, summarise_judgements, write_judgements

    key = {"captions": _captions_digest(captions), "judge": str(profile.eval.judge_path),
           "prompt": PROMPT_VERSION, "data": profile.data, "source": source_digest("eval/llm_judge")}
    path = stage_dir("judgements", key) / "judgements.jsonl"
    if path.is_file():
        table = pd.read_json(path, lines=True)
    else:
        clips = Benchmark.load(profile).clips
        references = {c: clips.loc[c, "caption"] for c in captions["clip_id"]}
        table = judge_captions(dict(zip(captions["clip_id"], captions["caption"])), references, judge)
        write_judgements(table, path)
    return table, summarise_judgements(table)


# a model writing fewer distinct captions than this share of the clips ignores its input
MIN_DISTINCT_SHARE = 0.05


def distinct_share(captions) -> float:
    """The number of distinct captions over the number of clips (1.0: every clip its own)."""
    captions = list(captions)
    return len(set(captions)) / len(captions) if captions else float("nan")


def collapse_reason(table: pd.DataFrame, rows: list[tuple[str, str]] | None = None) -> str | None:
    """Why a comparison of ``rows`` ((variant, decoder); default all) says nothing, or None.

    A caption set whose ``distinct_captions`` share is below ``MIN_DISTINCT_SHARE`` comes
    from a model that writes (nearly) one caption whatever the clip: it learned the
    caption prior, not the video, so differences between such models are not about the
    pathways.  Models trained on the coarse captions are exempt: those captions are a few
    generic texts by design.  Returns a sentence naming those sets, for a verdict's reason.
    """
    keyed = table.set_index(["variant", "decoder"])
    if rows is not None:
        keyed = keyed.loc[[r for r in rows if r in keyed.index]]
    # a model trained on the coarse captions (20 distinct texts over 300 test clips, none about
    # the clip's body parts) writes a few generic captions by design, not by ignoring its input
    fine = np.array([get_variant(v).captions != "coarse_caption" for v, _ in keyed.index], dtype=bool)
    low = keyed[(keyed["distinct_captions"] < MIN_DISTINCT_SHARE) & fine]
    if low.empty:
        return None
    names = sorted({f"{v} / {d}" for v, d in low.index})
    return (f"{len(low)} of {len(keyed)} compared caption sets ({', '.join(names[:4])}"
            f"{', ...' if len(names) > 4 else ''}) have fewer than {MIN_DISTINCT_SHARE:.0%} distinct captions: "
            "those models ignore their input, so the comparison does not test the claim")


def summarise_seeds(table: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Mean and standard deviation over seeds of each (variant, decoder): columns
    ``(metric, "mean")`` and ``(metric, "sd")``, plus the number of seeds."""
    grouped = table.groupby(["variant", "decoder"], sort=False)
    out = grouped[metrics].agg(["mean", "std"]).rename(columns={"std": "sd"}, level=1)
    out[("seeds", "n")] = grouped.size()
    return out


def format_mean_sd(summary: pd.DataFrame, metrics: list[str], *, digits: int = 3) -> pd.DataFrame:
    """'mean ± sd' strings for display (sd omitted with one seed)."""
    cells = {}
    for metric in metrics:
        mean, sd = summary[(metric, "mean")], summary[(metric, "sd")]
        cells[metric] = [f"{m:.{digits}f}" if not np.isfinite(s) else f"{m:.{digits}f} ± {s:.{digits}f}"
                         for m, s in zip(mean, sd)]
    return pd.DataFrame(cells, index=summary.index)
