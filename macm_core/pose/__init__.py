"""2D pose estimation: one interface (``base``), COCO-17 joint tables (``coco``), backends.

Every backend is a ``PoseBackend``: ``backend(frames (T, H, W, 3) uint8, *, fps) ->
PoseTrack`` with COCO-17 keypoints in pixels, a confidence per joint, and the number of
people seen per frame.  ``blazepose`` runs mediapipe's BlazePose TFLite models
in-process (no mediapipe import).

Import from the submodules (``from macm_core.pose.base import PoseTrack``); this
package imports nothing, so that reading a saved track does not load a TFLite runtime.
"""
