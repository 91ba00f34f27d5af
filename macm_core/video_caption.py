"""``macm caption VIDEO``: one caption for any video file, through the whole M-ACM chain.

video -> frames letterboxed to a square (the encoders' input shape) -> pose track (BlazePose
by default: vitpose-tiny only knows the synthetic renders) -> HMI filter decision (reported,
not enforced) -> keyframes (the run's mode) -> SMPL-format fit with the assumed camera of an
uncalibrated video -> the fitted body drawn over each keyframe -> frozen encoder on both ->
the trained model's decoder.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .pipeline.sampling import pose_aware_keyframes, uniform_keyframes

POSE_SIZE = 256  # letterboxed frame side for pose, fit and the motion view


@dataclass
class VideoCaption:
    """caption (of ``decoder``); captions: decoder -> caption for every decoder asked; keyframes (K,) indices into ``frames``; frames (T, S, S, 3) letterboxed uint8;
    motion_view (K, S, S, 3) the fitted body over the keyframes; track: the ``PoseTrack``;
    fit: the ``FitResult``; filter: the HMI ``FilterDecision``; decoder."""

    caption: str
    captions: dict
    keyframes: np.ndarray
    frames: np.ndarray
    motion_view: np.ndarray
    track: object
    fit: object
    filter: object
    decoder: str


def letterbox(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, size, size, 3): scaled to fit, centred on black."""
    t, h, w, _ = frames.shape
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    top, left = (size - nh) // 2, (size - nw) // 2
    out = np.zeros((t, size, size, 3), dtype=np.uint8)
    for first in range(0, t, 16):  # a few frames at a time: full-HD frames as floats are large
        x = torch.from_numpy(frames[first:first + 16]).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
        out[first:first + 16, top:top + nh, left:left + nw] = x.round().clamp(0, 255).byte().permute(0, 2, 3, 1)
    return out


def run_profile(run: dict):
    """The profile of a trained run (its ``run.json``): a packaged profile by name, else
    the YAML file it was trained from; a clear error when that file is not here."""
    from .config import available_profiles, load_profile

    if run["profile"] in available_profiles():
        return load_profile(run["profile"])
    source = run.get("profile_source")
    if source and Path(source).is_file():
        return load_profile(source)
    raise FileNotFoundError(f"this model was trained with the custom profile {run['profile']!r} "
                            f"({source or 'file not recorded'}), which is not on this machine: pass its YAML "
                            "file (`--profile FILE`, or profile= in Python)")


def caption_video(video: str | Path, checkpoint: str | Path, *, decoder: str = "msd",
                  decoders: list[str] | None = None, pose_backend: str = "blazepose",
                  max_frames: int | None = None, max_new_tokens: int | None = None,
                  profile: str | Path | None = None) -> VideoCaption:
    """Caption ``video`` with ``decoder`` (and, once the pathways are computed, with every
    decoder of ``decoders`` too: ``.captions``).

    profile: the profile the checkpoint was trained with (name or YAML path); default the
    one its ``run.json`` records (``run_profile``)."""
    from .captioning import generate
    from .config import load_profile
    from .decoding import DECODERS
    from .features import PathwayFeatures
    from .fit.fitter import COCO17_MAP, fit_track
    from .model.modeling_macm import MACMForConditionalGeneration
    from .model.tokenizer import load_tokenizer
    from .pipeline.filters import filter_clip
    from .pipeline.video import read_video
    from .pose.backends import make_backend
    from .render import overlay_body
    from .variants import get_variant

    wanted = [decoder] + [d for d in (decoders or []) if d != decoder]
    for name in wanted:
        if name not in DECODERS:
            raise ValueError(f"unknown decoder {name!r}: choose one of {', '.join(DECODERS)}")
        if name == "vcd":
            raise ValueError("vcd needs a noised copy of the video's features; caption a video with greedy_visual, "
                             "greedy_joint, poe or msd")
    checkpoint = Path(checkpoint)
    if not (checkpoint / "run.json").is_file():
        raise FileNotFoundError(f"{checkpoint} is not a trained model folder (no run.json): give the folder "
                                "`macm train` printed")
    run = json.loads((checkpoint / "run.json").read_text())
    profile = load_profile(profile) if profile is not None else run_profile(run)
    variant = get_variant(run["variant"])
    clip = read_video(video, max_frames=max_frames)
    frames = letterbox(clip.frames, POSE_SIZE)
    track = make_backend(pose_backend, profile)(frames, fps=clip.fps)
    decision = filter_clip(keypoints=track.keypoints, confidence=track.confidence, frame_size=(POSE_SIZE, POSE_SIZE),
                           fps=clip.fps, person_count=track.person_count if (track.person_count >= 0).all() else None)
    k = profile.features.keyframes
    if len(frames) < k:
        raise ValueError(f"{video} has {len(frames)} frames, fewer than the {k} keyframes the model needs")
    chosen = (pose_aware_keyframes(track.keypoints, k, track.confidence) if variant.keyframes == "pose-aware"
              else uniform_keyframes(len(frames), k))
    fit = fit_track(keypoints=track.keypoints[chosen], confidence=track.confidence[chosen], joint_map=COCO17_MAP,
                    image_size=(POSE_SIZE, POSE_SIZE))
    key_frames = torch.from_numpy(np.ascontiguousarray(frames[chosen]))
    view, _ = overlay_body(key_frames, fit.joints, fit.camera)
    model = MACMForConditionalGeneration.from_pretrained(checkpoint).eval()
    tokenizer = load_tokenizer(checkpoint)
    with torch.inference_mode():
        images = torch.stack([key_frames, view]).permute(0, 1, 4, 2, 3).float() / 255  # (2, K, 3, S, S)
        visual, motion = model.encode_frames(images[:1]), model.encode_frames(images[1:])
    features = PathwayFeatures(clip_ids=(str(video),), visual=visual.numpy(), motion=motion.numpy(),
                               visual_noised=None, keyframes=chosen[None], pose_confidence=np.zeros(1),
                               fit_mpjpe_mm=np.full(1, np.nan), fit_pa_mpjpe_mm=np.full(1, np.nan),
                               body_pose=fit.body_pose.numpy()[None], global_orient=fit.global_orient.numpy()[None],
                               info={"video": str(video)})
    captions = {name: generate(model, tokenizer, features, decoder=name,
                               max_new_tokens=max_new_tokens or profile.eval.max_new_tokens)[0][0]
                for name in wanted}
    return VideoCaption(caption=captions[decoder], captions=captions, keyframes=chosen, frames=frames, motion_view=view.numpy(), track=track,
                        fit=fit, filter=decision, decoder=decoder)
