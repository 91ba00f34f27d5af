"""Synthetic video of a capsule body: camera, ray-caster, shaded scene, occlusion.

Typical use::

    g = torch.Generator().manual_seed(seed)
    camera = sample_camera(joints, g)                  # joints: (T, 24, 3) metres
    clip = render_scene(joints, camera, generator=g)   # RenderOutput
    clip = inject_occlusion(clip, severity=0.5, generator=g)
"""
from macm_core.render.camera import Camera, CameraSampling, sample_camera
from macm_core.render.capsules import DEFAULT_BONE_RADII, PROP_LABEL_OFFSET, Prop
from macm_core.render.overlay import PALETTE, motion_colours, overlay_body
from macm_core.render.occlusion import OcclusionConfig, inject_occlusion, zoom_crop
from macm_core.render.raycast import RayHits, raycast_capsules
from macm_core.render.scene import RenderOutput, SceneConfig, render_scene

__all__ = [
    "Camera", "CameraSampling", "sample_camera", "DEFAULT_BONE_RADII", "PROP_LABEL_OFFSET",
    "Prop", "OcclusionConfig", "inject_occlusion", "zoom_crop", "RayHits", "raycast_capsules",
    "RenderOutput", "SceneConfig", "render_scene", "PALETTE", "motion_colours", "overlay_body",
]
