"""Video decoding: round trips through small videos made here, each kind of bad file, real demos."""
import os
from pathlib import Path

import av
import numpy as np
import pytest

from macm_core.assets import asset_path
from macm_core.pipeline.video import VideoError, read_video, video_info, write_video


def _frames(num_frames: int = 12, height: int = 48, width: int = 64) -> np.ndarray:
    """Smooth moving gradients (codec-friendly), uint8 (T, H, W, 3)."""
    t = np.arange(num_frames)[:, None, None]
    y = np.arange(height)[None, :, None]
    x = np.arange(width)[None, None, :]
    red = (x * 3 + t * 8) % 256
    green = (y * 4 + t * 5) % 256
    blue = np.broadcast_to(np.full_like(x, 128), red.shape)
    return np.stack(np.broadcast_arrays(red, green, blue), axis=-1).astype(np.uint8)


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", _frames(), fps=25.0)


def test_round_trip(clip_path):
    clip = read_video(clip_path)
    assert clip.frames.shape == (12, 48, 64, 3) and clip.frames.dtype == np.uint8
    assert clip.fps == pytest.approx(25.0)
    assert clip.indices.tolist() == list(range(12))
    assert np.abs(clip.frames.astype(int) - _frames().astype(int)).mean() < 8.0
    info = video_info(clip_path)
    assert (info.width, info.height, info.num_frames) == (64, 48, 12)
    assert info.fps == pytest.approx(25.0) and info.duration_s == pytest.approx(12 / 25)


def test_stride_max_frames_and_resize(clip_path):
    clip = read_video(clip_path, stride=3, max_frames=3, resize=(24, 32))
    assert clip.frames.shape == (3, 24, 32, 3)
    assert clip.indices.tolist() == [0, 3, 6]
    assert clip.fps == pytest.approx(25.0 / 3)
    with pytest.raises(ValueError, match="stride"):
        read_video(clip_path, stride=0)
    with pytest.raises(ValueError, match="resize"):
        read_video(clip_path, resize=(24,))


def test_mpeg4_codec_and_bad_write_arguments(tmp_path):
    path = write_video(tmp_path / "m4.mp4", _frames(4), fps=10.0, codec="mpeg4")
    assert video_info(path).codec == "mpeg4" and read_video(path).num_frames == 4
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "odd.mp4", _frames(2, 47, 64), fps=10.0)
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "f.mp4", _frames(2).astype(np.float32), fps=10.0)
    assert not (tmp_path / "odd.mp4").exists() and not (tmp_path / "f.mp4").exists()


def _expect_error(path, cause):
    with pytest.raises(VideoError) as info:
        read_video(path)
    message = str(info.value)
    assert str(path) in message and cause in message and "\n" not in message, message
    return message


def test_missing_empty_and_random_files(tmp_path):
    _expect_error(tmp_path / "nope.mp4", "no such file")
    _expect_error(tmp_path, "not a regular file")
    (tmp_path / "empty.mp4").write_bytes(b"")
    _expect_error(tmp_path / "empty.mp4", "empty (0 bytes)")
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    _expect_error(tmp_path / "noise.mp4", "not a readable video file")
    with pytest.raises(VideoError, match="no such file"):
        video_info(tmp_path / "nope.mp4")


def test_truncated_mp4s(tmp_path, clip_path):
    data = clip_path.read_bytes()  # moov at the end: a cut loses the index
    (tmp_path / "half.mp4").write_bytes(data[: len(data) // 2])
    _expect_error(tmp_path / "half.mp4", "not a readable video file")
    faststart = tmp_path / "faststart.mp4"  # moov first: a cut loses frames at the end
    with av.open(str(faststart), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for image in _frames(20):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    assert read_video(faststart).num_frames == 20
    data = faststart.read_bytes()
    (tmp_path / "tail.mp4").write_bytes(data[:-300])
    _expect_error(tmp_path / "tail.mp4", "frames its header lists could be decoded")
    (tmp_path / "head.mp4").write_bytes(data[: data.find(b"mdat") + 40])
    _expect_error(tmp_path / "head.mp4", "decoding failed after 0 frame(s)")


def test_no_video_stream(tmp_path):
    path = tmp_path / "audio.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for _ in range(4):
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    _expect_error(path, "no video stream (streams: audio)")


def test_zero_decodable_frames(tmp_path):
    path = tmp_path / "blank.avi"  # a video stream header with no frames after it
    with av.open(str(path), "w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        container.start_encoding()
    assert os.path.getsize(path) > 0
    _expect_error(path, "no frame could be decoded")


def _cached(name, member):
    try:
        return asset_path(name, member)
    except FileNotFoundError as err:
        pytest.skip(f"demo video not in the cache ({err})")


@pytest.mark.parametrize("name,member,shape,fps,total", [
    ("sports2d-demo", "demo.mp4", (994, 1768), 30.0, 230),
    ("pose2sim-demo", "videos/cam01.mp4", (1920, 1080), 60.0, 100),
])
def test_real_demo_videos(name, member, shape, fps, total):
    path = _cached(name, member)
    info = video_info(path)
    assert (info.height, info.width) == shape and info.fps == pytest.approx(fps) and info.num_frames == total
    clip = read_video(path, stride=10, resize=(shape[0] // 8, shape[1] // 8))
    assert clip.num_frames == -(-total // 10)
    assert clip.frames.shape[1:] == (shape[0] // 8, shape[1] // 8, 3)
    assert clip.frames.std() > 10  # real image content, not a blank frame
