"""BlazePose (mediapipe Pose, "full" model) run in-process from its two TFLite files.

mediapipe itself is not imported (it pins numpy<2); the graph around the two models
is re-written here in numpy, step by step, from mediapipe's public graph files
(github.com/google-ai-edge/mediapipe, mediapipe/modules/pose_detection/ and
mediapipe/modules/pose_landmark/) and the C++ calculators they name:

1. detector (pose_detection_cpu.pbtxt): the frame letterboxed to 224x224 (zero
   border), values in [-1, 1]; 2254 SSD anchors (SsdAnchorsCalculator); boxes and 4
   keypoints decoded against them, sigmoid scores (TensorsToDetectionsCalculator);
   weighted non-max suppression at IoU 0.3 (NonMaxSuppressionCalculator, WEIGHTED).
2. ROI (pose_detection_to_roi.pbtxt): centre = keypoint 0 (hip centre), size = twice
   the distance to keypoint 1 (the full-body size/rotation point), rotation so that
   keypoint 0 -> 1 points up (AlignmentPointsRectsCalculator, target angle 90 deg),
   then scaled 1.25 and squared (RectTransformationCalculator).
3. landmarks (pose_landmark_by_roi_cpu.pbtxt, ..._post_processing.pbtxt): the rotated
   ROI cropped to 256x256 (border replicated), values in [0, 1]; 39 landmarks x
   (x, y, z, visibility, presence) in crop pixels, /256, sigmoid on visibility and
   presence (TensorsToLandmarksCalculator); x, y refined from the 64x64 heatmap with a
   7x7 kernel (RefineLandmarksFromHeatmapCalculator); projected back through the ROI
   (LandmarkProjectionCalculator).  The pose-presence output gates the result (0.5).
   World landmarks: 39 x 3 metres, rotated by the ROI (WorldLandmarkProjectionCalculator).
4. tracking (pose_landmark_cpu.pbtxt, pose_landmarks_to_roi.pbtxt): the next frame's
   ROI comes from auxiliary landmarks 33 (centre) and 34 (size/rotation) the same way
   as from a detection; the detector runs again once the pose presence falls below
   ``min_tracking_confidence``.  mediapipe's landmark smoothing filter is not applied.

Thresholds ``min_detection_confidence`` / ``min_tracking_confidence`` default to 0.5 as
in mediapipe/python/solutions/pose.py, which sets the detector's min_score_thresh
(0.2 in the graph file) and the presence threshold from them.
"""
from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import numpy as np

from macm_core.pose.base import PoseTrack, check_fps, check_frames, check_image
from macm_core.pose.coco import BLAZEPOSE_TO_COCO

DETECTOR_MEMBER = "pose_detection/pose_detection.tflite"
LANDMARK_MEMBER = "pose_landmark/pose_landmark_full.tflite"

# pose_detection_cpu.pbtxt: ImageToTensorCalculator, SsdAnchorsCalculator,
# TensorsToDetectionsCalculator and NonMaxSuppressionCalculator options.
DETECTOR_SIZE = 224
ANCHOR_STRIDES = (8, 16, 32, 32, 32)
ANCHOR_OFFSET = 0.5
ANCHOR_ASPECT_RATIOS = (1.0,)
ANCHOR_INTERPOLATED_SCALE_ASPECT_RATIO = 1.0  # the proto's default: one extra anchor per layer
NUM_ANCHORS = 2254
NUM_DETECTION_KEYPOINTS = 4
DETECTION_COORD_SCALE = 224.0      # x_scale = y_scale = w_scale = h_scale
SCORE_CLIPPING_THRESH = 100.0
NMS_MIN_SUPPRESSION_THRESHOLD = 0.3

# pose_detection_to_roi.pbtxt / pose_landmarks_to_roi.pbtxt (full-body versions).
ROI_TARGET_ANGLE = math.pi / 2     # rotation_vector_target_angle_degrees: 90
ROI_SCALE = 1.25                   # scale_x = scale_y = 1.25, square_long

# pose_landmark_by_roi_cpu.pbtxt and its post-processing graph.
LANDMARK_SIZE = 256
NUM_LANDMARKS = 39                 # 33 pose landmarks + 6 auxiliary (33, 34 give the ROI)
NUM_POSE_LANDMARKS = 33
HEATMAP_KERNEL_SIZE = 7
HEATMAP_MIN_CONFIDENCE_TO_REFINE = 0.5  # RefineLandmarksFromHeatmapCalculatorOptions default


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, dtype=np.float64), -80.0, 80.0)))


def _normalize_radians(angle: float) -> float:
    """Wrap an angle into [-pi, pi), as mediapipe's NormalizeRadians."""
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


# ----------------------------------------------------------------------------- anchors

def ssd_anchors() -> np.ndarray:
    """The detector's anchor centres, float32 (2254, 2) as (x, y) in [0, 1] of the input.

    SsdAnchorsCalculator with fixed_anchor_size: every anchor has width = height = 1,
    so only the centres matter.  Layers with equal strides share one feature map and
    stack their anchors per cell; cells run row by row.
    """
    centres = []
    layer = 0
    while layer < len(ANCHOR_STRIDES):
        stride = ANCHOR_STRIDES[layer]
        per_cell = 0
        while layer < len(ANCHOR_STRIDES) and ANCHOR_STRIDES[layer] == stride:
            per_cell += len(ANCHOR_ASPECT_RATIOS) + (ANCHOR_INTERPOLATED_SCALE_ASPECT_RATIO > 0)
            layer += 1
        cells = math.ceil(DETECTOR_SIZE / stride)
        y, x = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        grid = np.stack([(x.ravel() + ANCHOR_OFFSET) / cells, (y.ravel() + ANCHOR_OFFSET) / cells], axis=1)
        centres.append(np.repeat(grid, per_cell, axis=0))
    anchors = np.concatenate(centres).astype(np.float32)
    assert anchors.shape == (NUM_ANCHORS, 2), anchors.shape
    return anchors


# ----------------------------------------------------------------------------- geometry

@dataclasses.dataclass(frozen=True)
class Roi:
    """A rotated square region of a frame (mediapipe's NormalizedRect, in pixels).

    center: (x, y) pixels.  size: side length in pixels.  rotation: radians; a point at
    offset (dx, dy) from the centre in the crop lies at center + R(rotation) (dx, dy)
    in the frame, R = [[cos, -sin], [sin, cos]] (y down).
    """
    center: tuple[float, float]
    size: float
    rotation: float

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Map points normalised to the crop ((N, 2) in [0, 1]) to frame pixels (N, 2)."""
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        offset = (np.asarray(points, dtype=np.float64) - 0.5) * self.size
        x = c * offset[:, 0] - s * offset[:, 1] + self.center[0]
        y = s * offset[:, 0] + c * offset[:, 1] + self.center[1]
        return np.stack([x, y], axis=1)


def roi_from_alignment_points(center: np.ndarray, scale_point: np.ndarray) -> Roi:
    """The ROI from a centre point and a size/rotation point (both (2,) pixels).

    AlignmentPointsRectsCalculator (size = twice the distance, rotation so that
    centre -> scale point points up) followed by RectTransformationCalculator
    (x1.25, square).
    """
    (x0, y0), (x1, y1) = np.asarray(center, float), np.asarray(scale_point, float)
    size = 2.0 * math.hypot(x1 - x0, y1 - y0) * ROI_SCALE
    rotation = _normalize_radians(ROI_TARGET_ANGLE - math.atan2(-(y1 - y0), x1 - x0))
    return Roi(center=(float(x0), float(y0)), size=float(size), rotation=float(rotation))


def crop(image: np.ndarray, roi: Roi, *, size: int, zero_border: bool) -> np.ndarray:
    """Bilinearly sample the rotated square ``roi`` of ``image`` into a square grid.

    image: uint8 (H, W, 3).  Returns float32 (size, size, 3) in 0..255.  Outside the
    frame the samples are 0 (``zero_border``) or the nearest edge pixel (replicate).
    """
    height, width = image.shape[:2]
    c, s = math.cos(roi.rotation), math.sin(roi.rotation)
    offsets = (np.arange(size, dtype=np.float32) + 0.5) * (roi.size / size) - roi.size / 2
    ox, oy = offsets[None, :], offsets[:, None]                 # crop column, crop row
    px = c * ox - s * oy + (roi.center[0] - 0.5)                  # (size, size) pixel-index space
    py = s * ox + c * oy + (roi.center[1] - 0.5)
    x0, y0 = np.floor(px), np.floor(py)
    wx, wy = (px - x0)[..., None], (py - y0)[..., None]
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    flat = image.reshape(-1, 3)
    out = np.zeros((size, size, 3), dtype=np.float32)
    for dy, dx, weight in ((0, 0, (1 - wx) * (1 - wy)), (0, 1, wx * (1 - wy)),
                           (1, 0, (1 - wx) * wy), (1, 1, wx * wy)):
        xs, ys = x0 + dx, y0 + dy
        pixels = np.take(flat, np.clip(ys, 0, height - 1) * width + np.clip(xs, 0, width - 1), axis=0)
        if zero_border:
            weight = weight * ((xs >= 0) & (xs < width) & (ys >= 0) & (ys < height))[..., None]
        out += weight * pixels
    return out


# ----------------------------------------------------------------------------- detector

@dataclasses.dataclass(frozen=True)
class Detection:
    """One person found by the detector, in frame pixels.

    score: sigmoid score.  box: (4,) xmin, ymin, xmax, ymax of the face box.
    keypoints: (4, 2) (x, y): hip centre, full-body size/rotation point, shoulder
    centre, upper-body size/rotation point.
    """
    score: float
    box: np.ndarray
    keypoints: np.ndarray

    def roi(self) -> Roi:
        """The landmark model's ROI for this person (pose_detection_to_roi.pbtxt)."""
        return roi_from_alignment_points(self.keypoints[0], self.keypoints[1])


def decode_detections(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, *,
                      min_score: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode the detector's raw outputs (TensorsToDetectionsCalculator, XYWH order).

    raw_boxes: (2254, 12); raw_scores: (2254,) logits; anchors: (2254, 2).
    Returns the detections scoring >= ``min_score``: scores (K,), boxes (K, 4) as
    xmin, ymin, xmax, ymax and keypoints (K, 4, 2), all in [0, 1] of the detector input.
    """
    scores = _sigmoid(np.clip(raw_scores, -SCORE_CLIPPING_THRESH, SCORE_CLIPPING_THRESH))
    values = raw_boxes / DETECTION_COORD_SCALE
    centre = values[:, 0:2] + anchors
    half = values[:, 2:4] / 2
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    keypoints = values[:, 4:].reshape(-1, NUM_DETECTION_KEYPOINTS, 2) + anchors[:, None, :]
    keep = (scores >= min_score) & np.all(half >= 0, axis=1)
    return scores[keep], boxes[keep], keypoints[keep]


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one box (4,) with boxes (K, 4), xmin ymin xmax ymax."""
    lo = np.maximum(box[:2], boxes[:, :2])
    hi = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(scores: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted non-max suppression (NonMaxSuppressionCalculator, WEIGHTED, IoU 0.3).

    Takes the best remaining detection, gathers every remaining one overlapping it by
    IoU > 0.3 (itself included), and outputs the score-weighted mean of their boxes and
    keypoints with the best one's score.  Returns scores (M,), boxes (M, 4),
    keypoints (M, 4, 2), best first.
    """
    order = np.argsort(-scores, kind="stable")
    out_scores, out_boxes, out_keypoints = [], [], []
    while order.size:
        best = order[0]
        overlap = _iou(boxes[best], boxes[order]) > NMS_MIN_SUPPRESSION_THRESHOLD
        overlap[0] = True  # the best one always joins its own group (even a zero-area box)
        group = order[overlap]
        weights = scores[group][:, None]
        total = weights.sum()
        out_scores.append(scores[best])
        out_boxes.append((boxes[group] * weights).sum(axis=0) / total)
        out_keypoints.append((keypoints[group] * weights[:, :, None]).sum(axis=0) / total)
        order = order[~overlap]
    if not out_scores:
        return (np.zeros(0, np.float32), np.zeros((0, 4), np.float32),
                np.zeros((0, NUM_DETECTION_KEYPOINTS, 2), np.float32))
    return np.array(out_scores), np.stack(out_boxes), np.stack(out_keypoints)


# ----------------------------------------------------------------------------- landmarks

@dataclasses.dataclass(frozen=True)
class Landmarks:
    """The landmark model's output for one ROI, in frame pixels.

    points: float32 (39, 3): x, y in pixels; z in the same pixel scale (depth relative
        to the hips, smaller = nearer the camera).  Rows 0-32 are the BlazePose
        landmarks, 33 and 34 the ROI alignment points for tracking.
    visibility, presence: float32 (39,) after sigmoid.
    pose_presence: the model's pose-presence score in [0, 1].
    world: float32 (33, 3) metres, origin between the hips, x right, y down.
    roi: the ROI the landmarks were read from.
    """
    points: np.ndarray
    visibility: np.ndarray
    presence: np.ndarray
    pose_presence: float
    world: np.ndarray
    roi: Roi

    def next_roi(self) -> Roi:
        """The ROI for the next frame (pose_landmarks_to_roi.pbtxt)."""
        return roi_from_alignment_points(self.points[33, :2], self.points[34, :2])


def refine_from_heatmap(xy: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """Move landmarks to the heatmap's local centre of mass (RefineLandmarksFromHeatmap).

    xy: (39, 2) normalised to the crop; heatmap: (64, 64, 39) logits.  A landmark moves
    only where its sigmoid heatmap peaks at >= 0.5 inside the 7x7 window around it.
    Returns (39, 2).
    """
    rows, cols = heatmap.shape[:2]
    half = (HEATMAP_KERNEL_SIZE - 1) // 2
    out = xy.copy()
    for j in range(xy.shape[0]):
        col, row = int(xy[j, 0] * cols), int(xy[j, 1] * rows)  # C++ truncation toward zero
        if not (0 <= col < cols and 0 <= row < rows):
            continue
        r0, r1 = max(0, row - half), min(rows, row + half + 1)
        c0, c1 = max(0, col - half), min(cols, col + half + 1)
        confidence = _sigmoid(heatmap[r0:r1, c0:c1, j].astype(np.float64))
        total = confidence.sum()
        if confidence.max() >= HEATMAP_MIN_CONFIDENCE_TO_REFINE and total > 0:
            rr, cc = np.mgrid[r0:r1, c0:c1]
            out[j, 0] = (cc * confidence).sum() / cols / total
            out[j, 1] = (rr * confidence).sum() / rows / total
    return out


# ----------------------------------------------------------------------------- backend

class BlazePose:
    """The BlazePose backend: ``BlazePose()(frames, fps=30.0) -> PoseTrack``.

    Follows one person (the detector's best) from frame to frame.  ``count_people``
    runs the detector on every frame so that ``person_count`` is known everywhere
    (otherwise it is -1 on tracked frames, where the detector is skipped);
    ``tracking=False`` re-detects on every frame (mediapipe's static_image_mode).
    ``num_threads`` is the TFLite interpreter's thread count.
    """
    name = "blazepose"

    def __init__(self, *, detector_path: str | os.PathLike | None = None,
                 landmark_path: str | os.PathLike | None = None,
                 min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5,
                 count_people: bool = True, tracking: bool = True, num_threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter
        from macm_core.assets import asset_path

        for label, value in (("min_detection_confidence", min_detection_confidence),
                             ("min_tracking_confidence", min_tracking_confidence)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{label} must lie in [0, 1], got {value}")
        if num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        detector_path = Path(detector_path or asset_path("mediapipe-pose", DETECTOR_MEMBER))
        landmark_path = Path(landmark_path or asset_path("mediapipe-pose", LANDMARK_MEMBER))
        for path in (detector_path, landmark_path):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: BlazePose model file is missing; "
                                        f"run `macm data fetch` or pass the right path")
        self.min_detection_confidence = float(min_detection_confidence)
        self.min_tracking_confidence = float(min_tracking_confidence)
        self.count_people = bool(count_people)
        self.tracking = bool(tracking)
        self._detector = Interpreter(model_path=str(detector_path), num_threads=num_threads)
        self._landmarker = Interpreter(model_path=str(landmark_path), num_threads=num_threads)
        self._detector.allocate_tensors()
        self._landmarker.allocate_tensors()
        self._anchors = ssd_anchors()
        self._check_model_shapes()

    def _check_model_shapes(self) -> None:
        det_in = self._detector.get_input_details()[0]["shape"].tolist()
        det_out = sorted(tuple(d["shape"]) for d in self._detector.get_output_details())
        lm_in = self._landmarker.get_input_details()[0]["shape"].tolist()
        lm_out = {tuple(d["shape"]) for d in self._landmarker.get_output_details()}
        expected_lm = {(1, NUM_LANDMARKS * 5), (1, 1), (1, 64, 64, NUM_LANDMARKS), (1, NUM_LANDMARKS * 3)}
        if (det_in != [1, DETECTOR_SIZE, DETECTOR_SIZE, 3]
                or det_out != [(1, NUM_ANCHORS, 1), (1, NUM_ANCHORS, 12)]
                or lm_in != [1, LANDMARK_SIZE, LANDMARK_SIZE, 3] or not expected_lm <= lm_out):
            raise ValueError(f"the TFLite files are not mediapipe's pose_detection / "
                             f"pose_landmark_full models (detector {det_in} -> {det_out}, "
                             f"landmarks {lm_in} -> {sorted(lm_out)})")

    def _outputs(self, interpreter) -> dict[tuple[int, ...], np.ndarray]:
        return {tuple(d["shape"]): interpreter.get_tensor(d["index"])
                for d in interpreter.get_output_details()}

    def detect(self, image: np.ndarray) -> list[Detection]:
        """All people in one frame, uint8 (H, W, 3), best score first (after NMS)."""
        height, width = check_image(image).shape[:2]
        side = float(max(height, width))
        letterbox = Roi(center=(width / 2, height / 2), size=side, rotation=0.0)
        tensor = crop(image, letterbox, size=DETECTOR_SIZE, zero_border=True) / 127.5 - 1.0
        self._detector.set_tensor(self._detector.get_input_details()[0]["index"],
                                  tensor[None].astype(np.float32))
        self._detector.invoke()
        outputs = self._outputs(self._detector)
        scores, boxes, keypoints = decode_detections(
            outputs[(1, NUM_ANCHORS, 12)][0], outputs[(1, NUM_ANCHORS, 1)][0, :, 0], self._anchors,
            min_score=self.min_detection_confidence)
        scores, boxes, keypoints = weighted_nms(scores, boxes, keypoints)

        def to_pixels(points: np.ndarray) -> np.ndarray:  # letterbox removal: (N, 2) -> pixels
            return ((points.reshape(-1, 2) - 0.5) * side + (width / 2, height / 2)).astype(np.float32)

        return [Detection(score=float(s), box=to_pixels(b).reshape(4), keypoints=to_pixels(k))
                for s, b, k in zip(scores, boxes, keypoints)]

    def landmarks(self, image: np.ndarray, roi: Roi) -> Landmarks:
        """Run the landmark model on ``roi`` of one frame, uint8 (H, W, 3)."""
        check_image(image)
        tensor = crop(image, roi, size=LANDMARK_SIZE, zero_border=False) / 255.0
        self._landmarker.set_tensor(self._landmarker.get_input_details()[0]["index"],
                                    tensor[None].astype(np.float32))
        self._landmarker.invoke()
        outputs = self._outputs(self._landmarker)
        raw = outputs[(1, NUM_LANDMARKS * 5)].reshape(NUM_LANDMARKS, 5).astype(np.float64)
        xy = refine_from_heatmap(raw[:, :2] / LANDMARK_SIZE, outputs[(1, 64, 64, NUM_LANDMARKS)][0])
        points = np.concatenate([roi.to_image(xy), raw[:, 2:3] / LANDMARK_SIZE * roi.size], axis=1)
        c, s = math.cos(roi.rotation), math.sin(roi.rotation)
        world = outputs[(1, NUM_LANDMARKS * 3)].reshape(NUM_LANDMARKS, 3)[:NUM_POSE_LANDMARKS].astype(np.float64)
        world = np.stack([c * world[:, 0] - s * world[:, 1], s * world[:, 0] + c * world[:, 1],
                          world[:, 2]], axis=1)
        return Landmarks(points=points.astype(np.float32),
                         visibility=_sigmoid(raw[:, 3]).astype(np.float32),
                         presence=_sigmoid(raw[:, 4]).astype(np.float32),
                         pose_presence=float(outputs[(1, 1)][0, 0]),
                         world=world.astype(np.float32), roi=roi)

    def _landmarks_if_present(self, image: np.ndarray, roi: Roi | None) -> Landmarks | None:
        if roi is None or not roi.size >= 1.0:  # a degenerate ROI holds no person
            return None
        result = self.landmarks(image, roi)
        return result if result.pose_presence >= self.min_tracking_confidence else None

    def __call__(self, frames: np.ndarray, *, fps: float, progress=None) -> PoseTrack:
        """Track the most prominent person through ``frames``, uint8 (T, H, W, 3).

        progress: optional object with ``update(n)`` (a tqdm bar), advanced per frame.
        """
        frames = check_frames(frames)
        fps = check_fps(fps)
        num_frames, height, width = frames.shape[:3]
        keypoints = np.full((num_frames, 17, 2), np.nan, dtype=np.float32)
        confidence = np.zeros((num_frames, 17), dtype=np.float32)
        world = np.full((num_frames, 17, 3), np.nan, dtype=np.float32)
        person_count = np.full(num_frames, -1, dtype=np.int64)
        coco = np.array(BLAZEPOSE_TO_COCO)
        tracked: Roi | None = None
        for t in range(num_frames):
            if progress is not None:
                progress.update(1)
            image = frames[t]
            detections = None
            if self.count_people or tracked is None:
                detections = self.detect(image)
                person_count[t] = len(detections)
            result = self._landmarks_if_present(image, tracked)
            if result is None:  # not tracking, or the track was lost: start from the detector
                if detections is None:
                    detections = self.detect(image)
                    person_count[t] = len(detections)
                result = self._landmarks_if_present(image, detections[0].roi() if detections else None)
            if result is None:
                tracked = None
                continue
            keypoints[t] = result.points[coco, :2]
            confidence[t] = np.clip(result.visibility[coco] * result.pose_presence, 0.0, 1.0)
            world[t] = result.world[coco]
            tracked = result.next_roi() if self.tracking else None
        return PoseTrack(keypoints=keypoints, confidence=confidence, person_count=person_count,
                         frame_size=(height, width), fps=fps, backend=self.name, world=world)
