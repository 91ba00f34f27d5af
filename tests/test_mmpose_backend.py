"""The mmpose backend: clear errors always; a real run only where mmpose is installed."""
import importlib.util

import numpy as np
import pytest

from macm_core.pose.mmpose_backend import INSTALL_HINT, MMPoseBackend, MMPoseConfig

HAVE_MMPOSE = importlib.util.find_spec("mmpose") is not None


def test_missing_files_name_the_path(tmp_path):
    config = MMPoseConfig(pose_config=str(tmp_path / "vitpose.py"), pose_checkpoint=str(tmp_path / "v.pth"))
    with pytest.raises(FileNotFoundError, match=r"mmpose config .*vitpose\.py' does not exist: put the file there"):
        MMPoseBackend(config)


@pytest.mark.skipif(HAVE_MMPOSE, reason="mmpose is installed here")
def test_missing_package_says_how_to_install(tmp_path):
    for name in ("c.py", "c.pth"):
        (tmp_path / name).write_text("")
    config = MMPoseConfig(pose_config=str(tmp_path / "c.py"), pose_checkpoint=str(tmp_path / "c.pth"))
    with pytest.raises(ImportError) as err:
        MMPoseBackend(config)
    assert str(err.value) == INSTALL_HINT


@pytest.mark.skipif(not HAVE_MMPOSE, reason="mmpose is an optional extra (make mmpose)")
def test_topdown_architecture_from_mmpose_config_runs_on_frames(tmp_path):
    """A top-down heatmap config shipped with mmpose (HRNet-w32, COCO-17), random weights
    saved locally: shapes only.  Not ViTPose here: mmpose's ViTPose configs build their
    backbone from mmpretrain, which imports torchvision, and torchvision does not import
    beside this CPU torch (GPU nodes install both with mim); the backend runs any config."""
    import pathlib

    import mmdet.apis  # noqa: F401  (the backend's person detector, with det_config: importable too)
    import mmpose
    import torch
    from mmpose.apis import init_model

    configs = pathlib.Path(mmpose.__file__).parent / ".mim" / "configs" / "body_2d_keypoint" / "topdown_heatmap" / "coco"
    config = next(configs.glob("td-hm_hrnet-w32_8xb64-210e_coco-256x192.py"))
    model = init_model(str(config), None, device="cpu")
    checkpoint = tmp_path / "random.pth"
    torch.save({"state_dict": model.state_dict()}, checkpoint)
    backend = MMPoseBackend(MMPoseConfig(pose_config=str(config), pose_checkpoint=str(checkpoint)))
    frames = np.random.default_rng(0).integers(0, 255, (2, 256, 192, 3), dtype=np.uint8)
    track = backend(frames, fps=25.0)
    assert track.keypoints.shape == (2, 17, 2) and track.backend == "mmpose"
    assert np.isfinite(track.keypoints).all()
