"""Train and evaluate ViTPose-tiny on HMI-Synth frames (train split only).

- ``build_pool(config)``: renders a fixed pool of training frames once per pool config
  (``frames_per_clip`` random frames of each train clip, each clip under a random
  occlusion severity in [0, ``max_occlusion``], a ``clean_fraction`` of them clean) and
  caches it under ``stage_dir("vitpose_pool", ...)`` as ``frames.npy`` (N, H, W, 3) uint8
  plus ``labels.npz`` (keypoints (N, 29, 2), visible and in_frame (N, 29) bool, see
  ``keypoint_labels``);
- ``train_vitpose(config)``: AdamW with warm-up and cosine decay, random horizontal flips
  with left/right swap, MSE on Gaussian heatmaps weighted per joint; writes the checkpoint
  and ``train.json`` (loss curve, frames/s) atomically under
  ``stage_dir("vitpose_tiny", ...)``;
- ``load_or_train(profile_or_config)``: the cached checkpoint, or a fresh training run;
- ``evaluate_vitpose(backend, benchmark)``: PCK@0.1 and mean confidence per occlusion
  severity on a split (rendered with ``Benchmark.render``), overall and per joint group.

Command line: ``python -m macm_core.pose.train_vitpose --profile cpu [--eval]``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..cache import atomic_path, config_hash, source_digest, stage_dir, write_json_atomic
from ..config import Profile, available_profiles, load_profile
from ..data.benchmark import Benchmark, benchmark_dir
from ..data.synth_clip import render_clip
from ..determinism import torch_threads
from ..precision import linear_matmuls, matmul_dtype
from ..body.skeleton import JOINT_INDEX
from ..render import Camera, RenderOutput, inject_occlusion
from ..render.occlusion import recover_zoom_crop
from .coco import smpl_to_coco
from .vitpose_tiny import (COCO_FROM_KEYPOINTS, JOINT_GROUPS, NUM_KEYPOINTS, VitPoseConfig,
                           VitPoseNet, VitPoseTiny, flip_batch, gaussian_heatmaps, heatmap_loss,
                           pck, preprocess)

TRAIN_VERSION = 2
POOL_VERSION = 2
CHECKPOINT_NAME = "vitpose_tiny.pt"


@dataclass(frozen=True, kw_only=True)
class VitPoseTrainConfig:
    """One training run; its hash (with the benchmark's) names the checkpoint's folder.

    profile: the benchmark profile whose train split is rendered.
    model: the architecture (``model.image_size`` is the network input side).
    steps, batch_size, lr, weight_decay, warmup_steps: AdamW, linear warm-up then cosine.
    seed: network initialisation, pool sampling, batches and flips.
    pool_clips: train clips in the pool (None: all); frames_per_clip: frames of each.
    max_occlusion: pool clips get a severity uniform in [0, max_occlusion], except a
    clean_fraction of them that stay clean.
    supervise_occluded: also train on joints inside the frame that are hidden (by the body
    or an occluder), as COCO labels them; False trains on visible joints only.
    flip: mirror half of each batch.  threads: torch threads while training.
    matmul_dtype: "bfloat16": the linear layers multiply in bfloat16 while training
    (``precision.linear_matmuls``; the deconvolution head and the rest stay float32);
    None: float32.
    """

    profile: str = "cpu"
    model: VitPoseConfig = field(default_factory=VitPoseConfig)
    steps: int = 600
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 40
    seed: int = 0
    pool_clips: int | None = None
    frames_per_clip: int = 2
    max_occlusion: float = 0.6
    clean_fraction: float = 0.25
    supervise_occluded: bool = True
    flip: bool = True
    threads: int = 1
    matmul_dtype: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, VitPoseConfig):
            raise TypeError(f"model must be a VitPoseConfig, got {type(self.model).__name__}")
        for name in ("steps", "batch_size", "frames_per_clip", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"VitPoseTrainConfig.{name} must be a positive int, got {value!r}")
        if self.pool_clips is not None and (not isinstance(self.pool_clips, int) or self.pool_clips < 1):
            raise ValueError(f"VitPoseTrainConfig.pool_clips must be None or a positive int, got {self.pool_clips!r}")
        if not (0 <= self.warmup_steps < self.steps):
            raise ValueError(f"warmup_steps must be in [0, steps), got {self.warmup_steps} for {self.steps} steps")
        if not self.lr > 0 or not self.weight_decay >= 0:
            raise ValueError(f"lr must be > 0 and weight_decay >= 0, got {self.lr}, {self.weight_decay}")
        matmul_dtype(self.matmul_dtype)  # ValueError naming the choices
        if not 0 <= self.max_occlusion <= 1 or not 0 <= self.clean_fraction <= 1:
            raise ValueError("max_occlusion and clean_fraction must lie in [0, 1], got "
                             f"{self.max_occlusion}, {self.clean_fraction}")

    @classmethod
    def for_profile(cls, profile: str | Profile) -> "VitPoseTrainConfig":
        """The run a profile names in ``pose.vitpose_tiny`` (network input: ``data.image_size``)."""
        profile = profile if isinstance(profile, Profile) else load_profile(profile)
        v = profile.pose.vitpose_tiny
        model = VitPoseConfig(image_size=profile.data.image_size, patch_size=v.patch_size, dim=v.dim,
                              depth=v.depth, heads=v.heads, dim_head=v.dim_head, mlp_dim=v.mlp_dim,
                              deconv_channels=v.deconv_channels)
        return cls(profile=_profile_name(profile), model=model, seed=profile.seed, steps=v.steps,
                   batch_size=v.batch_size, warmup_steps=v.warmup_steps, lr=v.lr,
                   frames_per_clip=v.frames_per_clip, threads=v.threads, matmul_dtype=v.matmul_dtype)


def _profile_name(profile: Profile) -> str:
    # a packaged profile by name (so the config hash is the same on every machine), else its file
    return profile.name if profile.name in available_profiles() else profile.source


def _profile_of(config: VitPoseTrainConfig) -> Profile:
    return load_profile(config.profile)


def _pool_key(config: VitPoseTrainConfig) -> dict:
    return {"version": POOL_VERSION, "benchmark": benchmark_dir(_profile_of(config)).name,
            "seed": config.seed, "pool_clips": config.pool_clips,
            "frames_per_clip": config.frames_per_clip, "max_occlusion": config.max_occlusion,
            "clean_fraction": config.clean_fraction}


def run_dir(config: VitPoseTrainConfig) -> Path:
    """The folder of a run's checkpoint: keyed by the config and the benchmark build."""
    key = {"version": TRAIN_VERSION, "benchmark": benchmark_dir(_profile_of(config)).name,
           "config": config, "source": source_digest("pose/vitpose_tiny", "pose/train_vitpose", "precision")}
    return stage_dir("vitpose_tiny", key)


def checkpoint_path(config: VitPoseTrainConfig) -> Path:
    return run_dir(config) / CHECKPOINT_NAME


# --------------------------------------------------------------------------- labels

def face_points_2d(joints: np.ndarray, camera: Camera) -> np.ndarray:
    """COCO's 5 face points of SMPL joints (T, 24, 3) projected by ``camera``: (T, 5, 2) pixels."""
    face = smpl_to_coco(np.asarray(joints, np.float32))[:, :5]
    return camera.project(torch.from_numpy(face))[0].numpy()


def keypoint_labels(clean: RenderOutput, occluded: RenderOutput, face_clean: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ground truth of the 29 keypoints of an (occluded) render of a clip.

    clean: the clip rendered without occlusion; occluded: the same frames with occlusion
    (or ``clean`` itself); face_clean: (T, 5, 2) face points of the clean render
    (``face_points_2d``).  Returns keypoints (T, 29, 2) pixels of ``occluded``,
    visible (T, 29) and in_frame (T, 29) bool.  A face point is visible when the head
    joint is visible in the clean render (as the oracle backend has it) and the point is
    inside the frame and not under an occluder; the face points follow the clip's
    zoom-crop, recovered from the SMPL joints.
    """
    smpl = occluded.joints_2d.numpy()
    zoom, offset = recover_zoom_crop(clean.joints_2d.numpy(), smpl)
    face = (zoom * face_clean + offset).astype(np.float32)
    keypoints = np.concatenate([smpl, face], axis=1)
    height, width = occluded.frames.shape[1:3]
    u, v = keypoints[..., 0], keypoints[..., 1]
    in_frame = np.isfinite(keypoints).all(-1) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
    col = np.where(in_frame, np.nan_to_num(u), 0).astype(np.int64)
    row = np.where(in_frame, np.nan_to_num(v), 0).astype(np.int64)
    frame = np.arange(len(keypoints))[:, None]
    under = occluded.occluder_mask.numpy()[frame, row, col] & in_frame
    head_seen = clean.joint_visible.numpy()[:, JOINT_INDEX["head"]]
    visible = np.concatenate([occluded.joint_visible.numpy(),
                              np.repeat(head_seen[:, None], face.shape[1], axis=1) & ~under[:, 24:]], axis=1)
    return keypoints, visible & in_frame, in_frame


# --------------------------------------------------------------------------- pool

def build_pool(config: VitPoseTrainConfig, *, benchmark: Benchmark | None = None,
               progress: bool = True) -> Path:
    """Render (or reuse) the training pool of a config; return its folder.

    frames.npy: (N, H, W, 3) uint8; labels.npz: keypoints (N, 29, 2) float32 pixels,
    visible and in_frame (N, 29) bool (``keypoint_labels``), clip (N,) int64 row of the
    clip in the benchmark.
    """
    out = stage_dir("vitpose_pool", _pool_key(config))
    if (out / "manifest.json").is_file():
        return out
    from tqdm.auto import tqdm

    benchmark = benchmark or Benchmark.load(_profile_of(config))
    train = benchmark.split("train")
    clip_ids = list(train.index[: config.pool_clips])
    if not clip_ids:
        raise ValueError(f"the train split of {benchmark.folder} is empty: nothing to train on")
    num_frames = int(benchmark.clips["num_frames"].iloc[0])
    per_clip = min(config.frames_per_clip, num_frames)
    size = benchmark.camera(clip_ids[0]).height, benchmark.camera(clip_ids[0]).width
    n = len(clip_ids) * per_clip
    g = torch.Generator().manual_seed(config.seed)
    arrays = benchmark.arrays
    keypoints = np.zeros((n, NUM_KEYPOINTS, 2), np.float32)
    visible = np.zeros((n, NUM_KEYPOINTS), bool)
    in_frame = np.zeros((n, NUM_KEYPOINTS), bool)
    clip_row = np.zeros(n, np.int64)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with torch_threads(1), atomic_path(out / "frames.npy") as tmp:
        frames = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, *size, 3))
        for c, clip_id in enumerate(tqdm(clip_ids, desc="ViTPose pool", unit="clip", file=sys.stderr,
                                         disable=not progress)):
            row = benchmark.clips.index.get_loc(clip_id)
            pick = np.sort(torch.randperm(num_frames, generator=g)[:per_clip].numpy())
            joints, ball, camera = arrays["joints"][row][pick], arrays["ball_centres"][row][pick], \
                benchmark.camera(clip_id)
            clean = render_clip(seed=int(train.loc[clip_id, "seed"]), joints=joints,
                                radii=arrays["radii"][row], camera=camera,
                                ball_centres=None if np.isnan(ball).all() else ball)
            severity = 0.0 if float(torch.rand((), generator=g)) < config.clean_fraction \
                else config.max_occlusion * float(torch.rand((), generator=g))
            occluded = inject_occlusion(clean, severity=severity, generator=g) if severity > 0 else clean
            rows = slice(c * per_clip, (c + 1) * per_clip)
            frames[rows] = occluded.frames.numpy()
            keypoints[rows], visible[rows], in_frame[rows] = keypoint_labels(
                clean, occluded, face_points_2d(joints, camera))
            clip_row[rows] = row
        frames.flush()
        del frames
    with atomic_path(out / "labels.npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, keypoints=keypoints, visible=visible, in_frame=in_frame, clip=clip_row)
    write_json_atomic(out / "manifest.json", {
        "key": _pool_key(config), "frames": n, "clips": len(clip_ids),
        "render_seconds": round(time.perf_counter() - start, 2)})
    return out


def load_pool(folder: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(frames (N, H, W, 3) uint8 memory-mapped, labels) of a pool folder."""
    frames = np.load(folder / "frames.npy", mmap_mode="r")
    with np.load(folder / "labels.npz") as archive:
        labels = {k: archive[k] for k in archive.files}
    return frames, labels


# --------------------------------------------------------------------------- training

def _lr_at(step: int, config: VitPoseTrainConfig) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.lr * 0.5 * (1 + math.cos(math.pi * progress))


def make_batch(frames: np.ndarray, labels: dict[str, np.ndarray], index: np.ndarray, *,
               config: VitPoseTrainConfig, flip: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """images (B, 3, S, S), target heatmaps (B, K, h, h), joint weights (B, K) of pool rows."""
    m = config.model
    index = np.sort(index)
    raw = torch.from_numpy(np.ascontiguousarray(frames[index]))
    images = preprocess(raw, image_size=m.image_size)
    scale = torch.tensor([m.image_size / raw.shape[2], m.image_size / raw.shape[1]])
    keypoints = torch.from_numpy(labels["keypoints"][index]) * scale
    weight = torch.from_numpy(labels["in_frame" if config.supervise_occluded else "visible"][index]).float()
    if flip is not None:
        images, keypoints, weight = flip_batch(images, keypoints, weight, flip)
    target = gaussian_heatmaps(keypoints, heatmap_size=m.heatmap_size, stride=m.stride, sigma=m.sigma)
    return images, target, weight


def train_vitpose(config: VitPoseTrainConfig, *, progress: bool = True,
                  save: bool = True) -> tuple[VitPoseTiny, dict]:
    """Train one run from scratch; write its checkpoint (when ``save``); return the
    backend and the run's statistics (losses, seconds, frames/s)."""
    from tqdm.auto import tqdm

    profile = _profile_of(config)
    start = time.perf_counter()
    pool = build_pool(config, progress=progress)
    render_seconds = time.perf_counter() - start
    frames, labels = load_pool(pool)
    g = torch.Generator().manual_seed(config.seed + 1)
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        net = VitPoseNet(config=config.model)
    decay = [p for p in net.parameters() if p.ndim >= 2]
    no_decay = [p for p in net.parameters() if p.ndim < 2]
    optimiser = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)
    losses: list[float] = []
    order = torch.randperm(len(frames), generator=g)
    cursor = 0
    train_start = time.perf_counter()
    net.train()
    with torch_threads(config.threads), linear_matmuls(net, config.matmul_dtype):
        bar = tqdm(range(config.steps), desc=f"ViTPose-tiny ({profile.name})", unit="step",
                   file=sys.stderr, disable=not progress)
        for step in bar:
            if cursor + config.batch_size > len(order):
                order, cursor = torch.randperm(len(frames), generator=g), 0
            index = order[cursor:cursor + config.batch_size].numpy()
            cursor += config.batch_size
            flip = (torch.rand(len(index), generator=g) < 0.5) if config.flip else None
            images, target, weight = make_batch(frames, labels, index, config=config, flip=flip)
            for group in optimiser.param_groups:
                group["lr"] = _lr_at(step, config)
            loss = heatmap_loss(net(images), target, weight)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optimiser.step()
            losses.append(loss.item())
            if step % 20 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.2e}")
        bar.close()
    train_seconds = time.perf_counter() - train_start
    stats = {"profile": profile.name, "config_hash": config_hash(config), "pool_frames": len(frames),
             "render_seconds": round(render_seconds, 2), "train_seconds": round(train_seconds, 2),
             "train_frames_per_s": round(config.steps * config.batch_size / train_seconds, 1),
             "loss_first": float(np.mean(losses[:10])), "loss_last": float(np.mean(losses[-10:])),
             "losses": [round(x, 8) for x in losses],
             "parameters": sum(p.numel() for p in net.parameters())}
    backend = VitPoseTiny(net=net.eval(), info={"train": dataclasses.asdict(config),
                                                **{k: v for k, v in stats.items() if k != "losses"}})
    if save:
        folder = run_dir(config)
        backend.save(folder / CHECKPOINT_NAME)
        write_json_atomic(folder / "train.json", stats)
    return backend, stats


def _config_of(profile_or_config: Any) -> VitPoseTrainConfig:
    if isinstance(profile_or_config, VitPoseTrainConfig):
        return profile_or_config
    if isinstance(profile_or_config, (str, Path, Profile)):
        return VitPoseTrainConfig.for_profile(
            profile_or_config if isinstance(profile_or_config, Profile) else str(profile_or_config))
    raise TypeError("load_vitpose_tiny needs a profile name (e.g. 'cpu'), a Profile or a "
                    f"VitPoseTrainConfig, got {type(profile_or_config).__name__}")


def load_or_train(profile_or_config: Any = "cpu", *, progress: bool = True) -> VitPoseTiny:
    """The cached checkpoint of a profile's (or a config's) run; trains it first if missing."""
    config = _config_of(profile_or_config)
    path = checkpoint_path(config)
    if not path.is_file():
        print(f"ViTPose-tiny: no checkpoint at {path}; training it now ({config.steps} steps "
              f"of {config.batch_size} frames, profile {Path(config.profile).stem})", file=sys.stderr)
        train_vitpose(config, progress=progress)
    return VitPoseTiny.load(path)


# --------------------------------------------------------------------------- evaluation

def evaluate_vitpose(backend: VitPoseTiny, benchmark: Benchmark, *, split: str = "test",
                     severities: Sequence[float] = (0.0, 0.3, 0.6, 0.9), max_clips: int | None = 40,
                     frame_stride: int = 2, threshold: float = 0.1) -> dict:
    """PCK@``threshold`` and confidence per occlusion severity on the first ``max_clips``
    clips of a split (every ``frame_stride``-th frame), rendered as ``Benchmark.render``.

    Per severity (key ``f"{severity:.2f}"``), over the 29 keypoints: ``pck`` (keypoints
    inside the frame, hidden or not), ``pck_visible``, ``pck_hidden`` (in the frame but
    hidden by the body or an occluder), ``pck_<group>`` per ``JOINT_GROUPS`` and
    ``pck_coco17`` (in-frame), ``confidence`` (mean over in-frame keypoints),
    ``confidence_visible`` / ``confidence_hidden``, ``hidden_fraction``, ``frames`` and
    ``infer_frames_per_s``.
    """
    if isinstance(frame_stride, bool) or not isinstance(frame_stride, int) or frame_stride < 1:
        raise ValueError(f"frame_stride must be a positive int, got {frame_stride!r}")
    clips = list(benchmark.split(split).index[:max_clips])
    keys = [f"{float(s):.2f}" for s in severities]
    parts: dict[str, dict[str, list]] = {k: {"pred": [], "conf": [], "gt": [], "vis": [], "inside": []}
                                         for k in keys}
    infer_seconds = dict.fromkeys(keys, 0.0)
    for clip_id in clips:
        clean = benchmark.render(clip_id)
        face = face_points_2d(benchmark.joints(clip_id), benchmark.camera(clip_id))
        for key, severity in zip(keys, severities):
            out = clean if severity == 0 else benchmark.render(clip_id, occlusion=float(severity))
            gt, vis, inside = (a[::frame_stride] for a in keypoint_labels(clean, out, face))
            start = time.perf_counter()
            keypoints, confidence = backend.predict(out.frames[::frame_stride])
            infer_seconds[key] += time.perf_counter() - start
            for name, value in zip(("pred", "conf", "gt", "vis", "inside"),
                                   (keypoints, confidence, gt, vis, inside)):
                parts[key][name].append(value)
    results: dict[str, dict] = {}
    for key in keys:
        pred, conf, gt, vis, inside = (np.concatenate(parts[key][n])
                                       for n in ("pred", "conf", "gt", "vis", "inside"))
        hidden = inside & ~vis

        def mean(mask: np.ndarray) -> float:
            return float(conf[mask].mean()) if mask.any() else float("nan")

        results[key] = {
            "frames": len(pred), "pck": pck(pred, gt, inside, threshold=threshold),
            "pck_visible": pck(pred, gt, vis, threshold=threshold),
            "pck_hidden": pck(pred, gt, hidden, threshold=threshold),
            **{f"pck_{name}": pck(pred, gt, inside, threshold=threshold, joints=joints)
               for name, joints in JOINT_GROUPS.items()},
            "pck_coco17": pck(pred, gt, inside, threshold=threshold, joints=COCO_FROM_KEYPOINTS),
            "confidence": mean(inside), "confidence_visible": mean(vis),
            "confidence_hidden": mean(hidden),
            "hidden_fraction": float(hidden.sum() / max(1, inside.sum())),
            "infer_frames_per_s": round(len(pred) / max(infer_seconds[key], 1e-9), 1)}
    return results


def evaluation(profile_or_config: Any = "cpu", *, progress: bool = True, **kwargs: Any) -> dict:
    """``evaluate_vitpose`` of a profile's run on its benchmark, cached beside the checkpoint."""
    config = _config_of(profile_or_config)
    backend = load_or_train(config, progress=progress)
    settings = {"split": "test", "severities": (0.0, 0.3, 0.6, 0.9), "max_clips": 40,
                "frame_stride": 2, "threshold": 0.1, **kwargs}
    path = run_dir(config) / f"eval-{config_hash(settings)}.json"
    if path.is_file():
        return json.loads(path.read_text())["results"]
    with torch_threads(config.threads):
        results = evaluate_vitpose(backend, Benchmark.load(_profile_of(config)), **settings)
    write_json_atomic(path, {"settings": settings, "results": results})
    return results


def format_table(results: dict) -> str:
    """A plain-text table of ``evaluate_vitpose``'s results, one row per severity."""
    columns = ["pck", "pck_visible", "pck_hidden", "pck_arms", "pck_legs", "pck_head_torso",
               "pck_coco17", "confidence", "confidence_visible", "confidence_hidden", "hidden_fraction"]
    lines = ["severity " + " ".join(f"{c:>12}" for c in columns)]
    for severity, row in results.items():
        lines.append(f"{severity:>8} " + " ".join(f"{row[c]:12.3f}" for c in columns))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="train (or reuse) ViTPose-tiny; optionally evaluate it")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--steps", type=int, default=None, help="override the profile's steps")
    parser.add_argument("--eval", action="store_true", help="evaluate on the test split")
    args = parser.parse_args(argv)
    config = VitPoseTrainConfig.for_profile(args.profile)
    if args.steps is not None:
        config = dataclasses.replace(config, steps=args.steps)
    backend = load_or_train(config)
    print(json.dumps({k: v for k, v in backend.info.items() if k != "train"}, indent=1))
    if args.eval:
        print(format_table(evaluation(config)))


if __name__ == "__main__":
    main()
