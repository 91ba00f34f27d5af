"""The two pathways' inputs for every clip of a benchmark split, computed once and cached.

Per clip, the paper's chain (``../shared/design/architecture.md``):

1. render the clip (optionally with occlusion of a given severity);
2. pose: the profile's backend (vitpose-tiny) on every frame -> COCO-17 track;
3. keyframes: ``uniform`` or ``pose-aware`` (on the estimated track, not the ground truth);
4. SMPL-format fit of the keyframes' keypoints with the clip's camera
   (``fit.fit_track``; a zoom-crop applied by occlusion is undone on the keypoints, as a
   known change of intrinsics);
5. the motion view: the FITTED body drawn in grey over each keyframe;
6. the frozen vision encoder on the keyframes (visual pathway) and on the motion views
   (motion pathway); for evaluation splits also on noised keyframes (VCD's contrast).

The result (``PathwayFeatures``) also keeps what later chapters measure: the pose
confidence on the keyframes, the fit's error against the ground-truth joints, the fitted
SMPL parameters.  One ``.npz`` per (profile, split, keyframe mode, occlusion, clips),
keyed by the config and the source of the code that computes it, written atomically.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .cache import atomic_path, source_digest, stage_dir, write_json_atomic
from .config import Profile, load_profile
from .data.benchmark import Benchmark
from .determinism import spawned_with_threads
from .pipeline.sampling import pose_aware_keyframes, uniform_keyframes

KEYFRAME_MODES = ("uniform", "pose-aware")
EVAL_SPLITS = ("test", "test_heldout")


@dataclass(frozen=True)
class PathwayFeatures:
    """Cached inputs of N clips (row order = ``clip_ids``); K keyframes, g**2 tokens each.

    visual, motion: (N, K * g**2, D) float16 frozen-encoder features of the keyframes and
        of the fitted body drawn over them; visual_noised: the same for noised keyframes
        (VCD), or None for training splits.
    keyframes: (N, K) frame indices.  pose_confidence: (N,) mean COCO-17 confidence on the
        keyframes.  fit_mpjpe_mm, fit_pa_mpjpe_mm: (N,) error of the fitted joints against
        the ground truth on the keyframes.  body_pose (N, K, 69), global_orient (N, K, 3):
        the fitted SMPL parameters.  info: how the features were made.
    """

    clip_ids: tuple[str, ...]
    visual: np.ndarray
    motion: np.ndarray
    visual_noised: np.ndarray | None
    keyframes: np.ndarray
    pose_confidence: np.ndarray
    fit_mpjpe_mm: np.ndarray
    fit_pa_mpjpe_mm: np.ndarray
    body_pose: np.ndarray
    global_orient: np.ndarray
    info: dict

    def __len__(self) -> int:
        return len(self.clip_ids)

    def rows(self, clip_ids) -> "PathwayFeatures":
        """The features of ``clip_ids`` (in that order)."""
        index = {c: i for i, c in enumerate(self.clip_ids)}
        missing = [c for c in clip_ids if c not in index]
        if missing:
            raise KeyError(f"no features for clips {missing[:3]} (of {len(missing)})")
        take = np.array([index[c] for c in clip_ids], dtype=np.int64)
        arrays = {name: None if getattr(self, name) is None else getattr(self, name)[take] for name in _ARRAYS}
        return PathwayFeatures(clip_ids=tuple(clip_ids), info=self.info, **arrays)


_ARRAYS = ("visual", "motion", "visual_noised", "keyframes", "pose_confidence", "fit_mpjpe_mm",
           "fit_pa_mpjpe_mm", "body_pose", "global_orient")


def vision_config(profile: Profile) -> dict:
    """The frozen encoder of a profile as ``MACMConfig.vision_config``."""
    from .paths import resolve

    f = profile.features
    path = str(resolve(f.encoder_path)) if f.encoder_path else None
    return {"name": f.encoder, "path": path, "grid": f.grid,
            "image_size": f.encoder_image_size or profile.data.image_size,
            "seed": profile.seed}


def _key(profile: Profile, split: str, keyframes: str, occlusion: float, num_clips: int | None) -> dict:
    # both modes are computed together: each mode's file has its own key
    # the profile name too: vitpose-tiny's training run is chosen by it (train_vitpose.for_profile)
    return {"profile": profile.name, "data": profile.data, "pose": profile.pose, "body": profile.body,
            "features": profile.features,
            "seed": profile.seed, "split": split, "keyframes": keyframes, "occlusion": round(float(occlusion), 4),
            "num_clips": num_clips,
            "source": source_digest("data", "render", "pose", "fit", "model/vision", "model/efficientnet_lite",
                                    "pipeline", "features")}


def features_path(profile: Profile, split: str, keyframes: str, occlusion: float = 0.0,
                  num_clips: int | None = None) -> Path:
    return stage_dir("features", _key(profile, split, keyframes, occlusion, num_clips)) / "features.npz"


def load_features(profile: str | Profile, split: str, *, keyframes: str = "uniform", occlusion: float = 0.0,
                  num_clips: int | None = None, force: bool = False, progress: bool = True) -> PathwayFeatures:
    """The cached features of a split (computed first when missing or with ``force``).

    num_clips: only the first clips of the split (the occlusion sweep); None: all.  Without
    occlusion these are the first rows of the whole split's features (computed once, for
    both), so the sweep's severity 0 is the evaluation's own input.
    """
    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    if keyframes not in KEYFRAME_MODES:
        raise ValueError(f"keyframes must be one of {KEYFRAME_MODES}, got {keyframes!r}")
    _check_request(split, occlusion, num_clips)
    if occlusion == 0.0 and num_clips is not None:
        whole = load_features(profile, split, keyframes=keyframes, force=force, progress=progress)
        if num_clips >= len(whole):
            return whole
        first = whole.rows(whole.clip_ids[:num_clips])
        return replace(first, info={**whole.info, "clips": num_clips,
                                    "rows_of": f"the first {num_clips} of {len(whole)}"})
    # both modes' files, keyed once: a computation writes where this call then reads
    feature_set = _feature_set(profile, split, float(occlusion), num_clips)
    path = feature_set.paths[keyframes]
    if force or not path.is_file():
        # computed with feature_threads(profile), whatever the caller's thread count: the
        # cached numbers must not depend on which notebook or command computed them first
        _compute(profile, [feature_set], progress=progress)
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    info = json.loads(str(arrays.pop("info")))
    noised = arrays.pop("visual_noised") if "visual_noised" in arrays else None
    return PathwayFeatures(clip_ids=tuple(str(c) for c in arrays.pop("clip_ids")), visual_noised=noised,
                           info=info, **arrays)


def _check_request(split: str, occlusion: float, num_clips: int | None) -> None:
    if not isinstance(split, str):
        raise TypeError(f"split must be a split's name, got {split!r}")
    if not 0.0 <= occlusion < 1.0:
        raise ValueError(f"occlusion must lie in [0, 1), got {occlusion}")
    if num_clips is not None and num_clips < 1:
        raise ValueError(f"num_clips must be >= 1 or None (the whole split), got {num_clips}")


# ---------------------------------------------------------------------------------
# Computing
# ---------------------------------------------------------------------------------


def noised(images: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """VCD's distorted video: ``sqrt(1 - s) * x + sqrt(s) * noise`` in [0, 1] pixels
    (a forward-diffusion step with ``s`` = strength), clamped to [0, 1]."""
    noise = torch.rand(images.shape, generator=generator)
    return ((1 - strength) ** 0.5 * images + strength ** 0.5 * noise).clamp_(0, 1)


def crop_body_layer(view: torch.Tensor, mask: torch.Tensor, frames: torch.Tensor, zoom: float,
                    offset: np.ndarray) -> torch.Tensor:
    """Composite a body layer drawn in the uncropped image (view (T, H, W, 3) uint8, mask
    (T, H, W)) over ``frames`` that were zoom-cropped by ``after = zoom * before + offset``."""
    if abs(zoom - 1.0) < 1e-6 and np.allclose(offset, 0.0, atol=1e-3):
        return torch.where(mask[..., None], view, frames)
    t, h, w = mask.shape
    xs = ((torch.arange(w) + 0.5 - float(offset[0])) / zoom) / w * 2 - 1
    ys = ((torch.arange(h) + 0.5 - float(offset[1])) / zoom) / h * 2 - 1
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], dim=-1).expand(t, h, w, 2)
    layer = torch.cat([view.float(), mask[..., None].float() * 255], dim=-1).permute(0, 3, 1, 2)
    sampled = F.grid_sample(layer, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    sampled = sampled.permute(0, 2, 3, 1)
    alpha = sampled[..., 3:] / 255
    out = frames.float() * (1 - alpha) + sampled[..., :3] * alpha
    return out.round().clamp(0, 255).to(torch.uint8)


def _to_images(frames: torch.Tensor) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, H, W) float in [0, 1]."""
    return frames.permute(0, 3, 1, 2).float() / 255


def feature_threads(profile: Profile) -> int:
    """Threads of each process that computes features: the profile's ``threads`` shared by
    ``features.workers`` processes.  Every batch is computed with this many, so that the
    cached numbers do not depend on how many workers there are."""
    return max(1, profile.threads // profile.features.workers)


class _FeatureMaker:
    """What one process needs to turn batches of clips into features: the benchmark, the
    pose backend and the frozen encoder, loaded once for the batches of every set."""

    def __init__(self, profile: Profile):
        from .model.vision import VisionEncoderConfig, build_vision_encoder
        from .pose.backends import make_backend

        self.profile = profile
        self.bench = Benchmark.load(profile)
        self.pose = make_backend(profile.pose.backend, profile)
        self.encoder = build_vision_encoder(VisionEncoderConfig.from_dict(vision_config(profile))).freeze()

    def batch(self, split: str, occlusion: float, batch: list[str], first: int) -> dict[str, dict[str, list]]:
        """Per keyframe mode, the ``_ARRAYS`` of the clips ``batch`` of ``split`` rendered with
        ``occlusion`` (``first``: the index of its first clip in the split, which seeds VCD's
        noise): render and pose once, then per mode the keyframes, the fit, the motion view
        and the encoder.  Nothing is kept from one batch to the next."""
        from .fit.fitter import COCO17_MAP, fit_tracks, mpjpe, pa_mpjpe
        from .render import overlay_body
        from .render.occlusion import recover_zoom_crop

        profile, bench, encoder, f = self.profile, self.bench, self.encoder, self.profile.features
        out = {mode: {name: [] for name in _ARRAYS} for mode in KEYFRAME_MODES}
        renders = [bench.render(c, occlusion=occlusion) for c in batch]
        frames = torch.cat([r.frames for r in renders]).numpy()
        tracks = self.pose(frames, fps=profile.data.fps)
        crops = []
        for clip_id, render in zip(batch, renders):
            crops.append(recover_zoom_crop(bench.joints_2d(clip_id), render.joints_2d.numpy()))
        for mode in KEYFRAME_MODES:
            chosen_all, points, confidences = [], [], []
            for i, render in enumerate(renders):
                t = render.frames.shape[0]
                clip_points = tracks.keypoints[i * t:(i + 1) * t]
                clip_confidence = tracks.confidence[i * t:(i + 1) * t]
                chosen = (uniform_keyframes(t, f.keyframes) if mode == "uniform"
                          else pose_aware_keyframes(clip_points, f.keyframes, clip_confidence))
                zoom, offset = crops[i]
                chosen_all.append(chosen)
                points.append((clip_points[chosen] - offset) / zoom)  # undo the crop: the clip's camera holds
                confidences.append(clip_confidence[chosen])
            fits = fit_tracks(keypoints=points, confidence=confidences, joint_map=COCO17_MAP,
                              camera=[bench.camera(c) for c in batch], names=batch)
            key_rgb, key_motion = [], []
            for i, (clip_id, render, fit, chosen) in enumerate(zip(batch, renders, fits, chosen_all)):
                camera = bench.camera(clip_id)
                truth = torch.from_numpy(bench.joints(clip_id)[chosen]).float()
                blank = torch.zeros(render.frames[chosen].shape, dtype=torch.uint8)
                view, mask = overlay_body(blank, fit.joints, camera)
                key_frames = render.frames[chosen]
                key_rgb.append(_to_images(key_frames))
                key_motion.append(_to_images(crop_body_layer(view, mask, key_frames, *crops[i])))
                o = out[mode]
                o["keyframes"].append(chosen)
                o["pose_confidence"].append(float(confidences[i].mean()))
                o["fit_mpjpe_mm"].append(mpjpe(fit.joints, truth))
                o["fit_pa_mpjpe_mm"].append(pa_mpjpe(fit.joints, truth))
                o["body_pose"].append(fit.body_pose.numpy())
                o["global_orient"].append(fit.global_orient.numpy())
            rgb, motion = torch.stack(key_rgb), torch.stack(key_motion)
            with torch.inference_mode():
                out[mode]["visual"].append(encoder(rgb).half().numpy())
                out[mode]["motion"].append(encoder(motion).half().numpy())
                if split in EVAL_SPLITS:
                    generator = torch.Generator().manual_seed(profile.seed * 1_000_003 + first)
                    out[mode]["visual_noised"].append(
                        encoder(noised(rgb, f.vcd_noise, generator)).half().numpy())
        return out


_WORKER: _FeatureMaker | None = None


def _start_worker(profile: Profile) -> None:
    global _WORKER
    torch.set_num_threads(feature_threads(profile))
    _WORKER = _FeatureMaker(profile)


def _worker_batch(split: str, occlusion: float, batch: list[str], first: int) -> dict[str, dict[str, list]]:
    return _WORKER.batch(split, occlusion, batch, first)


@dataclass(frozen=True)
class _FeatureSet:
    """One cached set: a split's first ``num_clips`` clips (None: all) with ``occlusion``,
    written to one file per keyframe mode (``paths``)."""

    split: str
    occlusion: float
    num_clips: int | None
    paths: dict[str, Path]

    @property
    def label(self) -> str:
        return f"{self.split} occ={self.occlusion:g}" + ("" if self.num_clips is None else f" n={self.num_clips}")


def _feature_set(profile: Profile, split: str, occlusion: float, num_clips: int | None) -> _FeatureSet:
    return _FeatureSet(split, occlusion, num_clips,
                       {mode: features_path(profile, split, mode, occlusion, num_clips) for mode in KEYFRAME_MODES})


def book_feature_sets(profile: str | Profile) -> list[tuple[str, float, int | None]]:
    """(split, occlusion, num_clips) of every feature set the book's chapters read: the
    training split, the evaluation splits, and the occlusion sweep's severities (its
    severity 0 is rows of the test split's set)."""
    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    f = profile.features
    sweep = [("test", float(s), int(f.occlusion_clips)) for s in f.occlusion_severities if float(s) > 0]
    return [("train", 0.0, None), *[(split, 0.0, None) for split in EVAL_SPLITS], *sweep]


def compute_features(profile: str | Profile, requests: list[tuple[str, float, int | None]], *,
                     force: bool = False, progress: bool = True) -> list[str]:
    """Compute the missing sets of ``requests`` ((split, occlusion, num_clips) each, as
    ``load_features`` takes them) in ONE pool of ``features.workers`` processes; return
    the labels of the sets computed.

    The same numbers as one ``load_features`` call per set (every batch is the batch that
    call would compute, with the same seed), at less cost: the workers start once, and
    the batches of all sets keep both busy until the end, where one set alone would
    leave a worker idle on its last batch.
    """
    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    sets: dict[tuple, _FeatureSet] = {}
    for split, occlusion, num_clips in requests:
        _check_request(split, occlusion, num_clips)
        if occlusion == 0.0:
            num_clips = None  # the first rows of the whole split (load_features)
        feature_set = _feature_set(profile, split, float(occlusion), num_clips)
        if force or not all(path.is_file() for path in feature_set.paths.values()):
            sets.setdefault((split, round(float(occlusion), 4), num_clips), feature_set)
    if sets:
        _compute(profile, list(sets.values()), progress=progress)
    return [feature_set.label for feature_set in sets.values()]


def _compute(profile: Profile, sets: list[_FeatureSet], *, progress: bool) -> None:
    """Both keyframe modes of every set, batch after batch (``features.batch_clips`` clips
    of one set each), spread over ``features.workers`` spawned processes; each set's modes
    are written to their files as soon as its last batch is in."""
    from concurrent.futures import ProcessPoolExecutor

    from tqdm.auto import tqdm

    from .pose.train_vitpose import load_or_train

    start = time.perf_counter()
    bench = Benchmark.load(profile)
    f = profile.features
    clips_of, batches = {}, []  # batches: (set index, clip ids, index of the first in the split)
    for i, feature_set in enumerate(sets):
        clip_ids = bench.split(feature_set.split).index.tolist()
        if feature_set.num_clips is not None:
            clip_ids = clip_ids[:feature_set.num_clips]
        if not clip_ids:
            raise ValueError(f"split {feature_set.split!r} of profile {profile.name!r} has no clips")
        clips_of[i] = clip_ids
        batches += [(i, clip_ids[first:first + f.batch_clips], first) for first in range(0, len(clip_ids), f.batch_clips)]
    desc = "features " + (sets[0].label if len(sets) == 1 else f"{len(sets)} sets")
    bar = tqdm(total=sum(len(c) for c in clips_of.values()), desc=desc, unit="clip",
               file=sys.stderr, disable=not progress, dynamic_ncols=True)
    # always in spawned processes, even one: each starts with its thread pools capped at
    # feature_threads (spawned_with_threads), whatever process asks for the features and
    # however many threads it runs
    if profile.pose.backend == "vitpose-tiny":  # a missing one trains on first use: here, once, not in each worker
        load_or_train(profile, progress=progress)
    workers = min(f.workers, len(batches))
    remaining = {i: sum(1 for b in batches if b[0] == i) for i in clips_of}
    results: dict[int, list] = {i: [] for i in clips_of}
    with spawned_with_threads(feature_threads(profile)) as context, \
            ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_start_worker,
                                initargs=(profile,)) as pool:
        futures = [pool.submit(_worker_batch, sets[i].split, sets[i].occlusion, batch, first)
                   for i, batch, first in batches]
        try:
            for (i, batch, _), future in zip(batches, futures):  # in order
                results[i].append(future.result())
                bar.update(len(batch))
                remaining[i] -= 1
                if remaining[i] == 0:  # a set is written as soon as it is complete
                    others = [s.label for j, s in enumerate(sets) if j != i]
                    _write(profile, sets[i], clips_of[i], results.pop(i), workers=workers,
                           seconds=round(time.perf_counter() - start, 1), others=others)
        except BaseException:
            pool.shutdown(cancel_futures=True)  # a failed batch fails the call at once (complete sets stay written)
            raise
    bar.close()


def _write(profile: Profile, feature_set: _FeatureSet, clip_ids: list[str], results: list, *,
           workers: int, seconds: float, others: list[str]) -> None:
    for mode in KEYFRAME_MODES:
        parts = {name: [x for result in results for x in result[mode][name]] for name in _ARRAYS}
        arrays = {name: (np.concatenate(v) if name in ("visual", "motion", "visual_noised") else np.stack(v))
                  for name, v in parts.items() if v}
        # seconds: from the pool's start until this set was complete; ``computed_with`` names
        # the other sets of the same pool (those submitted before this one count in its seconds)
        info = {"profile": profile.name, "split": feature_set.split, "keyframes": mode,
                "occlusion": feature_set.occlusion, "clips": len(clip_ids), "pose_backend": profile.pose.backend,
                "encoder": profile.features.encoder, "workers": workers, "seconds_both_modes": seconds}
        if others:
            info["computed_with"] = others
        path = feature_set.paths[mode]
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, clip_ids=np.array(clip_ids), info=np.array(json.dumps(info)), **arrays)
        write_json_atomic(path.with_name("info.json"), info)
