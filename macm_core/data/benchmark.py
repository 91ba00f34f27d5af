"""HMI-Synth: the synthetic fine-grained motion benchmark, built from a profile.

``build_benchmark(profile)`` writes, under the artifact cache (stage ``hmi_synth``,
keyed by the profile's data config):

- ``clips.parquet``: one row per clip: id, split, seed, fine and coarse caption, camera;
- ``segments.parquet``: the structured labels, one row per labelled segment;
- ``qa.parquet``: question-answer pairs (open-ended and true/false);
- ``motion.npz``: SMPL-format parameters, posed joints, bone radii and ball centres
  of every clip, in the row order of ``clips.parquet``;
- ``manifest.json``: the config, the counts and the build time (written last: its
  presence marks a finished build).

Splits are disjoint by seed: clip ``i`` of split ``k`` has seed
``base * 10**7 + k * 10**6 + i``.  ``train``, ``val`` and ``test`` never contain the
held-out (part, action) pairs; ``test_heldout`` clips each contain at least one.
Frames are not stored: ``Benchmark.render`` renders any clip on demand, identically
every time.
"""
from __future__ import annotations

import functools
import json
import sys
import time
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..body.smpl import ProceduralSMPL
from ..cache import atomic_path, source_digest, stage_dir, write_json_atomic
from ..config import DataConfig, Profile, load_profile
from ..determinism import torch_threads
from ..render import Camera, RenderOutput
from .captions import coarse_caption, fine_caption
from .qa import make_qa
from .synth_clip import SynthClip, make_clip, render_clip

BENCHMARK_VERSION = 1
SEED_STRIDE = 1_000_000


@dataclass(frozen=True)
class SplitSpec:
    name: str
    size: int
    index: int
    held_out: str  # "exclude" or "require"


def split_specs(data: DataConfig) -> list[SplitSpec]:
    return [SplitSpec("train", data.num_train, 0, "exclude"),
            SplitSpec("val", data.num_val, 1, "exclude"),
            SplitSpec("test", data.num_test, 2, "exclude"),
            SplitSpec("test_heldout", data.num_heldout, 3, "require")]


def clip_seed(base_seed: int, split: SplitSpec, i: int) -> int:
    if not 0 <= i < SEED_STRIDE:
        raise ValueError(f"a split holds at most {SEED_STRIDE} clips, got index {i}")
    return base_seed * 10 * SEED_STRIDE + split.index * SEED_STRIDE + i


def _key(profile: Profile) -> dict:
    return {"version": BENCHMARK_VERSION, "seed": profile.seed, "data": asdict(profile.data),
            "source": source_digest("data", "body", "render")}


def benchmark_dir(profile: Profile) -> Path:
    return stage_dir("hmi_synth", _key(profile))


def _camera_row(camera: Camera) -> dict:
    return {"cam_yaw_deg": camera.yaw_deg, "cam_elevation_deg": camera.elevation_deg,
            "cam_distance": camera.distance, "cam_focal_px": camera.focal_px,
            "cam_width": camera.width, "cam_height": camera.height,
            "cam_target_x": camera.target[0], "cam_target_y": camera.target[1],
            "cam_target_z": camera.target[2]}


def _camera_of(row: pd.Series) -> Camera:
    return Camera(yaw_deg=float(row.cam_yaw_deg), elevation_deg=float(row.cam_elevation_deg),
                  distance=float(row.cam_distance), focal_px=float(row.cam_focal_px),
                  width=int(row.cam_width), height=int(row.cam_height),
                  target=(float(row.cam_target_x), float(row.cam_target_y), float(row.cam_target_z)))


def _rows_of(clip_id: str, split: str, clip: SynthClip) -> tuple[dict, list[dict], list[dict]]:
    segments = clip.motion.segments
    clip_row = {"clip_id": clip_id, "split": split, "seed": clip.seed,
                "num_frames": clip.motion.num_frames, "fps": clip.motion.fps,
                "num_segments": len(segments), "has_ball": clip.ball_centres is not None,
                "caption": fine_caption(segments, seed=clip.seed),
                "coarse_caption": coarse_caption(segments, seed=clip.seed),
                **_camera_row(clip.camera)}
    segment_rows = [{"clip_id": clip_id, "segment": k, "part": s.part, "side": s.side,
                     "action": s.action, "direction": s.direction, "repetitions": s.repetitions,
                     "speed": s.speed, "start_frame": s.start_frame, "end_frame": s.end_frame}
                    for k, s in enumerate(segments)]
    qa_rows = [{"clip_id": clip_id, "kind": q.kind, "question": q.question, "answer": q.answer,
                "segment": q.segment, "corruption": q.corruption}
               for q in make_qa(segments, seed=clip.seed)]
    return clip_row, segment_rows, qa_rows


def build_benchmark(profile: str | Profile = "cpu", *, force: bool = False,
                    progress: bool = True) -> Path:
    """Build (or reuse) the benchmark of a profile; return its folder.

    The clips are made in ``profile.threads`` spawned one-thread processes (each clip
    depends only on its seed, so the benchmark is the same whatever their number)."""
    profile = load_profile(profile) if not isinstance(profile, Profile) else profile
    out = benchmark_dir(profile)
    if (out / "manifest.json").is_file() and not force:
        return out
    with torch_threads(1):
        _build(profile, out, progress=progress, workers=profile.threads)
    return out


_ARRAY_NAMES = ("global_orient", "body_pose", "transl", "betas", "joints", "radii", "ball_centres")
CLIPS_PER_TASK = 50  # a worker's share of the clips, handed out in tasks of this many


@functools.lru_cache(maxsize=1)
def _body() -> ProceduralSMPL:
    """The body model, built once per process (~50 ms), shared by all its tasks as the serial build shared it."""
    return ProceduralSMPL()


def _make_clips(data: DataConfig, base_seed: int, tasks: list[tuple[SplitSpec, int]]) -> list[tuple]:
    """(clip row, segment rows, QA rows, arrays) of the clips ``tasks`` ((split, index) each)."""
    body = _body()
    made = []
    for spec, i in tasks:
        clip = make_clip(clip_seed(base_seed, spec, i), num_frames=data.num_frames,
                         fps=data.fps, image_size=data.image_size,
                         held_out_pairs=data.held_out_pairs, held_out=spec.held_out, body=body)
        clip_row, segment_rows, qa_rows = _rows_of(f"{spec.name}-{i:05d}", spec.name, clip)
        motion, ball = clip.motion, clip.ball_centres
        arrays = {"global_orient": motion.global_orient, "body_pose": motion.body_pose, "transl": motion.transl,
                  "betas": motion.betas, "joints": clip.joints, "radii": clip.radii,
                  "ball_centres": ball if ball is not None else np.full((data.num_frames, 3), np.nan, np.float32)}
        made.append((clip_row, segment_rows, qa_rows, {k: v.astype(np.float32) for k, v in arrays.items()}))
    return made


def _build(profile: Profile, out: Path, *, progress: bool, workers: int = 1) -> None:
    from concurrent.futures import ProcessPoolExecutor

    from tqdm.auto import tqdm

    from ..determinism import spawned_with_threads

    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)
    start = time.perf_counter()
    data, specs = profile.data, split_specs(profile.data)
    every = [(spec, i) for spec in specs for i in range(spec.size)]
    tasks = [every[k:k + CLIPS_PER_TASK] for k in range(0, len(every), CLIPS_PER_TASK)]
    clips, segments, qa = [], [], []
    arrays: dict[str, list[np.ndarray]] = {k: [] for k in _ARRAY_NAMES}
    bar = tqdm(total=len(every), desc=f"HMI-Synth ({profile.name})", unit="clip", file=sys.stderr,
               disable=not progress)

    def add(made: list[tuple]) -> None:
        for clip_row, segment_rows, qa_rows, clip_arrays in made:
            clips.append(clip_row)
            segments.extend(segment_rows)
            qa.extend(qa_rows)
            for name in _ARRAY_NAMES:
                arrays[name].append(clip_arrays[name])
        bar.update(len(made))

    if workers <= 1 or len(tasks) == 1:
        for task in tasks:
            add(_make_clips(data, profile.seed, task))
    else:
        with spawned_with_threads(1) as context, \
                ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=context) as pool:
            for made in pool.map(_make_clips, [data] * len(tasks), [profile.seed] * len(tasks), tasks):
                add(made)  # in order
    bar.close()
    for name, rows in (("clips", clips), ("segments", segments), ("qa", qa)):
        with atomic_path(out / f"{name}.parquet") as tmp:
            pd.DataFrame(rows).to_parquet(tmp, index=False)
    with atomic_path(out / "motion.npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **{k: np.stack(v) for k, v in arrays.items()})
    write_json_atomic(out / "manifest.json", {
        "key": _key(profile), "profile": profile.name,
        "counts": {s.name: s.size for s in specs}, "segments": len(segments), "qa": len(qa),
        "build_seconds": round(time.perf_counter() - start, 2)})


class Benchmark:
    """A built HMI-Synth benchmark: label tables, motion arrays, frames on demand."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not (self.folder / "manifest.json").is_file():
            raise FileNotFoundError(
                f"{self.folder} holds no finished HMI-Synth build (no manifest.json): "
                "run `macm data build --profile P` first")
        self.manifest = json.loads((self.folder / "manifest.json").read_text())
        self.clips = pd.read_parquet(self.folder / "clips.parquet").set_index("clip_id")
        self.segments = pd.read_parquet(self.folder / "segments.parquet")
        self.qa = pd.read_parquet(self.folder / "qa.parquet")
        self._row = {clip_id: i for i, clip_id in enumerate(self.clips.index)}

    @classmethod
    def load(cls, profile: str | Profile = "cpu", *, build: bool = True) -> "Benchmark":
        """The benchmark of a profile, built first when it is not in the cache yet."""
        profile = load_profile(profile) if not isinstance(profile, Profile) else profile
        folder = build_benchmark(profile) if build else benchmark_dir(profile)
        return cls(folder)

    @cached_property
    def arrays(self) -> dict[str, np.ndarray]:
        with np.load(self.folder / "motion.npz") as archive:
            return {k: archive[k] for k in archive.files}

    def split(self, name: str) -> pd.DataFrame:
        known = self.clips["split"].unique().tolist()
        if name not in known:
            raise KeyError(f"no split {name!r}: the splits are {', '.join(known)}")
        return self.clips[self.clips["split"] == name]

    def labels(self, clip_id: str) -> pd.DataFrame:
        return self.segments[self.segments["clip_id"] == clip_id].sort_values("segment")

    def camera(self, clip_id: str) -> Camera:
        return _camera_of(self.clips.loc[clip_id])

    def joints(self, clip_id: str) -> np.ndarray:
        """(T, 24, 3) posed joints in world metres."""
        return self.arrays["joints"][self._row[clip_id]]

    def joints_2d(self, clip_id: str) -> np.ndarray:
        """(T, 24, 2) ground-truth joints projected to pixels (no rendering needed)."""
        uv, _ = self.camera(clip_id).project(torch.from_numpy(self.joints(clip_id)))
        return uv.numpy()

    def render(self, clip_id: str, *, occlusion: float = 0.0, motion_view: str = "grey") -> RenderOutput:
        """The clip's frames and motion view, rendered on demand (deterministic)."""
        if clip_id not in self._row:
            raise KeyError(f"no clip {clip_id!r} in {self.folder}")
        i = self._row[clip_id]
        ball = self.arrays["ball_centres"][i]
        return render_clip(seed=int(self.clips.loc[clip_id, "seed"]), joints=self.arrays["joints"][i],
                           radii=self.arrays["radii"][i], camera=self.camera(clip_id),
                           ball_centres=None if np.isnan(ball).all() else ball,
                           occlusion=occlusion, motion_view=motion_view)
