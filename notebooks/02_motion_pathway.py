# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The motion pathway: pose, SMPL-format fitting, the rendered body
#
# M-ACM's motion pathway turns video into body motion: keyframes -> 2D pose -> an SMPL
# body fitted to the pose -> the fitted body rendered over the frame, which the frozen
# image encoder then reads. This chapter measures each step on HMI-Synth, where the
# true pose is known, and runs the same steps on real videos of people.
#
# The pose backends compared:
#
# - `vitpose-tiny`: the ViTPose architecture (plain ViT + deconvolution heatmap head),
#   small, trained here on the synthetic training renders only; the benchmark's backend.
# - `blazepose`: Google's pretrained BlazePose (the models inside the mediapipe wheel),
#   run without mediapipe; never trained on our renders.
# - `oracle`: the projected ground truth, hidden joints dropped; for ablations.
#
# The paper's own estimator (ViTPose through mmpose) needs weights this machine cannot
# download; the `mmpose` backend runs it from local files on GPU nodes.

# %% tags=["parameters"]
profile = "cpu"
seed = 0

# %% tags=["nbval-ignore-output"]
# (this cell may train vitpose-tiny on first use and prints the progress; nbval ignores that)
import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import torch
from IPython.display import Markdown, display

from macm_core import figures
from macm_core.assets import asset_path
from macm_core.config import load_profile
from macm_core.data.benchmark import Benchmark
from macm_core.determinism import set_determinism
from macm_core.fit.evaluate import cross_view_consistency, fit_accuracy
from macm_core.fit.fitter import COCO17_MAP, fit_track
from macm_core.paths import resolve
from macm_core.pipeline.filters import FilterConfig, filter_clip
from macm_core.pipeline.video import read_video, video_info
from macm_core.pose.backends import make_backend
from macm_core.pose.coco import COCO_EDGES
from macm_core.pose.evaluate import pck_by_severity
from macm_core.render import overlay_body

config = load_profile(profile)
set_determinism(seed, threads=config.threads)
figures_dir = resolve(config.book.figures_dir)
bench = Benchmark.load(config)
small = config.name == "smoke"
vitpose = make_backend("vitpose-tiny", config)
blazepose = make_backend("blazepose", config)
test_ids = list(bench.split("test").index)

# %% [markdown]
# ## Pose: PCK against occlusion
#
# PCK@0.1: the share of joints found within 10% of the person's box diagonal, on
# COCO-17 keypoints, over the joints the renderer says are visible and, separately,
# over the joints inside the frame but hidden by the body or an occluder. The
# occlusion severity adds textured boxes over the body and zooms so that limbs leave
# the frame. Confidence is each backend's own: the heatmap peak for `vitpose-tiny`,
# visibility x presence for `blazepose`.

# %%
pck_clips = test_ids[: 2 if small else 12]
severities = (0.0, 0.5) if small else (0.0, 0.3, 0.6, 0.9)
pck_table = pck_by_severity({"oracle": None, "vitpose-tiny": vitpose, "blazepose": blazepose},
                            bench, pck_clips, severities=severities, frame_stride=4)
fig_pck = px.line(pck_table[pck_table["backend"] != "oracle"], x="severity", y="pck_visible",
                             color="backend", markers=True,
                             title="PCK@0.1 on visible joints against occlusion severity (HMI-Synth test)")
fig_pck.update_layout(yaxis_range=[0, 1.02], xaxis_title="occlusion severity", yaxis_title="PCK@0.1")
figures.export(fig_pck, "pose_pck_occlusion", figures_dir)
figures.show(fig_pck, "pose-pck-occlusion")
pck_table.round(3).set_index(["backend", "severity"])

# %% [markdown]
# Both estimators lose accuracy and confidence as occlusion grows; what the table
# shows for the confidence matters for MSD later: a motion pathway whose confidence
# falls with its accuracy can be trusted less where it sees less.

# %% [markdown]
# ## Fitting: how close is the fitted body to the true one?
#
# The SMPL-format body is fitted to 8 keyframes of each test clip (2D reprojection
# weighted by confidence, a pose prior, joint limits, temporal smoothness; the clip's
# camera is known), from the oracle's keypoints and from `vitpose-tiny`'s. MPJPE is
# the mean joint error after aligning the pelvis; PA-MPJPE after a Procrustes
# alignment (rotation, scale, translation) per frame; "moving joints" is the error on
# the four joints that move most in each clip, where the caption's details live; all
# in millimetres. The row "standing body (no fit)" scores the fitter's starting body
# without any fitting: HMI-Synth people mostly stand while one part acts, so a fit is
# only informative where it beats that row.

# %%
fit_clips = test_ids[: 2 if small else 12]
fits = fit_accuracy(bench, fit_clips, {"oracle": None, "vitpose-tiny": vitpose}, keyframes=8)
fit_summary = fits.groupby("source").agg(
    mpjpe_mm=("mpjpe_mm", "mean"), pa_mpjpe_mm=("pa_mpjpe_mm", "mean"),
    moving_joints_mm=("moving_joints_mm", "mean"), clips=("clip", "size")).round(1)
baseline = fit_summary.loc["standing body (no fit)"]
verdicts = []
for source in ("oracle", "vitpose-tiny"):
    gain = baseline["moving_joints_mm"] - fit_summary.loc[source, "moving_joints_mm"]
    verdicts.append(f"from {source} keypoints the fit is {abs(gain):.1f} mm "
                    f"{'closer to' if gain > 0 else 'further from'} the truth on the moving joints "
                    f"than the standing body")
display(Markdown("On these clips, " + "; ".join(verdicts) + "."))
fit_summary

# %% [markdown]
# A single camera leaves depth ambiguous: a fit can match every 2D keypoint to a
# fraction of a pixel and still bend an arm towards the camera instead of away from it.
# Where the fit is no better than the standing body, the motion pathway passes on
# little more than "a person stands", which later chapters must keep in mind when they
# credit (or fail to credit) the motion pathway.

# %% [markdown]
# ## What the motion pathway sees
#
# One test clip: the frame, `vitpose-tiny`'s keypoints, the body fitted to them drawn
# in grey over the frame (the motion pathway's input), and the true body drawn the same
# way (what a perfect pose estimate and fit would give).

# %%
clip_id = fit_clips[0]
rendered = bench.render(clip_id)
num_frames = rendered.frames.shape[0]
keyframes = np.linspace(0, num_frames - 1, 3).round().astype(int)
track = vitpose(rendered.frames.numpy()[keyframes], fps=float(bench.clips.loc[clip_id, "fps"]))
fitted = fit_track(keypoints=track.keypoints, confidence=track.confidence, joint_map=COCO17_MAP,
                   camera=bench.camera(clip_id))
fitted_view, _ = overlay_body(rendered.frames[keyframes], fitted.joints, bench.camera(clip_id))
true_view = rendered.motion_view[keyframes]
tiles = np.concatenate([rendered.frames[keyframes].numpy(), fitted_view.numpy(), true_view.numpy()])
fig_overlay = px.imshow(tiles, facet_col=0, facet_col_wrap=len(keyframes), binary_string=True)
labels = [f"{kind}, frame {t}" for kind in ("frame", "fitted body", "true body") for t in keyframes]
for annotation in fig_overlay.layout.annotations:  # plotly lists facets bottom row first: go by index
    annotation.text = labels[int(annotation.text.split("=")[-1])]
for column, t in enumerate(range(len(keyframes))):
    points = track.keypoints[t]
    for a, b in COCO_EDGES:
        if np.isfinite(points[[a, b]]).all():
            fig_overlay.add_trace(go.Scatter(x=points[[a, b], 0] - 0.5, y=points[[a, b], 1] - 0.5, mode="lines",
                                             line={"color": "yellow", "width": 2}, showlegend=False),
                                  row=3, col=column + 1)
fig_overlay.update_xaxes(showticklabels=False).update_yaxes(showticklabels=False)
fig_overlay.update_layout(title=f"{clip_id}: keypoints (yellow), fitted body, true body", height=620,
                          margin={"l": 10, "r": 10, "t": 60, "b": 10})
figures.export(fig_overlay, "motion_pathway_overlay", figures_dir, height=620)
figures.show(fig_overlay, "motion-pathway-overlay")

# %% [markdown]
# ## Real videos: BlazePose and the fit on four synchronised cameras
#
# The pose2sim demo films one person with four calibrated, synchronised cameras. Each
# camera's video goes through BlazePose, and the body is fitted to BlazePose's 3D
# (world) landmarks, camera by camera. The four fits describe the same body at the
# same instants, so they should agree once each is aligned by a rotation, scale and
# translation: the table gives the PA-MPJPE between every pair of cameras, for
# BlazePose's own 3D landmarks and for the fitted SMPL joints. No ground truth is
# needed for this check.

# %%
frames_per_camera = 8 if small else 40
views, landmarks, fits_3d, tracks = {}, {}, {}, {}
for camera in ("cam01", "cam02", "cam03", "cam04"):
    clip = read_video(asset_path("pose2sim-demo", f"videos/{camera}.mp4"), max_frames=frames_per_camera)
    track = blazepose(clip.frames, fps=clip.fps)
    tracks[camera], views[camera] = track, clip.frames
    landmarks[camera] = track.world
    fits_3d[camera] = np.asarray(fit_track(world=track.world, confidence=track.confidence,
                                           joint_map=COCO17_MAP).joints)
found = pd.DataFrame({cam: {"frames": t.num_frames,
                            "frames with a person": int((t.confidence.max(axis=1) > 0.5).sum()),
                            "mean confidence": round(float(t.confidence.mean()), 3)}
                      for cam, t in tracks.items()}).T
display(found)
usable = np.all([np.isfinite(w).all(axis=(1, 2)) for w in landmarks.values()], axis=0)
consistency = pd.concat({
    "BlazePose world landmarks": cross_view_consistency({c: w[usable] for c, w in landmarks.items()}),
    "fitted SMPL joints": cross_view_consistency({c: j[usable] for c, j in fits_3d.items()}),
}, names=["points"]).reset_index(level=0)
consistency.pivot_table(index=["view a", "view b"], columns="points", values="pa_mpjpe_mm").round(1)

# %%
tiles, titles = [], []
for camera, frames in views.items():
    t = len(frames) // 2
    h, w = frames.shape[1:3]
    step = max(1, h // 360)
    tiles.append(frames[t][::step, ::step])
    titles.append(f"{camera}, frame {t}")
height = min(tile.shape[0] for tile in tiles)
width = min(tile.shape[1] for tile in tiles)
fig_real = px.imshow(np.stack([tile[:height, :width] for tile in tiles]), facet_col=0, facet_col_wrap=4,
                     binary_string=True)
for column, (camera, frames) in enumerate(views.items()):
    t, step = len(frames) // 2, max(1, frames.shape[1] // 360)
    points = tracks[camera].keypoints[t] / step
    for a, b in COCO_EDGES:
        if np.isfinite(points[[a, b]]).all():
            fig_real.add_trace(go.Scatter(x=points[[a, b], 0], y=points[[a, b], 1], mode="lines",
                                          line={"color": "yellow", "width": 2}, showlegend=False),
                               row=1, col=column + 1)
for annotation in fig_real.layout.annotations:  # plotly lists facets bottom row first: go by index
    annotation.text = titles[int(annotation.text.split("=")[-1])]
fig_real.update_xaxes(showticklabels=False).update_yaxes(showticklabels=False)
fig_real.update_layout(title="BlazePose on the four pose2sim cameras (same instant)", height=520,
                       margin={"l": 10, "r": 10, "t": 60, "b": 10})
figures.export(fig_real, "blazepose_pose2sim", figures_dir, height=520)
figures.show(fig_real, "blazepose-pose2sim")

# %% [markdown]
# ## The HMI filters on a real video
#
# The sports2d demo shows two people outdoors. BlazePose tracks one of them and counts
# the people its detector finds in each frame; the HMI filters then judge the clip. The
# paper's rule keeps a clip only when one person is seen in at least 90% of its frames.

# %%
sports = read_video(asset_path("sports2d-demo", "demo.mp4"), max_frames=24 if small else None,
                    stride=1 if small else 3)
sports_track = blazepose(sports.frames, fps=sports.fps)
decision = filter_clip(keypoints=sports_track.keypoints, confidence=sports_track.confidence,
                       person_count=sports_track.person_count, frame_size=sports_track.frame_size,
                       fps=sports_track.fps, config=FilterConfig())
display(Markdown(f"**sports2d demo: {'accepted' if decision.accept else 'rejected'}** "
                 f"({sports_track.num_frames} frames at {sports_track.fps:g} fps)."))
pd.DataFrame([{"rule": r.name, "value": round(r.value, 3), "test": f"{r.op} {r.threshold:.3g}",
               "passed": r.passed} for r in decision.reasons]).set_index("rule")
