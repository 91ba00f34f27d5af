"""Captions (and QA answers) of a trained variant on cached features, with any decoder.

``pathway_prompts`` turns a batch of clips' features into the prompt embeddings of each
pathway (visual, motion, joint, noised visual); ``generate`` runs the one decoding loop
(``decoding.loop.decode``) on them, batch by batch; ``caption_split`` does it for a whole
split of the benchmark and caches the captions (and MSD's per-token logs) as parquet in
the run's folder, keyed by the decoder, its constants and the split's features.
"""
from __future__ import annotations

import json
import weakref
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .cache import atomic_path, config_hash, source_digest
from .config import Profile, load_profile
from .decoding import DecodeConfig, MSDConfig, PathwayPrompts, decode
from .features import PathwayFeatures, load_features
from .model.tokenizer import DEFAULT_INSTRUCTION, build_inputs, decode_caption
from .runs import load_variant, run_dir, trained_model
from .variants import get_variant

PATHWAY_CONDITIONING = {"visual": "visual", "motion": "motion", "joint": "joint", "visual_noised": "visual"}


# tokenizer -> {(prompt, conditioning, video tokens, motion tokens): input ids}: the QA questions
# of a split are the same for every decoder of a model, tokenized once
_PROMPT_IDS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _prompt_ids(tokenizer, prompt: str, conditioning: str, n_video: int, n_motion: int) -> torch.Tensor:
    memo = _PROMPT_IDS.setdefault(tokenizer, {})
    key = (prompt, conditioning, n_video, n_motion)
    if key not in memo:
        memo[key] = build_inputs(tokenizer, prompt=prompt, num_video_tokens=n_video, num_motion_tokens=n_motion,
                                 conditioning=conditioning).input_ids
    return memo[key]


# the model caption_split loaded last, {(model folder, its config's mtime): (model, tokenizer)}: the
# decoders of one model caption one after another (each load is ~0.2 s on the cpu profile)
_LOADED: dict[tuple[str, int], tuple] = {}


def _model_key(profile: Profile, variant: str, seed: int) -> tuple[str, int] | None:
    final = trained_model(profile, variant, seed)
    return None if final is None else (str(final), (final / "config.json").stat().st_mtime_ns)


def _load_model(profile: Profile, variant: str, seed: int, *, progress: bool):
    """(model, tokenizer) of a trained variant, reusing the one loaded last when it is the same."""
    key = _model_key(profile, variant, seed)
    if key is None or key not in _LOADED:
        model, tokenizer, _ = load_variant(profile, variant, seed=seed, progress=progress)
        _LOADED.clear()
        _LOADED[key or _model_key(profile, variant, seed)] = (model, tokenizer)
        return model, tokenizer
    return _LOADED[key]


def _as_tensor(array) -> torch.Tensor:
    # float16 features: torch widens them faster than numpy (24 vs 37 ms for a test split's, measured)
    return torch.from_numpy(np.ascontiguousarray(array)).float()


@torch.inference_mode()
def pathway_prompts(model, tokenizer, *, visual, motion, visual_noised=None,
                    prompts: list[str] | None = None) -> PathwayPrompts:
    """Features of B clips ((B, N, D) each; visual_noised optional) -> ``PathwayPrompts``
    with one (L, D) prompt per clip and pathway.  prompts: one instruction per clip (a
    QA question), default the captioning instruction.

    Each distinct prompt is tokenized once per pathway and tokenizer (``_prompt_ids``), and
    the clips whose prompts have the same length are embedded and projected in one call
    (row b of a call is clip b's prompt with clip b's features, as ``prompt_embeddings`` of
    that clip alone)."""
    visual, motion = _as_tensor(visual), _as_tensor(motion)
    count = visual.shape[0]
    prompts = prompts or [DEFAULT_INSTRUCTION] * count
    if len(prompts) != count:
        raise ValueError(f"got {len(prompts)} prompts for {count} clips")
    n_video, n_motion = visual.shape[1], motion.shape[1]
    out: dict[str, list[torch.Tensor]] = {}
    sources = {"visual": (visual, None), "motion": (None, motion), "joint": (visual, motion)}
    if visual_noised is not None:
        sources["visual_noised"] = (_as_tensor(visual_noised), None)
    for name, (video_features, motion_features) in sources.items():
        conditioning = PATHWAY_CONDITIONING[name]
        ids = [_prompt_ids(tokenizer, prompt, conditioning, n_video, n_motion) for prompt in prompts]
        by_length: dict[int, list[int]] = {}
        for i, row_ids in enumerate(ids):
            by_length.setdefault(len(row_ids), []).append(i)
        rows: list[torch.Tensor | None] = [None] * count
        for members in by_length.values():
            take = torch.tensor(members)
            embeds = model.prompt_embeddings(
                torch.stack([ids[i] for i in members]),
                video_features=None if video_features is None else video_features[take],
                motion_features=None if motion_features is None else motion_features[take])
            for i, row in zip(members, embeds):
                rows[i] = row
        out[name] = rows
    return PathwayPrompts(**out)


def generate(model, tokenizer, features: PathwayFeatures, *, decoder: str, max_new_tokens: int,
             msd: MSDConfig = MSDConfig(), batch_size: int = 32, prompts: list[str] | None = None,
             rows: list[int] | None = None, log_tokens: bool = False) -> tuple[list[str], list | None]:
    """Texts (and per-token logs with ``log_tokens``) for the clips ``rows`` of ``features``
    (default all), one per row; prompts: one instruction per row (QA questions)."""
    rows = list(range(len(features))) if rows is None else list(rows)
    cfg = DecodeConfig(decoder=decoder, max_new_tokens=max_new_tokens, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id, log_tokens=log_tokens, msd=msd)
    if decoder == "vcd" and features.visual_noised is None:
        raise ValueError("VCD needs the noised-video features, which only evaluation splits (test, test_heldout) have")
    texts, logs = [], [] if log_tokens else None
    for first in range(0, len(rows), batch_size):
        take = rows[first:first + batch_size]
        noised = features.visual_noised[take] if decoder == "vcd" else None
        batch_prompts = None if prompts is None else prompts[first:first + batch_size]
        prompt_embeds = pathway_prompts(model, tokenizer, visual=features.visual[take], motion=features.motion[take],
                                        visual_noised=noised, prompts=batch_prompts)
        out = decode(model.language_model, prompt_embeds, embed_tokens=model.embed_tokens, cfg=cfg)
        texts.extend(decode_caption(tokenizer, tokens) for tokens in out.tokens)
        if log_tokens:
            for tokens, token_logs in zip(out.tokens, out.token_logs):
                for entry in token_logs:
                    entry["text"] = tokenizer.decode([entry["token"]])
                    entry["visual_top_text"] = tokenizer.decode([entry["visual_top"]])
                logs.append(token_logs)
    return texts, logs


def _captions_path(folder: Path, key: dict) -> Path:
    return folder / "captions" / f"{config_hash(key)}.parquet"


def caption_split(profile: str | Profile, variant: str, *, decoder: str, seed: int | None = None,
                  split: str = "test", occlusion: float = 0.0, num_clips: int | None = None,
                  msd: MSDConfig = MSDConfig(), log_tokens: bool = False, qa: bool = False,
                  progress: bool = True) -> pd.DataFrame:
    """Captions of a split (``clip_id``, ``caption``, ``log`` (JSON, with ``log_tokens``)),
    or with ``qa`` the answers to the split's true/false QA (``clip_id``, ``question``,
    ``answer``, ``gold``); cached in the run's folder."""
    from .data.benchmark import Benchmark

    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    v = get_variant(variant)
    seed = profile.train.seeds[0] if seed is None else seed
    folder = run_dir(profile, v, seed)
    key = {"decoder": decoder, "split": split, "occlusion": occlusion, "num_clips": num_clips, "qa": qa,
           "msd": asdict(msd), "max_new_tokens": profile.eval.max_new_tokens, "log_tokens": log_tokens,
           "batch": profile.eval.decode_batch,  # the padding of a batch can move a float's last bit
           "source": source_digest("decoding", "captioning", "features")}
    path = _captions_path(folder, key)
    if path.is_file() and (folder / "model" / "config.json").is_file():
        return pd.read_parquet(path)
    model, tokenizer = _load_model(profile, variant, seed, progress=progress)
    features = load_features(profile, split, keyframes=v.keyframes, occlusion=occlusion, num_clips=num_clips,
                             progress=progress)
    torch.manual_seed(seed)
    if qa:
        bench = Benchmark.load(profile)
        table = bench.qa[(bench.qa["kind"] == "judge") & bench.qa["clip_id"].isin(features.clip_ids)]
        index = {c: i for i, c in enumerate(features.clip_ids)}
        answers, _ = generate(model, tokenizer, features, decoder=decoder, max_new_tokens=4, msd=msd,
                              prompts=table["question"].tolist(), rows=[index[c] for c in table["clip_id"]],
                              batch_size=profile.eval.decode_batch)
        frame = pd.DataFrame({"clip_id": table["clip_id"].to_numpy(), "question": table["question"].to_numpy(),
                              "answer": answers, "gold": table["answer"].to_numpy()})
    else:
        captions, logs = generate(model, tokenizer, features, decoder=decoder,
                                  max_new_tokens=profile.eval.max_new_tokens, msd=msd, log_tokens=log_tokens,
                                  batch_size=profile.eval.decode_batch)
        frame = pd.DataFrame({"clip_id": list(features.clip_ids), "caption": captions})
        if log_tokens:
            frame["log"] = [json.dumps(entry) for entry in logs]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp)
    return frame


def msd_term_sets(base: MSDConfig = MSDConfig()) -> dict[str, MSDConfig]:
    """MSD with cumulative term sets (the paper's Figure 2): L2, +L1, +L3, +L4, +L5."""
    order, sets = ["L2", "L1", "L3", "L4", "L5"], {}
    for i in range(len(order)):
        sets["+".join(order[:i + 1])] = base.only(*order[:i + 1])
    return sets


__all__ = ["caption_split", "generate", "msd_term_sets", "pathway_prompts"]
