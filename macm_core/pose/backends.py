"""Pick a pose backend by name, as a profile or the command line names it.

``blazepose`` (real pretrained BlazePose, for real videos), ``vitpose-tiny`` (trained
here on the synthetic renders; the backend of the synthetic benchmark), ``mmpose``
(ViTPose / DWPose from local files, GPU nodes). ``oracle`` needs a synthetic clip, not
a video: build it with ``OracleBackend.for_clip``.
"""
from __future__ import annotations

from ..config import Profile, load_profile
from ..paths import resolve
from .base import PoseBackend

BACKENDS = ("blazepose", "vitpose-tiny", "mmpose", "oracle")


def make_backend(name: str, profile: str | Profile = "cpu") -> PoseBackend:
    """The named backend, configured from the profile (weights from the cache or local files)."""
    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    if name == "blazepose":
        from .blazepose import BlazePose

        return BlazePose()
    if name == "vitpose-tiny":
        from .vitpose_tiny import load_vitpose_tiny

        return load_vitpose_tiny(profile)
    if name == "mmpose":
        from .mmpose_backend import MMPoseBackend, MMPoseConfig

        pose = profile.pose
        paths = {key: str(resolve(value)) if value else None for key, value in (
            ("pose_config", pose.mmpose_config), ("pose_checkpoint", pose.mmpose_checkpoint),
            ("det_config", pose.det_config), ("det_checkpoint", pose.det_checkpoint))}
        return MMPoseBackend(MMPoseConfig(**paths))
    if name == "oracle":
        raise ValueError("the oracle backend reads a synthetic clip's ground truth, not a video: "
                         "use OracleBackend.for_clip(benchmark, clip_id)")
    raise ValueError(f"unknown pose backend {name!r}: choose one of {', '.join(BACKENDS)}")
