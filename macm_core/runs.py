"""Trained variants: build the profile's model, train it in the paper's two stages on the
cached features, and load it back (``macm train --profile P --variant V [--seed S]``).

A run lives in ``<cache>/runs/<hash>/`` keyed by everything that decides its weights
(data, features, model and train sections, variant, seed, the source of the model and
trainer code): ``stage1/`` and ``stage2/`` hold the trainer's resumable checkpoints,
``model/`` the final model and tokenizer (``save_pretrained``; written to a temporary
folder and renamed, so it exists only when complete), ``run.json`` the losses and times.
A killed run resumes from its newest checkpoint when started again.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from .cache import source_digest, stage_dir, write_json_atomic
from .config import Profile, load_profile
from .data.benchmark import Benchmark
from .determinism import spawned_with_threads
from .features import PathwayFeatures, load_features, vision_config
from .variants import Variant, get_variant

TOKENIZER_SOURCES = ("model/tokenizer",)


def _tokenizer_key(profile: Profile) -> dict:
    return {"data": profile.data, "seed": profile.seed, "model": profile.model,
            "source": source_digest(*TOKENIZER_SOURCES)}


def load_caption_tokenizer(profile: str | Profile, *, progress: bool = True):
    """The tokenizer of a profile's decoder: for ``scratch-qwen2`` a byte-level BPE trained
    on the training split's captions and QA texts (cached); else the pretrained one."""
    from .model.tokenizer import DEFAULT_INSTRUCTION, load_tokenizer, train_caption_tokenizer

    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    if profile.model.decoder != "scratch-qwen2":
        return _pretrained_decoder(profile)[1]
    folder = stage_dir("tokenizer", _tokenizer_key(profile))
    if not (folder / "tokenizer_config.json").is_file():
        bench = Benchmark.load(profile)
        train = bench.split("train")
        qa = bench.qa[bench.qa["clip_id"].isin(train.index)]
        texts = (train["caption"].tolist() + train["coarse_caption"].tolist() + qa["question"].tolist()
                 + qa["answer"].tolist() + [f"USER: {DEFAULT_INSTRUCTION} ASSISTANT:"])
        tokenizer = train_caption_tokenizer(texts, vocab_size=profile.model.vocab_size)
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tokenizer.save_pretrained(tmp)
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    return load_tokenizer(folder)


def _pretrained_decoder(profile: Profile):
    """(decoder text config + state, tokenizer) of a pretrained decoder profile."""
    if profile.model.decoder == "smollm2":
        from .model.smollm2 import load_smollm2_decoder

        return load_smollm2_decoder()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .model.tokenizer import add_placeholder_tokens
    from .paths import resolve

    folder = resolve(profile.model.decoder_path)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"model.decoder_path {folder} holds no Hugging Face model (config.json): put the "
                                "decoder's folder there (e.g. Qwen2-7B-Instruct), nothing is downloaded")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    decoder = AutoModelForCausalLM.from_pretrained(folder, dtype="auto")
    if add_placeholder_tokens(tokenizer):
        decoder.resize_token_embeddings(len(tokenizer))
    return decoder, tokenizer


def build_model(profile: str | Profile, tokenizer):
    """A fresh ``MACMForConditionalGeneration`` of the profile: its frozen encoder, two
    projectors and decoder (from scratch, or with the pretrained decoder's weights)."""
    from .model.configuration_macm import MACMConfig, small_qwen2_config
    from .model.modeling_macm import MACMForConditionalGeneration
    from .model.tokenizer import placeholder_ids

    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    video_id, motion_id = placeholder_ids(tokenizer)
    m = profile.model
    if m.decoder == "scratch-qwen2":
        text = small_qwen2_config(len(tokenizer), hidden_size=m.hidden_size, num_hidden_layers=m.num_layers,
                                  num_attention_heads=m.num_heads, num_key_value_heads=m.num_heads,
                                  intermediate_size=m.intermediate_size, pad_token_id=tokenizer.pad_token_id,
                                  bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
        config = MACMConfig(vision_config=vision_config(profile), text_config=text, video_token_id=video_id,
                            motion_token_id=motion_id)
        return MACMForConditionalGeneration(config)
    decoder, _ = _pretrained_decoder(profile)
    config = MACMConfig(vision_config=vision_config(profile), text_config=decoder.config.to_dict(),
                        video_token_id=video_id, motion_token_id=motion_id)
    model = MACMForConditionalGeneration(config)
    missing, unexpected = model.language_model.load_state_dict(decoder.state_dict(), strict=False)
    if missing or unexpected:
        raise RuntimeError(f"the pretrained decoder's weights do not fit the model: missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]}")
    return model


def run_dir(profile: Profile, variant: Variant, seed: int) -> Path:
    key = {"data": profile.data, "pose": profile.pose, "features": profile.features, "model": profile.model,
           # how many runs train at once is scheduling: what sets the weights is each run's thread count
           "train": {k: v for k, v in vars(profile.train).items()
                     if k not in ("variants", "seeds", "first_seed_only", "parallel_runs")},
           "variant": variant, "seed": seed, "tokenizer": _tokenizer_key(profile),
           "threads": run_threads(profile),  # another thread count may round the weights differently
           "source": source_digest("model", "train", "runs", "features", "precision")}
    return stage_dir("runs", key)


def split_inputs(profile: Profile, split: str, keyframes: str, *,
                 progress: bool = True) -> tuple[PathwayFeatures, "object", "object"]:
    """(features, clips table in feature order, QA table) of one split."""
    bench = Benchmark.load(profile)
    features = load_features(profile, split, keyframes=keyframes, progress=progress)
    clips = bench.clips.loc[list(features.clip_ids)]
    qa = bench.qa[bench.qa["clip_id"].isin(features.clip_ids)]
    return features, clips, qa


def trained_model(profile: Profile, variant: str, seed: int) -> Path | None:
    """The folder of a run's final model, or None while the run is not trained."""
    final = run_dir(profile, get_variant(variant), seed) / "model"
    return final if (final / "config.json").is_file() else None


def run_threads(profile: Profile) -> int:
    """Torch threads of one training run: the profile's ``threads`` shared by the
    ``train.parallel_runs`` runs that train at once.  A run uses this many whether it
    trains beside others or alone, so its weights do not depend on how it was scheduled
    (reductions may round differently with another thread count)."""
    return max(1, profile.threads // profile.train.parallel_runs)


def train_variant(profile: str | Profile, variant: str, *, seed: int | None = None, force: bool = False,
                  progress: bool = True) -> Path:
    """Train (or resume, or reuse) one variant with ``run_threads(profile)`` torch threads;
    returns the folder of its final model."""
    import torch
    from transformers.utils import logging as hf_logging

    from .determinism import set_determinism
    from .train.dataset import CONDITIONING_PRESETS
    from .train.trainer import TrainConfig, merge_lora, train

    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    v = get_variant(variant)
    seed = profile.train.seeds[0] if seed is None else seed
    folder = run_dir(profile, v, seed)
    final = folder / "model"
    if force:
        shutil.rmtree(folder, ignore_errors=True)
    if (final / "config.json").is_file():
        return final
    if not progress:
        hf_logging.disable_progress_bar()
    threads = run_threads(profile)
    set_determinism(seed, threads=threads)
    start = time.perf_counter()
    features, clips, qa = split_inputs(profile, "train", v.keyframes, progress=progress)
    arrays = {"visual": torch.from_numpy(features.visual.astype(np.float32)),
              "motion": torch.from_numpy(features.motion.astype(np.float32))}
    tokenizer = load_caption_tokenizer(profile, progress=progress)
    # seeded again here: computing the features above (when not cached) draws random numbers,
    # and the initial weights must not depend on whether they were cached (a resumed run
    # checks that its frozen weights are those the run started from)
    set_determinism(seed, threads=threads)
    model = build_model(profile, tokenizer)
    t = profile.train
    common = dict(batch_size=t.batch_size, seed=seed, caption_field=v.captions, qa_fraction=t.qa_fraction,
                  conditioning_probs=CONDITIONING_PRESETS[v.conditioning], length_groups=t.length_groups,
                  matmul_dtype=t.matmul_dtype, progress=progress)
    stages = {}
    for stage, steps, lr in ((1, t.stage1_steps, t.stage1_lr), (2, t.stage2_steps, t.stage2_lr)):
        config = TrainConfig(output_dir=folder / f"stage{stage}", stage=stage, steps=steps, lr=lr,
                             warmup_steps=max(1, steps // 10), save_every=max(1, steps // 4),
                             lora=t.lora and stage == 2, **common)
        result = train(model, tokenizer, arrays, clips, qa, config)
        stages[f"stage{stage}"] = {"losses": result.losses, "samples_per_s": round(result.samples_per_s, 2),
                                   "seconds": round(result.seconds, 1), "resumed_from": result.start_step}
    if t.lora:
        model = merge_lora(model)
    counts = parameter_counts(model)
    tmp = folder / "model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    write_json_atomic(tmp / "run.json", {
        "profile": profile.name, "profile_source": profile.source, "variant": v.name, "seed": seed, "variant_config": vars(v),
        "stages": stages, "parameters": counts, "train_clips": len(features),
        "seconds": round(time.perf_counter() - start, 1)})
    tmp.rename(final)
    return final


def train_runs(profile: str | Profile, runs: list[tuple[str, int]], *, jobs: int | None = None,
               progress: bool = False) -> dict[tuple[str, int], Path]:
    """Train every (variant, seed) of ``runs`` that is not cached yet, ``jobs`` at a time
    (default ``train.parallel_runs``), and return the folder of each final model.

    With jobs > 1 each run trains in its own process (spawned: no forked torch state).
    Small models train faster that way on a few cores: their matrix products are too
    small to keep several threads busy, and separate runs never wait for each other.
    Every run trains with ``run_threads(profile)`` threads whatever ``jobs`` is, so the
    weights are the same as one by one.  The train features and the tokenizer are made
    first, here, so that no two processes make them at once.  Each process trains a lane
    of runs whose estimated costs (``run_costs``) add up to about the same as the others'
    (``balanced_lanes``).  A failed run raises its error here once the others have
    finished (those stay cached).
    """
    from concurrent.futures import ProcessPoolExecutor

    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    jobs = profile.train.parallel_runs if jobs is None else jobs
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    todo = [(v, s) for v, s in runs if trained_model(profile, v, s) is None]
    if jobs > 1 and len(todo) > 1:
        tokenizer = load_caption_tokenizer(profile, progress=progress)
        for keyframes in sorted({get_variant(v).keyframes for v, _ in todo}):
            load_features(profile, "train", keyframes=keyframes, progress=progress)
        # each process trains one lane of runs; the lanes' estimated costs are as even as
        # possible, so that the processes finish at about the same time
        costs = run_costs(profile, sorted({v for v, _ in todo}), tokenizer)
        lanes = balanced_lanes([costs[v] for v, _ in todo], min(jobs, len(todo)))
        with spawned_with_threads(run_threads(profile)) as context, \
                ProcessPoolExecutor(max_workers=len(lanes), mp_context=context) as pool:
            futures = [pool.submit(_train_lane, profile, [todo[i] for i in lane]) for lane in lanes]
        errors = [error for f in futures for error in f.result()]
        if errors:
            raise errors[0]
    return {(v, s): train_variant(profile, v, seed=s, progress=progress) for v, s in runs}


def _train_lane(profile: Profile, runs: list[tuple[str, int]]) -> list[BaseException]:
    """Train ``runs`` one after another (in a worker process); return the errors of the
    runs that failed (the others are trained and cached)."""
    errors = []
    for variant, seed in runs:
        try:
            train_variant(profile, variant, seed=seed, progress=False)
        except Exception as error:  # noqa: BLE001 - handed back to train_runs, which raises it
            errors.append(error)
    return errors


# a target token (one the loss is taken on) costs this many prompt tokens in training: fitted to
# the cpu profile's run times (a prompt token goes through the decoder; a target token also
# through the LM head and the loss, and its rows are the long ones of a length group)
TARGET_TOKEN_COST = 1.7


def run_costs(profile: Profile, variants, tokenizer) -> dict[str, float]:
    """Estimated training cost of a run of each of ``variants``: the mean number of tokens
    one training item puts through the decoder (its prompt, with the feature tokens of each
    conditioning weighted by the pathway-dropout probabilities, plus ``TARGET_TOKEN_COST``
    times its target: a caption, or a QA question and answer for ``qa_fraction`` of the
    items), times the items it trains on.  On the cpu profile, relative to baseline-fine,
    the estimates are macm 1.07, macm-coarse 0.78, baseline-coarse 0.71; measured run
    times (two runs at a time, one thread each): 1.09, 0.79 and 0.71."""
    from .model.tokenizer import CONDITIONINGS, build_inputs
    from .train.dataset import CONDITIONING_PRESETS

    t, f = profile.train, profile.features
    bench = Benchmark.load(profile)
    clips = bench.split("train")
    qa = bench.qa[bench.qa["clip_id"].isin(clips.index)]
    feature_tokens = f.keyframes * f.grid ** 2

    def mean_tokens(texts) -> float:
        texts = [str(x) for x in texts]
        return float(np.mean([len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]])) \
            if texts else 0.0

    prompt_tokens = {c: len(build_inputs(tokenizer, num_video_tokens=feature_tokens, num_motion_tokens=feature_tokens,
                                         conditioning=c).input_ids) for c in CONDITIONINGS}
    qa_tokens = mean_tokens(qa["question"]) + mean_tokens(qa["answer"])
    caption_tokens: dict[str, float] = {}
    costs = {}
    for variant in variants:
        v = get_variant(variant)
        if v.captions not in caption_tokens:
            caption_tokens[v.captions] = mean_tokens(clips[v.captions])
        prompt = sum(p * prompt_tokens[c] for p, c in zip(CONDITIONING_PRESETS[v.conditioning], CONDITIONINGS))
        target = (1 - t.qa_fraction) * caption_tokens[v.captions] + t.qa_fraction * qa_tokens
        costs[variant] = (prompt + TARGET_TOKEN_COST * target) * t.batch_size * (t.stage1_steps + t.stage2_steps)
    return costs


def balanced_lanes(costs: list[float], lanes: int) -> list[list[int]]:
    """The indices of ``costs`` split into ``lanes`` lists whose summed costs are as even
    as possible (the largest sum is minimal): every split tried for two lanes and up to
    16 items, longest-first to the least loaded lane otherwise.  Within a lane the costly
    items come first."""
    if lanes < 1:
        raise ValueError(f"lanes must be >= 1, got {lanes}")
    order = sorted(range(len(costs)), key=lambda i: (-costs[i], i))
    if lanes == 2 and len(costs) <= 16:
        total = sum(costs)

        def largest_lane(mask: int) -> float:
            first = sum(c for i, c in enumerate(costs) if mask >> i & 1)
            return max(first, total - first)

        best = min(range(1 << len(costs)), key=lambda mask: (largest_lane(mask), mask))
        split = [[i for i in order if best >> i & 1], [i for i in order if not best >> i & 1]]
        return [lane for lane in split if lane]
    loads, out = [0.0] * lanes, [[] for _ in range(lanes)]
    for i in order:
        lane = min(range(lanes), key=lambda k: (loads[k], k))
        loads[lane] += costs[i]
        out[lane].append(i)
    return [lane for lane in out if lane]


def parameter_counts(model) -> dict[str, int]:
    """Parameters of each part of an M-ACM model (frozen encoder, projectors, decoder)."""
    parts = {"vision_encoder (frozen)": model.vision_encoder, "visual_projector": model.visual_projector,
             "motion_projector": model.motion_projector, "language_model": model.language_model}
    return {name: sum(p.numel() for p in part.parameters()) for name, part in parts.items()}


def load_variant(profile: str | Profile, variant: str, *, seed: int | None = None, train: bool = True,
                 progress: bool = True):
    """(model in eval mode, tokenizer, run info) of a trained variant; trains it first when
    ``train`` and it is missing, else a clear error."""
    from .model.modeling_macm import MACMForConditionalGeneration
    from .model.tokenizer import load_tokenizer

    from transformers.utils import logging as hf_logging

    if not progress:
        hf_logging.disable_progress_bar()
    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    seed = profile.train.seeds[0] if seed is None else seed
    final = trained_model(profile, variant, seed)
    if final is None:
        if not train:
            raise FileNotFoundError(f"variant {variant!r} (seed {seed}) of profile {profile.name!r} is not trained: "
                                    f"run `macm train --profile {profile.name} --variant {variant} --seed {seed}`")
        final = train_variant(profile, variant, seed=seed, progress=progress)
    model = MACMForConditionalGeneration.from_pretrained(final).eval()
    return model, load_tokenizer(final), json.loads((final / "run.json").read_text())
