"""ViTPose-tiny: heatmap targets and decoding, PCK, flips, pool, training, checkpoints."""
import dataclasses
import math

import numpy as np
import pytest
import torch

from macm_core.body.skeleton import JOINT_INDEX
from macm_core.pose.base import PoseBackend, PoseTrack
from macm_core.pose.coco import COCO_NAMES
from macm_core.pose.train_vitpose import (VitPoseTrainConfig, build_pool, checkpoint_path,
                                          evaluate_vitpose, face_points_2d, keypoint_labels,
                                          load_pool, train_vitpose)
from macm_core.pose.vitpose_tiny import (FLIP_INDEX, JOINT_GROUPS, KEYPOINT_NAMES, NUM_KEYPOINTS,
                                         VitPoseConfig, VitPoseNet, VitPoseTiny, decode_heatmaps,
                                         flip_batch, gaussian_heatmaps, heatmap_loss,
                                         load_vitpose_tiny, pck, to_coco17)

TINY = VitPoseConfig(image_size=64, patch_size=16, dim=32, depth=1, heads=2, dim_head=16,
                     mlp_dim=64, deconv_channels=16)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    import os

    old = os.environ.get("MACM_CACHE")
    root = tmp_path_factory.mktemp("cache")
    os.environ["MACM_CACHE"] = str(root)
    try:
        yield root
    finally:
        if old is None:
            os.environ.pop("MACM_CACHE")
        else:
            os.environ["MACM_CACHE"] = old


@pytest.fixture(scope="module")
def config():
    base = VitPoseTrainConfig.for_profile("smoke")
    return dataclasses.replace(base, pool_clips=8, frames_per_clip=4, steps=30, batch_size=8)


@pytest.fixture(scope="module")
def trained(cache, config):
    return train_vitpose(config, progress=False)


def test_network_and_backend_shapes():
    torch.manual_seed(0)
    net = VitPoseNet(config=TINY)
    assert TINY.heatmap_size == 16 and TINY.stride == 4.0 and TINY.num_keypoints == 29
    assert net(torch.randn(3, 3, 64, 64)).shape == (3, NUM_KEYPOINTS, 16, 16)
    backend = VitPoseTiny(net=net)
    assert isinstance(backend, PoseBackend)
    frames = torch.randint(0, 256, (5, 64, 64, 3), dtype=torch.uint8)
    keypoints, confidence = backend.predict(frames)
    assert keypoints.shape == (5, NUM_KEYPOINTS, 2) and confidence.shape == (5, NUM_KEYPOINTS)
    assert keypoints.dtype == confidence.dtype == np.float32
    assert ((confidence >= 0) & (confidence <= 1)).all()
    track = backend(frames.numpy(), fps=8)
    assert isinstance(track, PoseTrack) and track.keypoints.shape == (5, 17, 2)
    assert track.frame_size == (64, 64) and track.fps == 8.0 and track.backend == "vitpose-tiny"
    assert (track.person_count == -1).all()  # no detector: the whole frame is the box
    # frames of another size are resized for the network and the keypoints mapped back
    fixed = gaussian_heatmaps(torch.tensor([[[20.0, 36.0]]]).expand(1, NUM_KEYPOINTS, 2),
                              heatmap_size=16, stride=4.0, sigma=2.0)
    backend.heatmaps = lambda frames: fixed.expand(len(frames), -1, -1, -1)
    small, _ = backend.predict(frames[:1])
    wide, _ = backend.predict(torch.zeros(1, 128, 192, 3, dtype=torch.uint8))
    np.testing.assert_allclose(small[0, 0], [20.0, 36.0], atol=0.05)
    np.testing.assert_allclose(wide[0, 0], [60.0, 72.0], atol=0.15)


def test_to_coco17_picks_body_joints_and_face_points():
    keypoints = np.arange(NUM_KEYPOINTS, dtype=np.float32)[None, :, None].repeat(2, axis=2)
    coco, conf = to_coco17(keypoints, np.arange(NUM_KEYPOINTS, dtype=np.float32)[None])
    assert coco.shape == (1, 17, 2) and conf.shape == (1, 17)
    for j, name in enumerate(COCO_NAMES):
        assert KEYPOINT_NAMES[int(conf[0, j])] == name and coco[0, j, 0] == conf[0, j]


def test_joint_groups_and_flip_index_cover_the_keypoints():
    assert sorted(sum(JOINT_GROUPS.values(), ())) == list(range(NUM_KEYPOINTS))
    assert FLIP_INDEX[JOINT_INDEX["left_wrist"]] == JOINT_INDEX["right_wrist"]
    assert FLIP_INDEX[JOINT_INDEX["head"]] == JOINT_INDEX["head"]
    assert KEYPOINT_NAMES[FLIP_INDEX[KEYPOINT_NAMES.index("left_ear")]] == "right_ear"
    assert KEYPOINT_NAMES[FLIP_INDEX[KEYPOINT_NAMES.index("nose")]] == "nose"
    assert all(FLIP_INDEX[FLIP_INDEX[i]] == i for i in range(NUM_KEYPOINTS))


@pytest.mark.parametrize("sigma", [1.0, 2.0, 3.0])
def test_decode_recovers_a_gaussian_peak(sigma):
    g = torch.Generator().manual_seed(1)
    stride, size = 4.0, 32
    # built by hand (not with gaussian_heatmaps): centre in heatmap cells
    centre = 3 + torch.rand(2, 5, 2, generator=g) * (size - 6)
    grid = torch.arange(size, dtype=torch.float32)
    heat = torch.exp(-((grid[None, None, None, :] - centre[..., 0, None, None]) ** 2
                       + (grid[None, None, :, None] - centre[..., 1, None, None]) ** 2) / (2 * sigma ** 2))
    keypoints, confidence = decode_heatmaps(0.8 * heat, stride=stride)
    expected = (centre + 0.5) * stride  # pixel centre convention
    assert (keypoints - expected).norm(dim=-1).max() < 0.5
    assert (keypoints - expected).abs().max() < 0.05  # exact up to float error for a Gaussian
    assert torch.equal(confidence, (0.8 * heat).amax((-2, -1)))  # the sampled peak


def test_target_heatmaps_round_trip_and_skip_missing_joints():
    keypoints = torch.tensor([[[10.3, 50.9], [60.0, 2.2], [float("nan"), 5.0]]])
    heat = gaussian_heatmaps(keypoints, heatmap_size=16, stride=4.0, sigma=2.0)
    assert heat.shape == (1, 3, 16, 16) and heat[0, 2].abs().max() == 0
    decoded, confidence = decode_heatmaps(heat[:, :2], stride=4.0)
    assert (decoded - keypoints[:, :2]).abs().max() < 0.05
    assert confidence.min() > 0.9


def test_confidence_is_the_peak_and_drops_for_a_weak_or_spread_response():
    sharp = gaussian_heatmaps(torch.tensor([[[30.0, 30.0]]]), heatmap_size=16, stride=4.0, sigma=2.0)
    spread = gaussian_heatmaps(torch.tensor([[[30.0, 30.0]]]), heatmap_size=16, stride=4.0, sigma=6.0)
    # what an MSE-trained head outputs when unsure: the average of the targets it might be
    unsure = (sharp + gaussian_heatmaps(torch.tensor([[[10.0, 50.0]]]), heatmap_size=16,
                                        stride=4.0, sigma=2.0)) / 2
    confidences = [float(decode_heatmaps(h, stride=4.0)[1]) for h in (sharp, 0.3 * spread, unsure)]
    assert confidences[0] > 0.95 and confidences[1] < 0.35 and confidences[2] < 0.55
    negative = -torch.ones(1, 1, 8, 8)
    keypoints, confidence = decode_heatmaps(negative, stride=4.0)
    assert float(confidence) == 0.0 and torch.isfinite(keypoints).all()


def test_pck_on_hand_made_cases():
    # a 30 x 40 box: diagonal 50, so the threshold 0.1 is 5 pixels
    gt = np.array([[[0.0, 0.0], [30.0, 40.0], [10.0, 10.0], [20.0, 20.0]]], np.float32)
    pred = gt + np.array([[[4.9, 0.0], [0.0, 5.1], [2.4, 3.2], [100.0, 0.0]]], np.float32)
    visible = np.ones((1, 4), bool)
    assert pck(pred, gt, visible) == pytest.approx(0.5)  # 4.9 and 4.0 are within; 5.1, 100 not
    assert pck(pred, gt, visible, threshold=0.2) == pytest.approx(0.75)
    assert pck(pred, gt, np.array([[True, False, True, False]])) == 1.0
    assert pck(pred, gt, visible, joints=[1, 3]) == 0.0
    assert math.isnan(pck(pred, gt, np.zeros((1, 4), bool)))
    # the box counts hidden joints too; a second frame with a far larger box
    gt2 = np.concatenate([gt, gt * 10])
    pred2 = np.concatenate([pred, gt * 10 + 30])  # 42 px off: within 10% of a 500 px diagonal
    assert pck(pred2, gt2, np.ones((2, 4), bool)) == pytest.approx(6 / 8)


def test_flip_moves_pixels_and_keypoints_together():
    images = torch.zeros(2, 3, 8, 8)
    images[:, :, 5, 1] = 1.0  # row 5, column 1: centre (u, v) = (1.5, 5.5)
    keypoints = torch.zeros(2, NUM_KEYPOINTS, 2)
    keypoints[:, JOINT_INDEX["left_wrist"]] = torch.tensor([1.5, 5.5])
    weight = torch.zeros(2, NUM_KEYPOINTS)
    weight[:, JOINT_INDEX["left_wrist"]] = 1
    flip = torch.tensor([True, False])
    out_images, out_kp, out_w = flip_batch(images, keypoints, weight, flip)
    row, col = (out_images[0, 0] == 1).nonzero()[0].tolist()
    right = JOINT_INDEX["right_wrist"]
    assert out_kp[0, right].tolist() == [col + 0.5, row + 0.5] and out_w[0, right] == 1
    assert out_w[0, JOINT_INDEX["left_wrist"]] == 0
    assert torch.equal(out_images[1], images[1]) and torch.equal(out_kp[1], keypoints[1])
    again = flip_batch(out_images, out_kp, out_w, flip)
    assert all(torch.equal(a, b) for a, b in zip(again, (images, keypoints, weight)))


def test_loss_weights_joints():
    target = torch.zeros(1, 2, 4, 4)
    pred = torch.zeros(1, 2, 4, 4)
    pred[0, 1] = 1.0
    assert float(heatmap_loss(pred, target, torch.tensor([[1.0, 0.0]]))) == 0.0
    assert float(heatmap_loss(pred, target, torch.tensor([[0.0, 1.0]]))) == pytest.approx(0.5)


def test_pool_is_rendered_once_with_labels(cache, trained, config):
    folder = build_pool(config, progress=False)
    frames, labels = load_pool(folder)
    assert frames.dtype == np.uint8 and frames.shape == (32, 64, 64, 3)
    assert labels["keypoints"].shape == (32, NUM_KEYPOINTS, 2)
    assert not (labels["visible"] & ~labels["in_frame"]).any()
    assert labels["in_frame"].mean() > 0.5
    mtime = (folder / "frames.npy").stat().st_mtime_ns
    assert build_pool(config, progress=False) == folder
    assert (folder / "frames.npy").stat().st_mtime_ns == mtime


def test_training_lowers_the_loss_and_checkpoint_round_trips(cache, trained, config):
    backend, stats = trained
    assert len(stats["losses"]) == config.steps
    assert stats["loss_last"] < 0.9 * stats["loss_first"]
    path = checkpoint_path(config)
    assert path.is_file() and (path.parent / "train.json").is_file()
    loaded = VitPoseTiny.load(path)
    frames = torch.from_numpy(np.array(load_pool(build_pool(config))[0][:6]))
    a, b = backend.predict(frames), loaded.predict(frames)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert loaded.info["train"]["steps"] == config.steps


def test_load_reuses_the_checkpoint_and_trains_when_missing(cache, trained, config, capsys):
    mtime = checkpoint_path(config).stat().st_mtime_ns
    load_vitpose_tiny(config, progress=False)
    assert "training it now" not in capsys.readouterr().err
    assert checkpoint_path(config).stat().st_mtime_ns == mtime
    fresh = dataclasses.replace(config, steps=3, warmup_steps=1)
    backend = load_vitpose_tiny(fresh, progress=False)
    assert "no checkpoint" in capsys.readouterr().err and checkpoint_path(fresh).is_file()
    assert backend.info["train"]["steps"] == 3


def test_face_points_follow_the_zoom_crop_and_occluders(cache):
    from macm_core.data.benchmark import Benchmark
    from macm_core.render import zoom_crop

    bench = Benchmark.load("smoke")
    clip_id = bench.split("test").index[0]
    clean = bench.render(clip_id)
    face = face_points_2d(bench.joints(clip_id), bench.camera(clip_id))
    keypoints, visible, in_frame = keypoint_labels(clean, clean, face)
    assert np.allclose(keypoints[:, 24:], face) and np.array_equal(keypoints[:, :24], clean.joints_2d.numpy())
    cropped = zoom_crop(clean, zoom=1.5, left=10.0, top=4.0)
    keypoints, visible, in_frame = keypoint_labels(clean, cropped, face)
    np.testing.assert_allclose(keypoints[:, 24:], (face - [10.0, 4.0]) * 1.5, atol=1e-3)
    assert not (visible & ~in_frame).any()
    # an occluder pixel over the nose in one frame hides it there and nowhere else
    nose = NUM_KEYPOINTS - 5
    t0 = np.flatnonzero(visible[:, nose])[0]
    col, row = np.floor(keypoints[t0, nose]).astype(int)
    mask = torch.zeros_like(cropped.occluder_mask)
    mask[t0, row, col] = True
    _, covered, _ = keypoint_labels(clean, dataclasses.replace(cropped, occluder_mask=mask), face)
    assert not covered[t0, nose] and np.array_equal(covered[t0, :24], visible[t0, :24])
    assert np.array_equal(np.delete(covered, t0, 0), np.delete(visible, t0, 0))


def test_evaluate_reports_pck_and_confidence_per_severity(cache, trained):
    from macm_core.data.benchmark import Benchmark

    backend, _ = trained
    results = evaluate_vitpose(backend, Benchmark.load("smoke"), split="test", severities=(0.0, 0.9),
                               max_clips=2, frame_stride=4)
    assert list(results) == ["0.00", "0.90"]
    for row in results.values():
        assert row["frames"] == 8 and 0 <= row["pck"] <= 1 and 0 <= row["confidence"] <= 1
        assert all(f"pck_{g}" in row for g in [*JOINT_GROUPS, "coco17"])
    assert results["0.90"]["hidden_fraction"] > results["0.00"]["hidden_fraction"]


def test_bad_input_is_a_clear_error(tmp_path):
    backend = VitPoseTiny(net=VitPoseNet(config=TINY))
    with pytest.raises(TypeError, match="uint8"):
        backend(np.zeros((2, 64, 64, 3), np.float32), fps=8)
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        backend(np.zeros((64, 64, 3), np.uint8), fps=8)
    with pytest.raises(ValueError, match="at least one"):
        backend(np.zeros((0, 64, 64, 3), np.uint8), fps=8)
    with pytest.raises(TypeError, match="numpy array or torch tensor"):
        backend([[0]], fps=8)
    with pytest.raises(ValueError, match="fps"):
        backend(np.zeros((1, 64, 64, 3), np.uint8), fps=0)
    with pytest.raises(ValueError, match="29 heatmaps"):
        VitPoseTiny(net=VitPoseNet(config=dataclasses.replace(TINY, num_keypoints=17)))
    with pytest.raises(ValueError, match="to_coco17 needs"):
        to_coco17(np.zeros((2, 24, 2)), np.zeros((2, 24)))
    with pytest.raises(ValueError, match="multiple of patch_size"):
        VitPoseConfig(image_size=100, patch_size=16)
    with pytest.raises(ValueError, match="warmup_steps"):
        VitPoseTrainConfig(steps=10, warmup_steps=10)
    with pytest.raises(ValueError, match="same shape"):
        pck(np.zeros((2, 4, 2)), np.zeros((2, 5, 2)), np.ones((2, 5), bool))
    with pytest.raises(ValueError, match="bool"):
        pck(np.zeros((2, 4, 2)), np.zeros((2, 4, 2)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="threshold"):
        pck(np.zeros((2, 4, 2)), np.zeros((2, 4, 2)), np.ones((2, 4), bool), threshold=0)
    with pytest.raises(FileNotFoundError, match="train one"):
        VitPoseTiny.load(tmp_path / "missing.pt")
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a version"):
        VitPoseTiny.load(tmp_path / "other.pt")
    with pytest.raises(TypeError, match="profile name"):
        load_vitpose_tiny(3)
