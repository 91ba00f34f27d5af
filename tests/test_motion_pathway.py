"""The motion pathway end to end: oracle tracks, PCK, fitting, the pose/fit commands."""
import numpy as np
import pytest

from macm_core.cli import main
from macm_core.data.benchmark import Benchmark, build_benchmark
from macm_core.fit.evaluate import cross_view_consistency, fit_accuracy
from macm_core.pose.backends import make_backend
from macm_core.pose.base import PoseTrack
from macm_core.pose.coco import SMPL_TO_COCO_BODY
from macm_core.pose.evaluate import pck_by_severity
from macm_core.pose.oracle import OracleBackend


@pytest.fixture(scope="module")
def smoke():
    return Benchmark(build_benchmark("smoke", progress=False))


@pytest.mark.parametrize("occlusion", [0.0, 1.0])
def test_oracle_keypoints_sit_on_the_rendered_joints_even_after_a_zoom_crop(smoke, occlusion):
    clip_id = smoke.split("test").index[1]
    oracle = OracleBackend.for_clip(smoke, clip_id, occlusion=occlusion)
    track = oracle(fps=8.0)
    rendered = oracle.rendered.joints_2d.numpy()
    for coco, smpl in SMPL_TO_COCO_BODY.items():
        seen = track.confidence[:, coco] > 0
        np.testing.assert_allclose(track.keypoints[seen, coco], rendered[seen, smpl], atol=1e-3)
    assert np.isnan(track.keypoints[track.confidence == 0]).all()


def test_pck_of_the_oracle_is_one_and_falls_for_a_blind_backend(smoke):
    clips = list(smoke.split("test").index[:2])

    def blind(frames, *, fps):
        t = len(frames)
        return PoseTrack(keypoints=np.zeros((t, 17, 2), np.float32), confidence=np.full((t, 17), 0.5, np.float32),
                         person_count=np.ones(t, np.int64), frame_size=frames.shape[1:3], fps=fps, backend="blind")

    table = pck_by_severity({"oracle": None, "blind": blind}, smoke, clips, severities=(0.0,),
                            frame_stride=4).set_index("backend")
    assert table.loc["oracle", "pck_visible"] == 1.0
    assert table.loc["blind", "pck_visible"] < 0.2
    assert table.loc["blind", "confidence_visible"] == pytest.approx(0.5)


def test_fit_to_the_oracle_is_close_to_the_true_body(smoke):
    clip_id = smoke.split("test").index[0]
    table = fit_accuracy(smoke, [clip_id], {"oracle": None}, keyframes=4)
    row = table.iloc[0]
    assert row.frames == 4 and np.isfinite(row.mpjpe_mm)
    assert row.pa_mpjpe_mm < 120, row  # a fitted body, not a random one (a standing body scores ~150+)


def test_cross_view_consistency_is_zero_for_identical_views_and_checks_shapes():
    joints = np.random.default_rng(0).normal(size=(5, 24, 3))
    table = cross_view_consistency({"a": joints, "b": joints * 2.0 + 1.0})
    assert table.loc[0, "pa_mpjpe_mm"] == pytest.approx(0.0, abs=1e-3)
    with pytest.raises(ValueError, match="differ in shape"):
        cross_view_consistency({"a": joints, "b": joints[:3]})


def test_backend_factory_errors():
    with pytest.raises(ValueError, match="unknown pose backend 'posenet'"):
        make_backend("posenet", "smoke")
    with pytest.raises(ValueError, match="OracleBackend.for_clip"):
        make_backend("oracle", "smoke")
    with pytest.raises(FileNotFoundError, match="mmpose config .* does not exist"):
        make_backend("mmpose", "gpu")


def test_pose_and_fit_commands_on_a_real_video(tmp_path, capsys):
    from macm_core.assets import asset_path

    try:
        video = asset_path("pose2sim-demo", "videos/cam01.mp4")
    except FileNotFoundError as err:
        pytest.skip(str(err))
    track_path, fit_path = tmp_path / "track.npz", tmp_path / "fit.npz"
    assert main(["pose", str(video), "--backend", "blazepose", "-o", str(track_path), "--max-frames", "3"]) == 0
    track = PoseTrack.load(track_path)
    assert track.num_frames == 3 and (track.confidence > 0.5).sum(axis=1).min() >= 12
    assert main(["fit", str(track_path), "-o", str(fit_path)]) == 0
    from macm_core.fit import load_fit

    assert np.isfinite(np.asarray(load_fit(fit_path).joints)).all()


def test_fit_command_on_an_empty_track_is_one_line(tmp_path, capsys):
    empty = PoseTrack(keypoints=np.full((4, 17, 2), np.nan, np.float32), confidence=np.zeros((4, 17), np.float32),
                      person_count=np.zeros(4, np.int64), frame_size=(64, 64), fps=8.0, backend="blazepose")
    empty.save(tmp_path / "empty.npz")
    assert main(["fit", str(tmp_path / "empty.npz"), "-o", str(tmp_path / "fit.npz")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("macm: error: no person in the track") and "\n" not in err
    assert not (tmp_path / "fit.npz").exists()
