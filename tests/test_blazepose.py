"""The BlazePose backend on real images and video, its geometry pieces, the COCO tables,
and the PoseTrack file format."""
import math

import numpy as np
import pytest
import skimage.data
import torch

from macm_core.assets import asset_path
from macm_core.pose import blazepose as bp
from macm_core.pose.base import PoseBackend, PoseTrack
from macm_core.pose.coco import (BLAZEPOSE_NAMES, BLAZEPOSE_TO_COCO, COCO_EDGES, COCO_FLIP,
                                 COCO_INDEX, COCO_NAMES, smpl_to_coco)

J = COCO_INDEX


@pytest.fixture(scope="module")
def backend():
    try:
        return bp.BlazePose(num_threads=1)
    except FileNotFoundError as err:
        pytest.skip(f"BlazePose models not in the cache ({err})")


@pytest.fixture(scope="module")
def cam01():
    from macm_core.pipeline.video import read_video
    try:
        return read_video(asset_path("pose2sim-demo", "videos/cam01.mp4"), max_frames=10)
    except FileNotFoundError as err:
        pytest.skip(f"pose2sim demo video not in the cache ({err})")


# ----------------------------------------------------------------------------- tables

def test_coco_tables():
    assert len(COCO_NAMES) == 17 and len(COCO_EDGES) == 19
    assert [BLAZEPOSE_NAMES[i] for i in BLAZEPOSE_TO_COCO] == list(COCO_NAMES)
    assert BLAZEPOSE_TO_COCO[J["left_shoulder"]] == 11 and BLAZEPOSE_TO_COCO[J["right_ankle"]] == 28
    assert COCO_FLIP[J["left_wrist"]] == J["right_wrist"] and COCO_FLIP[J["nose"]] == J["nose"]


@pytest.mark.parametrize("yaw", [0.0, math.pi / 2])
def test_smpl_to_coco_puts_the_face_in_front_of_the_head(yaw):
    from macm_core.body.skeleton import JOINT_INDEX
    from macm_core.body.smpl import ProceduralSMPL

    orient = torch.tensor([[0.0, yaw, 0.0]])
    joints = ProceduralSMPL()(global_orient=orient).joints[0].detach().numpy()
    coco = smpl_to_coco(joints)
    forward = np.array([math.sin(yaw), 0.0, math.cos(yaw)])  # +z turned about y
    head = joints[JOINT_INDEX["head"]]
    assert np.allclose(coco[J["left_knee"]], joints[JOINT_INDEX["left_knee"]])
    assert (coco[J["nose"]] - head) @ forward > 0.08
    left = coco[J["left_ear"]] - coco[J["right_ear"]]
    assert left @ np.cross([0.0, 1.0, 0.0], forward) > 0.12  # the body's left = up x forward
    assert coco[J["left_eye"]][1] > head[1]
    with pytest.raises(ValueError, match=r"\(\.\.\., 24, 3\)"):
        smpl_to_coco(joints[:17])


# ----------------------------------------------------------------------------- geometry

def test_anchors_match_mediapipe_layout():
    anchors = bp.ssd_anchors()
    assert anchors.shape == (2254, 2)
    # stride 8: 28x28 cells x 2 anchors, then stride 16: 14x14 x 2, then three stride-32 layers share 7x7 x 6
    assert np.allclose(anchors[0], [0.5 / 28, 0.5 / 28]) and np.allclose(anchors[1], anchors[0])
    assert np.allclose(anchors[2], [1.5 / 28, 0.5 / 28])
    assert np.allclose(anchors[56], [0.5 / 28, 1.5 / 28])
    assert np.allclose(anchors[1568], [0.5 / 14, 0.5 / 14])
    assert np.allclose(anchors[1960:1966], [0.5 / 7, 0.5 / 7])
    assert np.allclose(anchors[-1], [6.5 / 7, 6.5 / 7])


def test_roi_from_points_and_its_crop_mapping():
    upright = bp.roi_from_alignment_points(np.array([100.0, 200.0]), np.array([100.0, 120.0]))
    assert upright.rotation == pytest.approx(0.0) and upright.size == pytest.approx(200.0)
    # a body lying with its head at +x is rotated by +90 degrees
    lying = bp.roi_from_alignment_points(np.array([100.0, 200.0]), np.array([180.0, 200.0]))
    assert lying.rotation == pytest.approx(math.pi / 2)
    # the crop's "up" (normalised y = 0) lands on the scale point's side
    top = lying.to_image(np.array([[0.5, 0.0]]))[0]
    assert top == pytest.approx([200.0, 200.0])
    # crop() samples the same mapping: a bright dot ends up at the crop's top centre
    image = np.zeros((400, 400, 3), np.uint8)
    image[195:205, 185:195] = 255
    patch = bp.crop(image, lying, size=100, zero_border=True)
    row, col = np.unravel_index(patch[..., 0].argmax(), patch.shape[:2])
    assert abs(col - 50) <= 3 and row <= 10


def test_weighted_nms_merges_overlaps_and_keeps_separate_people():
    boxes = np.array([[0.1, 0.1, 0.3, 0.3], [0.12, 0.1, 0.32, 0.3], [0.6, 0.6, 0.8, 0.8]])
    scores = np.array([0.9, 0.3, 0.6])
    keypoints = np.repeat(boxes[:, None, :2], 4, axis=1)
    out_scores, out_boxes, out_keypoints = bp.weighted_nms(scores, boxes, keypoints)
    assert out_scores.tolist() == [0.9, 0.6]
    assert out_boxes[0, 0] == pytest.approx((0.1 * 0.9 + 0.12 * 0.3) / 1.2)
    assert out_keypoints[1, 0] == pytest.approx([0.6, 0.6])
    empty = bp.weighted_nms(np.zeros(0), np.zeros((0, 4)), np.zeros((0, 4, 2)))
    assert [a.shape[0] for a in empty] == [0, 0, 0]


# ----------------------------------------------------------------------------- real images

def test_astronaut_arms_and_sides(backend):
    image = skimage.data.astronaut()  # 512x512, the person faces the camera
    assert isinstance(backend, PoseBackend)
    track = backend(image[None], fps=1.0)
    kp, conf = track.keypoints[0], track.confidence[0]
    assert track.person_count.tolist() == [1]
    for name in ("left_shoulder", "right_shoulder", "right_elbow", "nose"):
        assert conf[J[name]] > 0.5, (name, conf[J[name]])
    # the left elbow is behind the helmet she holds: found, but with lower confidence
    for name in ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow"):
        x, y = kp[J[name]]
        assert 30 < x < 400 and 200 < y < 512, (name, x, y)  # on her suit, not the background
    assert kp[J["left_shoulder"], 0] > kp[J["nose"], 0] > kp[J["right_shoulder"], 0]
    assert kp[J["left_elbow"], 0] > kp[J["right_elbow"], 0]
    assert 150 < kp[J["nose"], 0] < 300 and 80 < kp[J["nose"], 1] < 180
    assert track.world is not None and np.isfinite(track.world).all()


def test_video_is_tracked_smoothly(backend, cam01):
    track = backend(cam01.frames, fps=cam01.fps)
    height = cam01.frames.shape[1]
    assert track.frame_size == cam01.frames.shape[1:3] and track.fps == pytest.approx(60.0)
    assert (track.person_count >= 1).all()
    assert ((track.confidence > 0.5).sum(axis=1) >= 12).all()  # a person in every frame
    kp = track.keypoints
    hips_y = kp[:, [J["left_hip"], J["right_hip"]], 1].mean(axis=1)
    assert (kp[:, J["left_ankle"], 1] > hips_y + 0.1 * height).all()
    assert (kp[:, J["right_ankle"], 1] > hips_y + 0.1 * height).all()
    assert (kp[:, J["nose"], 1] < hips_y).all()
    # 60 fps: no joint moves more than 3% of the frame height between frames
    steps = np.linalg.norm(np.diff(kp, axis=0), axis=-1)
    assert steps.max() < 0.03 * height, steps.max()
    # with counting off the detector runs once, then the ROI follows the landmarks
    tracker = bp.BlazePose(count_people=False)
    tracked = tracker(cam01.frames[:4], fps=cam01.fps)
    assert tracked.person_count.tolist()[1:] == [-1, -1, -1] and tracked.person_count[0] >= 1
    assert np.abs(tracked.keypoints - kp[:4]).max() < 0.02 * height


@pytest.mark.parametrize("name", ["coffee", "blank"])
def test_no_person(backend, name):
    image = skimage.data.coffee() if name == "coffee" else np.zeros((240, 320, 3), np.uint8)
    track = backend(np.stack([image, image]), fps=25.0)
    assert track.person_count.tolist() == [0, 0]
    assert (track.confidence < 0.1).all()
    assert np.isnan(track.keypoints).all()


def test_bad_frames_raise_clearly(backend):
    image = skimage.data.astronaut()
    with pytest.raises(TypeError, match="uint8"):
        backend(image[None].astype(np.float32) / 255, fps=1.0)
    with pytest.raises(ValueError, match=r"image\[None\]"):
        backend(image, fps=1.0)
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        backend(np.zeros((1, 8, 8, 4), np.uint8), fps=1.0)
    with pytest.raises(ValueError, match="at least one frame"):
        backend(np.zeros((0, 8, 8, 3), np.uint8), fps=1.0)
    with pytest.raises(TypeError, match="numpy array"):
        backend([image], fps=1.0)
    with pytest.raises(ValueError, match="fps"):
        backend(image[None], fps=0)
    with pytest.raises(ValueError, match=r"uint8 array of shape \(H, W, 3\); got float64"):
        backend.detect(np.zeros((8, 8, 3)))


# ----------------------------------------------------------------------------- PoseTrack

def _track(world: bool) -> PoseTrack:
    rng = np.random.default_rng(0)
    keypoints = rng.uniform(0, 100, (3, 17, 2)).astype(np.float32)
    confidence = rng.uniform(0, 1, (3, 17)).astype(np.float32)
    keypoints[1] = np.nan
    confidence[1] = 0.0
    return PoseTrack(keypoints=keypoints, confidence=confidence, person_count=np.array([1, 0, -1]),
                     frame_size=(120, 160), fps=30.0, backend="test",
                     world=rng.normal(size=(3, 17, 3)) if world else None)


@pytest.mark.parametrize("world", [True, False])
def test_track_save_load_round_trip(tmp_path, world):
    track = _track(world)
    path = track.save(tmp_path / "track.npz")
    assert path.is_file() and [p.name for p in tmp_path.iterdir()] == ["track.npz"]
    loaded = PoseTrack.load(path)
    np.testing.assert_array_equal(loaded.keypoints, track.keypoints)
    np.testing.assert_array_equal(loaded.confidence, track.confidence)
    assert loaded.person_count.tolist() == [1, 0, -1]
    assert (loaded.frame_size, loaded.fps, loaded.backend) == ((120, 160), 30.0, "test")
    if world:
        np.testing.assert_array_equal(loaded.world, track.world)
    else:
        assert loaded.world is None


def test_track_rejects_bad_fields_and_files(tmp_path):
    track = _track(True)
    with pytest.raises(ValueError, match=r"\(T, 17, 2\)"):
        PoseTrack(keypoints=np.zeros((3, 18, 2)), confidence=track.confidence,
                  person_count=track.person_count, frame_size=(1, 1), fps=1.0, backend="x")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        PoseTrack(keypoints=track.keypoints, confidence=track.confidence + 1,
                  person_count=track.person_count, frame_size=(1, 1), fps=1.0, backend="x")
    with pytest.raises(ValueError, match="person_count"):
        PoseTrack(keypoints=track.keypoints, confidence=track.confidence,
                  person_count=np.array([1.0, 0.0, 1.0]), frame_size=(1, 1), fps=1.0, backend="x")
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a readable pose track"):
        PoseTrack.load(broken)
    with pytest.raises(FileNotFoundError, match="no such pose track"):
        PoseTrack.load(tmp_path / "missing.npz")
