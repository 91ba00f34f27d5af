"""The interface every pose backend shares: ``PoseTrack`` (what comes out) and
``PoseBackend`` (what a backend is).

Coordinates: ``keypoints[t, j] = (x, y)`` in pixels of the input frames, continuous
image coordinates with the image's top-left corner at (0, 0) and the centre of pixel
(row i, column j) at (j + 0.5, i + 0.5), i.e. a normalised coordinate times the frame
size.  A joint that was not found has confidence 0 and NaN coordinates (the
convention of ``macm_core.pipeline.filters``); a frame with no person has all its
joints so.  A track where nobody is ever found is valid here: downstream code decides
whether that is an error.
"""
from __future__ import annotations

import dataclasses
import math
import os
import zipfile
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from macm_core.cache import atomic_path
from macm_core.pose.coco import COCO_NAMES

NUM_JOINTS = len(COCO_NAMES)
FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class PoseTrack:
    """One person's COCO-17 pose over a clip, as a backend saw it.

    keypoints: float32 (T, 17, 2), pixels (x, y) in COCO-17 order; NaN where not found.
    confidence: float32 (T, 17) in [0, 1]; 0 where not found.
    person_count: int64 (T,), people detected in each frame; -1 where unknown.
    frame_size: (height, width) of the frames in pixels.
    fps: frames per second of the frames.
    backend: name of the backend that made the track (e.g. "blazepose").
    world: float32 (T, 17, 3) metres, or None: 3D joints in the backend's own body-centred
        frame (blazepose: origin between the hips, x right, y down, z away from the
        camera, as mediapipe's world landmarks); NaN where not found.
    """
    keypoints: np.ndarray
    confidence: np.ndarray
    person_count: np.ndarray
    frame_size: tuple[int, int]
    fps: float
    backend: str
    world: np.ndarray | None = None

    def __post_init__(self) -> None:
        keypoints = np.asarray(self.keypoints, dtype=np.float32)
        if keypoints.ndim != 3 or keypoints.shape[1:] != (NUM_JOINTS, 2):
            raise ValueError(f"PoseTrack.keypoints must have shape (T, {NUM_JOINTS}, 2), "
                             f"got {keypoints.shape}")
        num_frames = keypoints.shape[0]
        confidence = np.asarray(self.confidence, dtype=np.float32)
        if confidence.shape != (num_frames, NUM_JOINTS):
            raise ValueError(f"PoseTrack.confidence must have shape ({num_frames}, {NUM_JOINTS}) "
                             f"to match keypoints, got {confidence.shape}")
        if not np.all((confidence >= 0.0) & (confidence <= 1.0)):
            raise ValueError("PoseTrack.confidence must lie in [0, 1] (NaN is not allowed); "
                             f"got values in [{np.nanmin(confidence)}, {np.nanmax(confidence)}]")
        person_count = np.asarray(self.person_count)
        if person_count.shape != (num_frames,) or not np.issubdtype(person_count.dtype, np.integer):
            raise ValueError(f"PoseTrack.person_count must be integers of shape ({num_frames},), "
                             f"got {person_count.dtype} {person_count.shape}")
        if np.any(person_count < -1):
            raise ValueError("PoseTrack.person_count must be >= 0, or -1 for unknown")
        frame_size = tuple(int(v) for v in self.frame_size)
        if len(frame_size) != 2 or min(frame_size) <= 0:
            raise ValueError(f"PoseTrack.frame_size must be (height, width) > 0, got {self.frame_size}")
        fps = float(self.fps)
        if not math.isfinite(fps) or fps <= 0:
            raise ValueError(f"PoseTrack.fps must be a positive number, got {self.fps}")
        if not isinstance(self.backend, str) or not self.backend:
            raise ValueError(f"PoseTrack.backend must be a non-empty name, got {self.backend!r}")
        world = self.world
        if world is not None:
            world = np.asarray(world, dtype=np.float32)
            if world.shape != (num_frames, NUM_JOINTS, 3):
                raise ValueError(f"PoseTrack.world must have shape ({num_frames}, {NUM_JOINTS}, 3) "
                                 f"or be None, got {world.shape}")
        object.__setattr__(self, "keypoints", keypoints)
        object.__setattr__(self, "confidence", confidence)
        object.__setattr__(self, "person_count", person_count.astype(np.int64))
        object.__setattr__(self, "frame_size", frame_size)
        object.__setattr__(self, "fps", fps)
        object.__setattr__(self, "world", world)

    @property
    def num_frames(self) -> int:
        return int(self.keypoints.shape[0])

    def save(self, path: str | os.PathLike) -> Path:
        """Write the track to ``path`` (an .npz file), atomically.  Returns the path."""
        path = Path(path)
        arrays = {
            "format_version": np.array(FORMAT_VERSION),
            "keypoints": self.keypoints, "confidence": self.confidence,
            "person_count": self.person_count,
            "frame_size": np.array(self.frame_size, dtype=np.int64),
            "fps": np.array(self.fps), "backend": np.array(self.backend),
        }
        if self.world is not None:
            arrays["world"] = self.world
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
                np.savez(f, **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PoseTrack":
        """Read a track written by ``save``; a missing or damaged file raises ``ValueError``."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such pose track file; check the path")
        try:
            with np.load(path, allow_pickle=False) as data:
                contents = {key: data[key] for key in data.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
            raise ValueError(f"{path}: not a readable pose track (.npz) file ({err}); "
                             f"re-run the pose stage to rewrite it") from err
        required = {"format_version", "keypoints", "confidence", "person_count", "frame_size",
                    "fps", "backend"}
        missing = sorted(required - contents.keys())
        if missing:
            raise ValueError(f"{path}: pose track file lacks {missing}; it was not written by "
                             f"PoseTrack.save; re-run the pose stage")
        version = int(contents["format_version"])
        if version != FORMAT_VERSION:
            raise ValueError(f"{path}: pose track format version {version}, this code reads "
                             f"version {FORMAT_VERSION}; re-run the pose stage")
        return cls(keypoints=contents["keypoints"], confidence=contents["confidence"],
                   person_count=contents["person_count"],
                   frame_size=tuple(int(v) for v in contents["frame_size"]),
                   fps=float(contents["fps"]), backend=str(contents["backend"]),
                   world=contents.get("world"))


@runtime_checkable
class PoseBackend(Protocol):
    """A pose estimator: ``backend(frames, fps=...) -> PoseTrack``.

    frames: uint8 (T, H, W, 3) RGB.  fps: frames per second (used for tracking and
    copied to the track).
    """
    name: str

    def __call__(self, frames: np.ndarray, *, fps: float) -> PoseTrack: ...


def check_frames(frames: object) -> np.ndarray:
    """Return ``frames`` if it is a uint8 (T, H, W, 3) array, else raise a clear error."""
    if not isinstance(frames, np.ndarray):
        raise TypeError(f"frames must be a numpy array of shape (T, H, W, 3), dtype uint8; "
                        f"got {type(frames).__name__}")
    if frames.dtype != np.uint8:
        raise TypeError(f"frames must have dtype uint8 (RGB 0-255), got {frames.dtype}; convert "
                        f"float images in [0, 1] with (frames * 255).round().astype(np.uint8)")
    if frames.ndim == 3 and frames.shape[-1] == 3:
        raise ValueError(f"frames must have shape (T, H, W, 3), got one image {frames.shape}; "
                         f"pass image[None] for a single frame")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must have shape (T, H, W, 3) (RGB), got {frames.shape}")
    if min(frames.shape[:3]) < 1:
        raise ValueError(f"frames must hold at least one frame of at least 1x1 pixels, "
                         f"got shape {frames.shape}")
    return frames


def check_image(image: object) -> np.ndarray:
    """Return ``image`` if it is one uint8 (H, W, 3) frame, else raise a clear error."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[-1] != 3 or min(image.shape[:2]) < 1:
        described = (f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray)
                     else type(image).__name__)
        raise ValueError(f"image must be one RGB frame, a uint8 array of shape (H, W, 3); "
                         f"got {described}")
    return image


def check_fps(fps: object) -> float:
    """Return ``fps`` as a float if it is a positive finite number, else raise."""
    try:
        value = float(fps)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(f"fps must be a number of frames per second, got {fps!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"fps must be a positive number of frames per second, got {fps!r}")
    return value
