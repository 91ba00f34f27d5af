"""``macm bench pipeline``: throughput of the data pipeline, stage by stage.

Each stage is timed over the same clips in one run (warm-up excluded), on a fixed
number of torch threads; the result is printed as one JSON object per stage and a
summary line with the headline rates: frames per second of generation + rendering,
and of the motion pathway on the keyframes (pose + SMPL-format fit + fitted body),
whose fit runs ``fit_batch`` clips per optimisation (``fit_tracks``), as feature
extraction does.
"""
from __future__ import annotations

import json
import time
from typing import Callable

import numpy as np
import torch

from ..body.smpl import ProceduralSMPL
from ..config import load_profile
from ..data.motion import generate_motion
from ..data.synth_clip import make_clip, render_clip
from ..determinism import set_determinism
from ..pipeline.sampling import pose_aware_keyframes, uniform_keyframes


def _timed(fn: Callable[[int], object], seeds: list[int]) -> tuple[float, list]:
    fn(seeds[0])  # warm-up, not timed
    results, start = [], time.perf_counter()
    for seed in seeds:
        results.append(fn(seed))
    return time.perf_counter() - start, results


MOTION_PATHWAY_TARGET_FPS = 100.0


def bench_pipeline(profile: str = "cpu", *, clips: int = 24, threads: int = 1,
                   keyframes: int = 8, fit_batch: int = 24,
                   emit: Callable[[str], None] = print) -> dict:
    if fit_batch < 1:
        raise ValueError(f"fit_batch must be >= 1 (clips per fit), got {fit_batch}")
    config = load_profile(profile)
    set_determinism(config.seed, threads=threads)
    data = config.data
    body = ProceduralSMPL()
    seeds = list(range(10_000, 10_000 + clips))
    frames = clips * data.num_frames
    rows = []

    def record(stage: str, seconds: float, **extra) -> None:
        row = {"bench": "pipeline", "profile": config.name, "stage": stage, "clips": clips,
               "frames": frames, "seconds": round(seconds, 4),
               "frames_per_s": round(frames / seconds, 1), "threads": threads,
               "image_size": data.image_size, **extra}
        rows.append(row)
        emit(json.dumps(row))

    t_motion, _ = _timed(lambda s: generate_motion(seed=s, num_frames=data.num_frames, fps=data.fps), seeds)
    record("motion generation", t_motion)
    t_clip, synth = _timed(lambda s: make_clip(s, num_frames=data.num_frames, fps=data.fps,
                                               image_size=data.image_size, body=body), seeds)
    record("motion + forward kinematics + camera", t_clip)

    def render(clip, occlusion=0.0):
        return render_clip(seed=clip.seed, joints=clip.joints, radii=clip.radii, camera=clip.camera,
                           ball_centres=clip.ball_centres, occlusion=occlusion)

    by_seed = {c.seed: c for c in synth}
    t_render, rendered = _timed(lambda s: render(by_seed[s]), seeds)
    record("render frames + motion view", t_render)
    t_occluded, _ = _timed(lambda s: render(by_seed[s], occlusion=0.5), seeds)
    record("render + occlusion (severity 0.5)", t_occluded)

    tracks = {c.seed: r.joints_2d.numpy() for c, r in zip(synth, rendered)}
    t_pose_aware, _ = _timed(lambda s: pose_aware_keyframes(tracks[s], keyframes), seeds)
    record("pose-aware keyframes", t_pose_aware, keyframes=keyframes)
    t_uniform, _ = _timed(lambda s: uniform_keyframes(data.num_frames, keyframes), seeds)
    record("uniform keyframes", t_uniform, keyframes=keyframes)

    # the motion pathway on the keyframes: pose (vitpose-tiny), fit, fitted body over the frame
    from ..fit.fitter import COCO17_MAP, fit_tracks
    from ..pose.backends import make_backend
    from ..render import overlay_body

    pose = make_backend("vitpose-tiny", config)
    chosen = {c.seed: uniform_keyframes(data.num_frames, keyframes) for c in synth}
    key_frames = {c.seed: r.frames[chosen[c.seed]] for c, r in zip(synth, rendered)}
    t_pose, tracks_est = _timed(lambda s: pose(key_frames[s].numpy(), fps=data.fps), seeds)
    record("pose (vitpose-tiny) on keyframes", t_pose, frames=clips * keyframes,
           frames_per_s=round(clips * keyframes / t_pose, 1))
    estimated = dict(zip(seeds, tracks_est))

    def fit(batch: list[int]) -> list:   # one optimisation for the whole batch of clips
        return fit_tracks(keypoints=[estimated[s].keypoints for s in batch],
                          confidence=[estimated[s].confidence for s in batch],
                          joint_map=COCO17_MAP, camera=[by_seed[s].camera for s in batch],
                          names=[f"seed {s}" for s in batch])

    batches = [seeds[i:i + fit_batch] for i in range(0, len(seeds), fit_batch)]
    fit(batches[0])  # warm-up, not timed
    start = time.perf_counter()
    fitted = [result for batch in batches for result in fit(batch)]
    t_fit = time.perf_counter() - start
    record("SMPL-format fit on keyframes", t_fit, frames=clips * keyframes,
           frames_per_s=round(clips * keyframes / t_fit, 1),
           clips_per_fit=min(fit_batch, clips))
    fits = dict(zip(seeds, fitted))
    t_overlay, _ = _timed(lambda s: overlay_body(key_frames[s], fits[s].joints, by_seed[s].camera), seeds)
    record("fitted body over the keyframes", t_overlay, frames=clips * keyframes,
           frames_per_s=round(clips * keyframes / t_overlay, 1))
    pathway = t_pose + t_fit + t_overlay

    total = t_clip + t_render
    per_clip = t_clip / clips
    sizes = data.num_train + data.num_val + data.num_test + data.num_heldout
    summary = {
        "generation_render_frames_per_s": round(frames / total, 1),
        "render_frames_per_s": round(frames / t_render, 1),
        "dataset_clips": sizes,
        "dataset_build_estimate_s": round(per_clip * sizes, 1),
        "motion_pathway_frames_per_s": round(clips * keyframes / pathway, 1),
        "motion_pathway_target_frames_per_s": MOTION_PATHWAY_TARGET_FPS,
        "clips_per_fit": min(fit_batch, clips),
    }
    meets = summary["motion_pathway_frames_per_s"] >= MOTION_PATHWAY_TARGET_FPS
    emit(f"pipeline ({config.name}, {threads} thread{'s' * (threads > 1)}, "
         f"{data.image_size}x{data.image_size}): generation + rendering "
         f"{summary['generation_render_frames_per_s']:.0f} frames/s "
         f"(rendering alone {summary['render_frames_per_s']:.0f} frames/s); "
         f"motion pathway (pose + fit of {summary['clips_per_fit']} clips at once + fitted body) "
         f"{summary['motion_pathway_frames_per_s']:.1f} frames/s "
         f"({'meets' if meets else 'below'} the {MOTION_PATHWAY_TARGET_FPS:.0f} frames/s target); "
         f"labels + motion of all {sizes} clips ~{summary['dataset_build_estimate_s']:.0f} s")
    return {"rows": rows, "summary": summary}
