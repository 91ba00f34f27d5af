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
# # Occlusion stress: does MSD survive a degraded motion pathway?
#
# Claim C8: the motion pathway (pose -> fitted SMPL body -> the body drawn over the
# keyframe) gives the decoder body-part evidence that the frames alone do not. The paper
# measures it only on clean video; what happens when pose estimation degrades is left
# open. MSD lets the motion pathway re-rank and veto the visual pathway's tokens, so a
# wrong body (a left arm fitted where the right one moves, a limb lost out of frame)
# could make MSD worse than decoding the frames alone.
#
# Here the same trained `macm` model (first training seed, pose-aware keyframes) captions
# the first test clips of HMI-Synth rendered under growing occlusion: textured boxes over
# the body and a zoom that pushes limbs out of the frame (the motion-pathway chapter shows
# what `vitpose-tiny` makes of it). The whole chain is rerun on the occluded frames: pose,
# keyframes, SMPL-format fit, rendered body, encoder. Per severity we measure
#
# - the quality of the motion pathway's input: mean pose confidence on the keyframes, and
#   the fitted joints' error against the true ones (MPJPE and PA-MPJPE, mm);
# - the captions of two decoders of the same weights on the same occluded clips:
#   greedy decoding of the visual pathway alone (`greedy_visual`, which never sees the
#   body) and MSD (which lets the motion pathway change the visual pathway's choice);
# - body-part F1, laterality and the CHAIR-style hallucination rates, and MSD's gain
#   (MSD minus `greedy_visual`) with a paired bootstrap interval over clips.
#
# MSD does not read the pose confidence: it trusts a bad body as much as a good one. The
# gain against pose confidence shows what that costs.

# %% tags=["parameters"]
profile = "cpu"
seed = 0

# %% tags=["nbval-ignore-output"]
# (computes the occluded features and decodes them on first use; nbval ignores the progress)
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from IPython.display import Markdown, display
from plotly.subplots import make_subplots

from macm_core import figures
from macm_core.captioning import caption_split
from macm_core.claims import record_verdict
from macm_core.config import load_profile
from macm_core.data.benchmark import Benchmark
from macm_core.determinism import set_determinism
from macm_core.eval import format_interval, grounded_metrics, interval_direction, paired_difference, summarise
from macm_core.features import compute_features, load_features
from macm_core.paths import resolve
from macm_core.results import score_captions, score_sets
from macm_core.variants import get_variant

config = load_profile(profile)
set_determinism(seed, threads=config.threads)
figures_dir = resolve(config.book.figures_dir)
bench = Benchmark.load(config)

VARIANT = "macm"
DECODERS = ("greedy_visual", "msd")
METRICS = ["part_f1", "laterality", "CHAIR_i", "CHAIR_s", "part_precision", "part_recall", "CIDEr"]
GAIN_METRICS = ["part_f1", "laterality", "CHAIR_s", "CHAIR_i"]
severities = [float(s) for s in config.features.occlusion_severities]
num_clips = int(config.features.occlusion_clips)
model_seed = config.train.seeds[0]
keyframes = get_variant(VARIANT).keyframes

# every severity's features in one pool of worker processes (the training chapter computes
# them with the book's other sets; this computes those missing when the chapter runs alone)
compute_features(config, [("test", severity, num_clips) for severity in severities], progress=False)
pose_rows, score_rows, clip_tables, clip_confidence, captioned = [], [], {}, {}, {}
for severity in severities:
    feats = load_features(config, "test", keyframes=keyframes, occlusion=severity, num_clips=num_clips,
                          progress=False)
    pose_rows.append({"severity": severity, "clips": len(feats),
                      "pose confidence": float(np.nanmean(feats.pose_confidence)),
                      "MPJPE (mm)": float(np.nanmean(feats.fit_mpjpe_mm)),
                      "PA-MPJPE (mm)": float(np.nanmean(feats.fit_pa_mpjpe_mm))})
    clip_confidence[severity] = pd.Series(feats.pose_confidence, index=list(feats.clip_ids))
    for decoder in DECODERS:
        captioned[(severity, decoder)] = caption_split(config, VARIANT, decoder=decoder, seed=model_seed,
                                                       split="test", occlusion=severity, num_clips=num_clips,
                                                       progress=False)
score_sets(config, [(captions, None) for captions in captioned.values()], seed=config.seed)
for (severity, decoder), captions in captioned.items():
    scores = score_captions(config, captions, seed=config.seed)
    score_rows.append({"severity": severity, "decoder": decoder, **scores})
    table, _ = grounded_metrics(dict(zip(captions["clip_id"], captions["caption"])), bench.segments)
    clip_tables[(severity, decoder)] = table

pose = pd.DataFrame(pose_rows).set_index("severity")
scores = pd.DataFrame(score_rows).set_index(["severity", "decoder"])
# MSD minus greedy_visual on the same clips, with a paired percentile bootstrap interval
gains = pd.DataFrame([
    {"severity": s, "metric": m, **dict(zip(("gain", "low", "high"), paired_difference(
        clip_tables[(s, "msd")], clip_tables[(s, "greedy_visual")], m, n=config.eval.bootstrap, seed=config.seed)))}
    for s in severities for m in GAIN_METRICS]).set_index(["severity", "metric"])

# %% [markdown]
# ## The motion pathway's input under occlusion

# %%
display(Markdown(f"**`{VARIANT}` (training seed {model_seed}), the first {num_clips} HMI-Synth test clips, "
                 f"profile `{config.name}`.** Pose confidence: mean `vitpose-tiny` confidence on the "
                 "keyframes; MPJPE / PA-MPJPE: the fitted SMPL-format joints against the true ones."))
display(pose.round(3))

# %% [markdown]
# ## Captions under occlusion: frames alone vs MSD
# The figure puts the motion pathway's input (top left) beside the captions' scores. Higher
# is better except the hallucination rates `CHAIR_i` (share of part mentions naming a
# part that does not move) and `CHAIR_s` (share of captions with one). Bootstrap intervals
# (95%, over the clips) in brackets.

# %%
cells = {m: [f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, lo, hi in
             zip(scores[m], scores[f"{m}_low"], scores[f"{m}_high"])] for m in METRICS}
display(pd.DataFrame(cells, index=scores.index))

panels = ["part_f1", "laterality", "CHAIR_s", "CHAIR_i"]
fig_sweep = make_subplots(rows=2, cols=3, horizontal_spacing=0.08, vertical_spacing=0.16,
                          subplot_titles=["pose confidence (keyframes)", "fit error (mm)"] + panels)
fig_sweep.add_trace(go.Scatter(x=pose.index, y=pose["pose confidence"], mode="lines+markers", name="pose confidence",
                               line=dict(color="black")), row=1, col=1)
for column, dash in [("MPJPE (mm)", "solid"), ("PA-MPJPE (mm)", "dot")]:
    fig_sweep.add_trace(go.Scatter(x=pose.index, y=pose[column], mode="lines+markers", name=column,
                                   line=dict(color="grey", dash=dash)), row=1, col=2)
for k, metric in enumerate(panels):
    row, col = (1, 3) if k == 0 else (2, k)
    for decoder, colour in zip(DECODERS, ("#636efa", "#ef553b")):
        rows = scores.xs(decoder, level="decoder")
        fig_sweep.add_trace(go.Scatter(
            x=rows.index, y=rows[metric], mode="lines+markers", name=decoder, legendgroup=decoder,
            showlegend=k == 0, line=dict(color=colour),
            error_y=dict(type="data", symmetric=False, array=(rows[f"{metric}_high"] - rows[metric]).fillna(0),
                         arrayminus=(rows[metric] - rows[f"{metric}_low"]).fillna(0))), row=row, col=col)
fig_sweep.update_xaxes(title_text="occlusion severity", row=2)
fig_sweep.update_layout(height=620, margin=dict(t=40), legend_title="ours (macm)")
figures.export(fig_sweep, "occlusion_sweep", figures_dir, width=1100, height=620)
figures.show(fig_sweep, "occlusion-sweep")

# %% [markdown]
# ## MSD's gain against the quality of the motion pathway
# The gain is MSD minus `greedy_visual` on the same clips (for `CHAIR_s` and `CHAIR_i` a
# negative gain is an improvement), with a paired bootstrap interval. Left: one point per
# severity, placed at its mean pose confidence. Right: all (clip, severity) pairs of the
# sweep pooled and cut into pose-confidence bins, whatever severity they came from.

# %%
gain_table = gains.unstack("metric")
gain_table = pd.DataFrame({m: [f"{g:+.3f} [{lo:+.3f}, {hi:+.3f}]" for g, lo, hi in
                               zip(gain_table[("gain", m)], gain_table[("low", m)], gain_table[("high", m)])]
                           for m in GAIN_METRICS}, index=gain_table.index)
gain_table.insert(0, "pose confidence", pose["pose confidence"].round(3))
display(gain_table)

# pool every (clip, severity) pair and bin it by its own pose confidence
pairs = []
for severity in severities:
    conf = clip_confidence[severity]
    for decoder in DECODERS:
        t = clip_tables[(severity, decoder)].copy()
        t["confidence"], t["severity"], t["decoder"] = conf.reindex(t.index).to_numpy(), severity, decoder
        pairs.append(t)
pairs = pd.concat(pairs)
n_bins = max(1, min(4, len(pairs) // len(DECODERS) // 8))   # at least 8 clip-severity pairs a bin
edges = np.unique(np.quantile(pairs["confidence"].dropna(), np.linspace(0, 1, n_bins + 1)))
pairs["bin"] = pd.cut(pairs["confidence"], edges, include_lowest=True) if len(edges) > 1 else "all"
binned = []
for label, group in pairs.groupby("bin", observed=True):
    row = {"confidence bin": str(label), "mean confidence": group["confidence"].mean(),
           "clip-severity pairs": int((group["decoder"] == DECODERS[0]).sum())}
    for decoder in DECODERS:
        row.update({f"{m} ({decoder})": summarise(group[group["decoder"] == decoder])[m] for m in GAIN_METRICS})
    for m in GAIN_METRICS:
        row[f"{m} gain"] = row[f"{m} (msd)"] - row[f"{m} (greedy_visual)"]
    binned.append(row)
binned = pd.DataFrame(binned).set_index("confidence bin")
display(binned[["mean confidence", "clip-severity pairs"] + [f"{m} gain" for m in GAIN_METRICS]].round(3))

fig_gain = make_subplots(rows=1, cols=2, subplot_titles=("per severity", "per pose-confidence bin (pooled)"),
                         shared_yaxes=True)
for metric, colour in zip(["part_f1", "laterality", "CHAIR_s"], ("#636efa", "#00cc96", "#ef553b")):
    g = gains.xs(metric, level="metric")
    fig_gain.add_trace(go.Scatter(
        x=pose.loc[g.index, "pose confidence"], y=g["gain"], mode="lines+markers+text", name=metric,
        legendgroup=metric, line=dict(color=colour), text=[f"s={s:g}" for s in g.index], textposition="top center",
        error_y=dict(type="data", symmetric=False, array=(g["high"] - g["gain"]).fillna(0),
                     arrayminus=(g["gain"] - g["low"]).fillna(0))), row=1, col=1)
    fig_gain.add_trace(go.Scatter(x=binned["mean confidence"], y=binned[f"{metric} gain"], mode="lines+markers",
                                  name=metric, legendgroup=metric, showlegend=False, line=dict(color=colour)),
                       row=1, col=2)
for col in (1, 2):
    fig_gain.add_hline(y=0, line=dict(color="grey", width=1), row=1, col=col)
    fig_gain.update_xaxes(title_text="mean pose confidence", row=1, col=col)
fig_gain.update_yaxes(title_text="MSD minus greedy_visual", row=1, col=1)
fig_gain.update_layout(height=400, margin=dict(t=40), legend_title="gain (ours, macm)")
figures.export(fig_gain, "occlusion_msd_gain", figures_dir, width=1000, height=400)
figures.show(fig_gain, "occlusion-msd-gain")

# %% [markdown]
# ## Does a noisy motion pathway erase MSD's gain?

# %%
clean, worst = severities[0], severities[-1]


def describe(severity, metric):
    return format_interval(*gains.loc[(severity, metric)],
                           undefined="undefined (a decoder's captions name no body part)")


def value(x):
    return "undefined (no body part named)" if pd.isna(x) else f"{x:.3f}"


# 'yes': the part-F1 gain's interval lies above 0; 'unclear': positive, interval reaches 0; 'no': <= 0;
# 'none': no gain can be computed (a decoder's captions name no body part, so its F1 is undefined)
clean_state, worst_state = (interval_direction(*gains.loc[(s, "part_f1"), ["gain", "low"]]) for s in (clean, worst))
g_clean, g_worst = gains.loc[(clean, "part_f1"), "gain"], gains.loc[(worst, "part_f1"), "gain"]
if clean_state == "none":
    fate = ("on clean video the captions of at least one decoder name no body part at all, so MSD's part-F1 gain "
            "is undefined and there is nothing for occlusion to erase")
elif clean_state == "no":
    fate = ("MSD has no part-F1 gain to lose even on clean video here, so occlusion cannot erase one; "
            f"at severity {worst:g} the difference is {describe(worst, 'part_f1')}")
elif worst_state in ("no", "none"):
    fate = (f"occlusion erases MSD's gain: at severity {worst:g} MSD is no better than the frames alone "
            f"(part-F1 gain {describe(worst, 'part_f1')}, against {describe(clean, 'part_f1')} on clean video)")
elif worst_state == "unclear" and clean_state == "yes":
    fate = (f"occlusion shrinks MSD's gain until it can no longer be told from zero: part-F1 gain "
            f"{describe(clean, 'part_f1')} on clean video, {describe(worst, 'part_f1')} at severity {worst:g}")
elif g_worst < g_clean:
    fate = (f"MSD keeps a gain under occlusion, smaller than on clean video: part-F1 gain "
            f"{describe(clean, 'part_f1')} at severity {clean:g}, {describe(worst, 'part_f1')} at {worst:g}")
else:
    fate = (f"MSD's gain does not shrink under occlusion: part-F1 gain {describe(clean, 'part_f1')} at severity "
            f"{clean:g}, {describe(worst, 'part_f1')} at {worst:g}")
conf_drop = pose.loc[clean, "pose confidence"] - pose.loc[worst, "pose confidence"]
chair_clean, chair_worst = gains.loc[(clean, "CHAIR_s"), "gain"], gains.loc[(worst, "CHAIR_s"), "gain"]
display(Markdown(
    f"From severity {clean:g} to {worst:g} the mean pose confidence falls by {conf_drop:.3f} "
    f"({pose.loc[clean, 'pose confidence']:.3f} -> {pose.loc[worst, 'pose confidence']:.3f}) and the fit error "
    f"goes from {pose.loc[clean, 'MPJPE (mm)']:.0f} to {pose.loc[worst, 'MPJPE (mm)']:.0f} mm MPJPE "
    f"({pose.loc[clean, 'PA-MPJPE (mm)']:.0f} -> {pose.loc[worst, 'PA-MPJPE (mm)']:.0f} mm PA-MPJPE). "
    f"In plain words: **{fate}**. MSD changes the captions' hallucination rate CHAIR_s by "
    f"{chair_clean:+.3f} on clean video and {chair_worst:+.3f} at severity {worst:g} (negative: fewer captions "
    f"naming a part that does not move); the greedy visual captions themselves go from part F1 "
    f"{value(scores.loc[(clean, 'greedy_visual'), 'part_f1'])} to "
    f"{value(scores.loc[(worst, 'greedy_visual'), 'part_f1'])}, since occlusion hides the frames too. "
    f"{num_clips} clips per severity, one training seed: the intervals above are over clips only, not over "
    "training runs."))

verdict = {"yes": "reproduced in direction", "unclear": "partly reproduced", "no": "not reproduced",
           "none": "not testable here"}[clean_state]
evidence = {"yes": "interval above 0", "unclear": "positive, interval reaches 0", "no": "no gain",
            "none": "undefined, the captions name no body part"}[clean_state]
ours = (f"MSD minus greedy_visual part F1 {describe(clean, 'part_f1')} at occlusion {clean:g} "
        f"(pose confidence {pose.loc[clean, 'pose confidence']:.2f}), {describe(worst, 'part_f1')} at {worst:g} "
        f"(confidence {pose.loc[worst, 'pose confidence']:.2f}); CHAIR_s change {chair_clean:+.3f} -> "
        f"{chair_worst:+.3f}")
reason = (f"HMI-Synth, first {num_clips} test clips, macm seed {model_seed}, paired bootstrap over clips. "
          f"Clean-video part-F1 gain of MSD over the frames alone: {evidence}. "
          f"Under occlusion (open question, not measured by the paper): {fate}.")
record_verdict(config.name, "C8", ours=ours, verdict=verdict, reason=reason)
display(Markdown(f"**C8: {verdict}** (recorded for the claims table)."))
