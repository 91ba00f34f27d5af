"""Tests for macm_core.render: camera, ray-caster, scene, occlusion."""
from __future__ import annotations

import math

import pytest
import torch

from macm_core.body.skeleton import JOINT_INDEX, NUM_JOINTS
from macm_core.render import (
    PROP_LABEL_OFFSET, Camera, Prop, SceneConfig, inject_occlusion, raycast_capsules,
    render_scene, sample_camera,
)

torch.set_num_threads(1)

# a 1.7 m adult in a T-pose, SMPL joint order, metres, Y up, facing +z, left on +x
T_POSE = {
    "pelvis": (0.0, 0.95, 0.0), "left_hip": (0.08, 0.86, 0.0), "right_hip": (-0.08, 0.86, 0.0),
    "spine1": (0.0, 1.06, -0.01), "left_knee": (0.09, 0.49, 0.01), "right_knee": (-0.09, 0.49, 0.01),
    "spine2": (0.0, 1.20, 0.0), "left_ankle": (0.09, 0.08, -0.03), "right_ankle": (-0.09, 0.08, -0.03),
    "spine3": (0.0, 1.26, 0.01), "left_foot": (0.10, 0.02, 0.10), "right_foot": (-0.10, 0.02, 0.10),
    "neck": (0.0, 1.48, -0.02), "left_collar": (0.08, 1.40, 0.0), "right_collar": (-0.08, 1.40, 0.0),
    "head": (0.0, 1.55, 0.03), "left_shoulder": (0.18, 1.42, -0.01),
    "right_shoulder": (-0.18, 1.42, -0.01), "left_elbow": (0.44, 1.42, -0.02),
    "right_elbow": (-0.44, 1.42, -0.02), "left_wrist": (0.68, 1.42, -0.01),
    "right_wrist": (-0.68, 1.42, -0.01), "left_hand": (0.76, 1.42, -0.01),
    "right_hand": (-0.76, 1.42, -0.01),
}
LEFT_ARM = ("left_elbow", "left_wrist", "left_hand")


def t_pose() -> torch.Tensor:
    """(24, 3)"""
    joints = torch.zeros(NUM_JOINTS, 3)
    for name, xyz in T_POSE.items():
        joints[JOINT_INDEX[name]] = torch.tensor(xyz)
    return joints


def waving(num_frames: int) -> torch.Tensor:
    """(T, 24, 3): the T-pose with the left arm swinging up and down about the shoulder."""
    joints = t_pose().repeat(num_frames, 1, 1)
    shoulder = joints[0, JOINT_INDEX["left_shoulder"]]
    for t in range(num_frames):
        angle = math.radians(30 + 60 * math.sin(2 * math.pi * t / num_frames))
        c, s = math.cos(angle), math.sin(angle)
        for name in LEFT_ARM:
            d = joints[t, JOINT_INDEX[name]] - shoulder
            joints[t, JOINT_INDEX[name]] = shoulder + torch.stack([c * d[0] - s * d[1], s * d[0] + c * d[1], d[2]])
    return joints


def front_camera(width: int = 128, height: int = 128) -> Camera:
    return Camera(yaw_deg=0.0, elevation_deg=0.0, distance=3.0, focal_px=120.0, width=width,
                  height=height, target=(0.0, 0.9, 0.0))


def render_seed(joints: torch.Tensor, seed: int, **kwargs):
    g = torch.Generator().manual_seed(seed)
    return render_scene(joints, sample_camera(joints, g), generator=g, **kwargs)


def test_same_seed_same_bytes_other_seed_differs():
    joints = waving(8)
    a, b, c = render_seed(joints, 3), render_seed(joints, 3), render_seed(joints, 4)
    for name in ("frames", "motion_view", "part_mask", "joints_2d", "joint_visible"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert a.frames.dtype == torch.uint8 and a.frames.shape == (8, 128, 128, 3)
    assert not torch.equal(a.frames, c.frames)
    occluded = [inject_occlusion(a, severity=0.7, generator=torch.Generator().manual_seed(9))
                for _ in range(2)]
    assert torch.equal(occluded[0].frames, occluded[1].frames)
    assert torch.equal(occluded[0].joint_occluded, occluded[1].joint_occluded)


def test_projection_matches_hand_computation():
    camera = Camera(yaw_deg=0.0, elevation_deg=0.0, distance=3.0, focal_px=100.0, width=128,
                    height=96, target=(0.0, 1.0, 0.0))
    uv, depth = camera.project(torch.tensor([[[0.3, 1.2, 0.5]]]))
    # camera at (0, 1, 3) looking down -z: x_cam = 0.3, y_cam = -0.2 (y is down), z_cam = 2.5
    assert torch.allclose(uv, torch.tensor([[[100 * 0.3 / 2.5 + 64, 100 * -0.2 / 2.5 + 48]]]), atol=1e-4)
    assert torch.allclose(depth, torch.tensor([[2.5]]), atol=1e-5)
    # yaw 90: the camera sits at +x (the body's left) looking down -x; its right is -z
    side = Camera(yaw_deg=90.0, elevation_deg=0.0, distance=3.0, focal_px=100.0, width=128,
                  height=128, target=(0.0, 1.0, 0.0))
    uv, depth = side.project(torch.tensor([[[0.5, 1.0, -0.4]]]))
    assert torch.allclose(uv, torch.tensor([[[100 * 0.4 / 2.5 + 64, 64.0]]]), atol=1e-4)
    assert torch.allclose(depth, torch.tensor([[2.5]]), atol=1e-5)


def test_raycast_sphere_and_capsule_depth_and_normal():
    camera = front_camera()
    # a sphere of radius 0.2 straight ahead at depth 3, and a capsule lying across the view
    starts = torch.tensor([[[0.0, 0.9, 0.0], [-0.5, 0.3, 0.5]]])
    ends = torch.tensor([[[0.0, 0.9, 0.0], [0.5, 0.3, 0.5]]])
    hits = raycast_capsules(starts, ends, torch.tensor([0.2, 0.1]), camera)
    centre = hits.depth[0, 63:65, 63:65]
    assert torch.allclose(centre, torch.full_like(centre, 2.8), atol=2e-3)
    assert (hits.primitive[0, 63:65, 63:65] == 0).all()
    point = hits.depth[0, 64, 64] * camera.pixel_rays()[64, 64]
    expected = (point - camera.to_camera(starts[0, 0])) / 0.2
    assert torch.allclose(hits.normal[0, 64, 64], expected, atol=1e-3)
    assert hits.normal[0, 64, 64, 2] < -0.99
    uv, depth = camera.project(torch.tensor([[[0.0, 0.3, 0.5]]]))
    row, col = int(uv[0, 0, 1]), int(uv[0, 0, 0])
    assert hits.primitive[0, row, col] == 1
    assert abs(float(hits.depth[0, row, col]) - (2.5 - 0.1)) < 5e-3
    assert hits.primitive[0, 0, 0] == -1 and math.isinf(float(hits.depth[0, 0, 0]))
    # the capsule ends in a half-sphere: hit just inside it, miss just beyond it
    uv, _ = camera.project(torch.tensor([[[0.57, 0.3, 0.5], [0.63, 0.3, 0.5]]]))
    inside, beyond = uv[0]
    assert hits.primitive[0, int(inside[1]), int(inside[0])] == 1
    assert hits.primitive[0, int(beyond[1]), int(beyond[0])] == -1
    chunked = raycast_capsules(starts.repeat(5, 1, 1), ends.repeat(5, 1, 1),
                               torch.tensor([0.2, 0.1]), camera, frame_chunk=2)
    assert torch.equal(chunked.depth, hits.depth.repeat(5, 1, 1))


def test_hand_behind_back_is_not_visible_and_in_front_is():
    def arm_at(z_sign: float) -> torch.Tensor:
        joints = t_pose()
        joints[JOINT_INDEX["left_elbow"]] = torch.tensor([0.24, 1.16, 0.05 * z_sign])
        joints[JOINT_INDEX["left_wrist"]] = torch.tensor([0.08, 1.06, 0.20 * z_sign])
        joints[JOINT_INDEX["left_hand"]] = torch.tensor([0.0, 1.05, 0.24 * z_sign])
        return joints[None]

    g = torch.Generator().manual_seed(0)
    hand, wrist = JOINT_INDEX["left_hand"], JOINT_INDEX["left_wrist"]
    behind = render_scene(arm_at(-1.0), front_camera(), generator=g)
    front = render_scene(arm_at(+1.0), front_camera(), generator=g)
    assert not behind.joint_visible[0, hand] and not behind.joint_visible[0, wrist]
    assert front.joint_visible[0, hand] and front.joint_visible[0, wrist]
    # the torso and the head are visible either way
    for name in ("spine2", "head", "right_hand"):
        assert behind.joint_visible[0, JOINT_INDEX[name]] and front.joint_visible[0, JOINT_INDEX[name]]
    assert not behind.joint_occluded.any()


@pytest.mark.parametrize("style", ["grey", "palette"])
def test_motion_view_differs_from_frame_only_on_the_body(style):
    out = render_seed(waving(4), 1, config=SceneConfig(motion_view=style))
    changed = (out.motion_view != out.frames).any(dim=-1)
    on_body = out.part_mask >= 0
    assert not (changed & ~on_body).any()
    assert changed.sum() > 0.5 * on_body.sum()
    if style == "grey":
        body = out.motion_view[on_body].int()
        assert (body.max(dim=-1).values - body.min(dim=-1).values <= 1).all()


def test_occlusion_severity_zero_changes_nothing_and_one_hides_many_joints():
    joints = waving(16)
    clean = render_seed(joints, 2)
    same = inject_occlusion(clean, severity=0.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(same.frames, clean.frames) and torch.equal(same.joint_visible, clean.joint_visible)
    assert not same.joint_occluded.any()

    shares = []
    for seed in range(4):
        out = inject_occlusion(render_seed(joints, seed), severity=1.0,
                               generator=torch.Generator().manual_seed(seed))
        assert not (out.joint_visible & out.joint_occluded).any()
        assert not torch.equal(out.frames, clean.frames)
        # an occluded joint is under an occluder pixel or outside the frame
        u, v = out.joints_2d[..., 0], out.joints_2d[..., 1]
        inside = (u >= 0) & (u < 128) & (v >= 0) & (v < 128)
        t, j = (out.joint_occluded & inside).nonzero(as_tuple=True)
        assert out.occluder_mask[t, v[t, j].long(), u[t, j].long()].all()
        changed = (out.motion_view != out.frames).any(dim=-1)
        assert not (changed & (out.part_mask < 0)).any()
        shares.append(out.joint_occluded.float().mean().item())
    assert sum(shares) / len(shares) > 0.3, shares


def test_prop_sphere_shows_in_part_mask_at_its_projected_centre():
    joints = waving(4)
    centres = torch.tensor([[-0.15, 0.3 + 0.1 * t, 0.3] for t in range(4)])
    ball = Prop(centers=centres, radius=0.1, color=(0.9, 0.1, 0.1))
    camera = front_camera()
    out = render_scene(joints, camera, generator=torch.Generator().manual_seed(5), props=(ball,))
    uv, _ = camera.project(centres[:, None])
    for t in range(4):
        col, row = int(uv[t, 0, 0]), int(uv[t, 0, 1])
        assert out.part_mask[t, row, col] == PROP_LABEL_OFFSET
        red, green, _ = out.frames[t, row, col].int().tolist()
        assert red > green + 30
    assert torch.equal(out.motion_view[out.part_mask == PROP_LABEL_OFFSET],
                       out.frames[out.part_mask == PROP_LABEL_OFFSET])


def test_rectangular_image_and_joints_outside_the_frame():
    joints = waving(2)
    out = render_seed(joints, 0)
    wide = render_scene(joints, sample_camera(joints, torch.Generator().manual_seed(0), width=160, height=96),
                        generator=torch.Generator().manual_seed(0))
    assert wide.frames.shape == (2, 96, 160, 3) and wide.part_mask.shape == (2, 96, 160)
    u, v = wide.joints_2d[..., 0], wide.joints_2d[..., 1]
    assert ((u > 0) & (u < 160) & (v > 0) & (v < 96)).all()
    assert (wide.part_mask >= 0).float().mean() > 0.02 and out.joint_visible.float().mean() > 0.8
    # a close-up of the chest: the feet fall outside the image and are not visible
    close = Camera(yaw_deg=0.0, elevation_deg=0.0, distance=1.0, focal_px=120.0, width=64,
                   height=64, target=(0.0, 1.3, 0.0))
    near = render_scene(joints, close, generator=torch.Generator().manual_seed(0))
    assert not near.joint_visible[:, JOINT_INDEX["left_foot"]].any()
    assert near.joint_visible[:, JOINT_INDEX["spine3"]].all()


def test_bad_inputs_raise_clear_errors():
    camera, g = front_camera(), torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match=r"\(T, 24, 3\)"):
        render_scene(torch.zeros(4, 23, 3), camera, generator=g)
    with pytest.raises(ValueError, match=r"\(T, 24, 3\)"):
        render_scene(t_pose(), camera, generator=g)
    nan = waving(3)
    nan[1, 5, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        render_scene(nan, camera, generator=g)
    with pytest.raises(ValueError, match="NaN"):
        sample_camera(nan, g)
    for width, height in ((0, 128), (128, -1)):
        with pytest.raises(ValueError, match="positive"):
            Camera(yaw_deg=0.0, elevation_deg=0.0, distance=3.0, focal_px=100.0, width=width,
                   height=height)
        with pytest.raises(ValueError, match="positive"):
            sample_camera(waving(2), g, width=width, height=height)
    with pytest.raises(ValueError, match="radii"):
        render_scene(waving(2), camera, generator=g, radii=torch.full((23,), 0.05))
    with pytest.raises(ValueError, match="frames"):
        render_scene(waving(2), camera, generator=g,
                     props=(Prop(centers=torch.zeros(3, 3), radius=0.1, color=(1.0, 0.0, 0.0)),))
    with pytest.raises(ValueError, match="severity"):
        inject_occlusion(render_scene(waving(1), camera, generator=g), severity=1.5, generator=g)
    with pytest.raises(TypeError, match="Generator"):
        render_scene(waving(1), camera, generator=0)


def test_overlay_of_the_true_body_reproduces_the_motion_view():
    """Two paths to the same picture: render_scene's motion view vs overlay_body."""
    from macm_core.data.synth_clip import make_clip, render_clip
    from macm_core.render import overlay_body

    clip = make_clip(5, num_frames=4, fps=8.0, image_size=64)
    rendered = render_clip(seed=clip.seed, joints=clip.joints, radii=clip.radii, camera=clip.camera)
    view, mask = overlay_body(rendered.frames, torch.from_numpy(clip.joints), clip.camera,
                              radii=torch.from_numpy(clip.radii))
    assert torch.equal(mask, rendered.part_mask >= 0)
    assert torch.equal(view, rendered.motion_view)
    with pytest.raises(ValueError, match="joints must be"):
        overlay_body(rendered.frames, torch.zeros(3, 24, 3), clip.camera)
