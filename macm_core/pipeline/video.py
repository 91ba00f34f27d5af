"""Video decoding and encoding with PyAV.

``read_video`` decodes a file into an RGB uint8 array ``(T, H, W, 3)``; ``video_info``
reads the header only; ``write_video`` encodes an array into an mp4 (H.264, or MPEG-4
Part 2 where libx264 is missing), atomically.  Every way a file can be unreadable
(missing, empty, not a container, no video stream, no decodable frame, a decode error)
raises ``VideoError`` with one line that names the file and the cause.
"""
from __future__ import annotations

import dataclasses
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from macm_core.cache import atomic_path


class VideoError(ValueError):
    """A video file that cannot be read; the message names the file and the cause."""


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """Header facts of a video's first video stream.

    ``num_frames`` is the container's frame count (0 when the container does not
    record it; decode to count); ``duration_s`` is 0.0 when unknown.
    """
    path: Path
    width: int
    height: int
    fps: float
    num_frames: int
    duration_s: float
    codec: str


@dataclasses.dataclass(frozen=True)
class VideoClip:
    """Decoded frames.

    frames: uint8 (T, H, W, 3), RGB.
    fps: frames per second of ``frames`` (the source rate divided by the stride).
    path: the source file.
    indices: int64 (T,), the index of each frame in the source video.
    """
    frames: np.ndarray
    fps: float
    path: Path
    indices: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or "no message"
    return f"{type(err).__name__}: {text}"


def _open(path: str | os.PathLike) -> tuple[Path, av.container.InputContainer]:
    """Open ``path`` for reading, turning every failure into a one-line ``VideoError``."""
    path = Path(path)
    if not path.exists():
        raise VideoError(f"{path}: no such file; check the path (or run `macm data fetch` for demo videos)")
    if not path.is_file():
        raise VideoError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: file is empty (0 bytes); the download or copy did not finish")
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, OSError) as err:
        raise VideoError(f"{path}: not a readable video file ({_one_line(err)}); "
                         f"it may be truncated or not a video") from err
    if not container.streams.video:
        kinds = ", ".join(s.type for s in container.streams) or "none"
        container.close()
        raise VideoError(f"{path}: contains no video stream (streams: {kinds})")
    return path, container


def _stream_fps(stream: av.video.stream.VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def video_info(path: str | os.PathLike) -> VideoInfo:
    """Read the header of ``path`` (no decoding)."""
    path, container = _open(path)
    with container:
        stream = container.streams.video[0]
        duration = 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        return VideoInfo(path=path, width=stream.width, height=stream.height, fps=_stream_fps(stream),
                         num_frames=int(stream.frames or 0), duration_s=duration,
                         codec=stream.codec_context.name)


def _check_read_args(max_frames: int | None, stride: int, resize: tuple[int, int] | None) -> None:
    if max_frames is not None and (not isinstance(max_frames, int) or max_frames < 1):
        raise ValueError(f"max_frames must be a positive int or None, got {max_frames!r}")
    if not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride must be a positive int, got {stride!r}")
    if resize is not None:
        if (len(resize) != 2 or not all(isinstance(v, int) and v > 0 for v in resize)):
            raise ValueError(f"resize must be (height, width) in positive ints or None, got {resize!r}")


def read_video(path: str | os.PathLike, *, max_frames: int | None = None, stride: int = 1,
               resize: tuple[int, int] | None = None) -> VideoClip:
    """Decode ``path`` into RGB frames.

    Keeps source frames 0, stride, 2*stride, ... and stops after ``max_frames`` kept
    frames.  ``resize=(height, width)`` scales each frame while decoding (swscale),
    which keeps memory low for large videos.  Decoding to the end yields fewer frames
    than the header lists only for a truncated file, which raises ``VideoError``.
    Returns a ``VideoClip`` with frames uint8 (T, H, W, 3).
    """
    _check_read_args(max_frames, stride, resize)
    path, container = _open(path)
    frames: list[np.ndarray] = []
    indices: list[int] = []
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = _stream_fps(stream)
        size = {} if resize is None else {"height": resize[0], "width": resize[1]}
        listed = int(stream.frames or 0)
        decoded, reached_end = 0, True
        try:
            for index, frame in enumerate(container.decode(stream)):
                decoded = index + 1
                if index % stride:
                    continue
                frames.append(frame.to_ndarray(format="rgb24", **size))
                indices.append(index)
                if max_frames is not None and len(frames) >= max_frames:
                    reached_end = False
                    break
        except av.FFmpegError as err:
            raise VideoError(f"{path}: decoding failed after {decoded} frame(s) "
                             f"({_one_line(err)}); the file is corrupt or truncated") from err
    if reached_end and 0 < decoded < listed:
        raise VideoError(f"{path}: only {decoded} of the {listed} frames its header lists could be "
                         f"decoded; the file is truncated or corrupt")
    if not frames:
        raise VideoError(f"{path}: no frame could be decoded (the video stream is empty or corrupt)")
    return VideoClip(frames=np.stack(frames), fps=fps / stride if fps else 0.0, path=path,
                     indices=np.asarray(indices, dtype=np.int64))


def _pick_codec() -> str:
    for name in ("libx264", "mpeg4"):
        if name in av.codecs_available:
            return name
    raise RuntimeError("this PyAV build has neither libx264 nor mpeg4; reinstall `av` from PyPI")


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float, *,
                codec: str | None = None) -> Path:
    """Encode uint8 RGB frames (T, H, W, 3) into an mp4 at ``path``, atomically.

    H and W must be even (yuv420p).  ``codec`` defaults to libx264 (else mpeg4).
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    num, height, width, _ = frames.shape
    if num == 0:
        raise ValueError("frames is empty (T = 0); a video needs at least one frame")
    if height % 2 or width % 2:
        raise ValueError(f"frame size {height}x{width} must be even for yuv420p; crop or pad by one pixel")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    path = Path(path)
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_stream(codec or _pick_codec(),
                                          rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for image in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            container.mux(stream.encode(None))
        os.chmod(tmp, 0o644)
    return path
