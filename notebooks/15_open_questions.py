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
# # Open questions: fine-grained data, unseen compositions, the motion representation
#
# Claim C9 gathers three questions the paper leaves open. None is a claim of the paper with
# a number to reproduce; each is measured here as far as the trained models allow, and each
# section says what its numbers can and cannot separate.
#
# 1. **MSD without fine-grained training data.** Does the decoder's gain need the HMI-style
#    captions, or would MSD help a model trained on coarse captions too? The training
#    chapter builds two two-pathway models that differ only in their captions:
#    `macm-uniform` (fine captions) and `macm-coarse` (the coarse captions); both use
#    uniform keyframes and are decoded greedily and with MSD.
# 2. **Unseen part-action compositions.** The `test_heldout` split holds clips with
#    (part, action) pairs that never occur in training (the profile's `held_out_pairs`,
#    e.g. a foot that taps, a leg that is raised); the parts and the actions are each seen,
#    only not together. Do the captions, and MSD's gain, carry over?
# 3. **A dedicated SMPL motion encoder instead of the rendered body.** `macm_core.motion`
#    has such an encoder, but no trained M-ACM uses it as a pathway yet. What can be
#    measured cheaply is a **proxy**: how well a linear probe reads the moving body part
#    (and its side) from each representation of the same clips.

# %% tags=["parameters"]
profile = "cpu"
seed = 0

# %% tags=["nbval-ignore-output"]
# (decodes the held-out split and computes the probe features on first use; nbval ignores the progress)
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from IPython.display import Markdown, display

from macm_core import figures
from macm_core.captioning import caption_split
from macm_core.claims import record_verdict
from macm_core.config import load_profile
from macm_core.data.benchmark import Benchmark
from macm_core.determinism import set_determinism
from macm_core.eval import (bootstrap_ci, composition_rates, limb_labels, limb_side_accuracy, pool_keyframes,
                            run_probe, smpl_features)
from macm_core.features import load_features
from macm_core.paths import resolve
from macm_core.results import evaluate_profile, format_mean_sd, score_captions, score_sets, summarise_seeds

config = load_profile(profile)
set_determinism(seed, threads=config.threads)
figures_dir = resolve(config.book.figures_dir)
bench = Benchmark.load(config)
seeds = list(config.train.seeds)

# (a) and (b): the test table of the main-results chapter, and two rows on the held-out split
results = evaluate_profile(config, split="test", progress=False)
HELDOUT_ROWS = [("baseline-fine", "greedy_visual"), ("macm", "msd")]
heldout_rows, captions = [], {}
for variant, decoder in HELDOUT_ROWS:
    for s in seeds:
        for split in ("test", "test_heldout"):
            captions[(variant, decoder, s, split)] = caption_split(config, variant, decoder=decoder, seed=s,
                                                                   split=split, progress=False)
score_sets(config, [(c, None) for (_, _, _, split), c in captions.items() if split == "test_heldout"],
           seed=config.seed)
for variant, decoder in HELDOUT_ROWS:
    for s in seeds:
        scores = score_captions(config, captions[(variant, decoder, s, "test_heldout")], seed=config.seed)
        heldout_rows.append({"variant": variant, "seed": s, "decoder": decoder, **scores})
heldout = pd.DataFrame(heldout_rows)

# (c): the probe's inputs, uniform keyframes of the train and test splits
probe_feats = {split: load_features(config, split, keyframes="uniform", progress=False) for split in ("train", "test")}

# %% [markdown]
# ## 1. MSD with and without fine-grained data
#
# The rows available on the test split (mean ± sd over training seeds):

# %%
A_ROWS = [("baseline-coarse", "greedy_visual"), ("baseline-fine", "greedy_visual"),
          ("macm-coarse", "greedy_visual"), ("macm-coarse", "greedy_joint"), ("macm-coarse", "msd"),
          ("macm-uniform", "greedy_visual"), ("macm-uniform", "greedy_joint"), ("macm-uniform", "msd")]
A_METRICS = ["CIDEr", "part_f1", "laterality", "action_f1", "CHAIR_s"]
summary_a = summarise_seeds(results, A_METRICS)
summary_a = summary_a.loc[[r for r in A_ROWS if r in summary_a.index]]
display(format_mean_sd(summary_a, A_METRICS))


def mean_a(variant, decoder, metric):
    key = (variant, decoder)
    return summary_a.loc[key, (metric, "mean")] if key in summary_a.index else float("nan")


EFFECTS = [("fine-grained data (visual-only model, greedy)", ("baseline-coarse", "greedy_visual"),
            ("baseline-fine", "greedy_visual")),
           ("training with the motion pathway, decoded on the frames alone", ("baseline-fine", "greedy_visual"),
            ("macm-uniform", "greedy_visual")),
           ("greedy on the joint input instead of the frames", ("macm-uniform", "greedy_visual"),
            ("macm-uniform", "greedy_joint")),
           ("MSD instead of greedy on the frames (fine-grained data)", ("macm-uniform", "greedy_visual"),
            ("macm-uniform", "msd")),
           ("MSD instead of greedy on the frames (coarse data)", ("macm-coarse", "greedy_visual"),
            ("macm-coarse", "msd")),
           ("fine-grained data (two-pathway model, MSD)", ("macm-coarse", "msd"), ("macm-uniform", "msd"))]
effects = pd.DataFrame({m: [mean_a(*b, m) - mean_a(*a, m) for _, a, b in EFFECTS] for m in A_METRICS},
                       index=[name for name, _, _ in EFFECTS])
display(Markdown("**Differences between rows (seed means)**; for `CHAIR_s` a negative difference is an improvement."))
display(effects.round(3))

data_gain = effects.loc[EFFECTS[0][0], "part_f1"]
msd_gain = effects.loc[EFFECTS[3][0], "part_f1"]
msd_gain_coarse = effects.loc[EFFECTS[4][0], "part_f1"]
msd_chair, msd_chair_coarse = effects.loc[EFFECTS[3][0], "CHAIR_s"], effects.loc[EFFECTS[4][0], "CHAIR_s"]


def signed(x):
    """+0.123, or 'undefined' where a metric has no denominator (e.g. captions that name no body part)."""
    return "undefined (nothing named to score)" if pd.isna(x) else f"{x:+.3f}"


missing_a = [f"{v} / {d}" for v, d in A_ROWS if (v, d) not in summary_a.index]
if missing_a:
    comparison = (f"Profile `{config.name}` does not train or decode {', '.join(missing_a)}, so the differences "
                  "that need those rows are undefined here.")
elif pd.isna(data_gain) or pd.isna(msd_gain):
    comparison = ("The data and decoding effects cannot be compared: a part F1 is undefined where captions name "
                  "no body part.")
else:
    larger = "larger" if abs(data_gain) > abs(msd_gain) else "not larger"
    comparison = f"In absolute value the data effect is {larger} than the decoding effect."
display(Markdown(
    f"**With fine-grained captions** (`macm-uniform`), MSD changes part F1 by {signed(msd_gain)} and CHAIR_s by "
    f"{signed(msd_chair)} over greedy decoding of the same weights on the frames. **With the coarse captions** "
    f"(`macm-coarse`, the same architecture, keyframes and schedule), MSD changes part F1 by "
    f"{signed(msd_gain_coarse)} and CHAIR_s by {signed(msd_chair_coarse)}. Fine-grained captions themselves change "
    f"part F1 by {signed(data_gain)} for a visual-only model decoded greedily. {comparison}\n\n"
    "**What these rows separate:** the effect of the decoder with the data and the weights fixed, once per kind "
    "of caption, and the effect of the data with the decoder fixed.\n\n"
    "**What they cannot separate:** MSD only re-weights tokens the visual pathway already ranks near the top "
    "(msd.md), so a model that never learnt to name body parts gives it nothing to choose between; a gain "
    "that appears only with fine captions says the decoder needs the data, not that the data alone explains "
    "the paper's full-model gain. `macm-uniform` and `macm-coarse` train on the first seed only "
    "(`train.first_seed_only`), so these differences have no spread over seeds."))

# %% [markdown]
# ## 2. Unseen part-action compositions
#
# The same two rows on the test split (compositions seen in training) and on the
# held-out split (every clip holds at least one composition never seen in training).
# Grounded metrics only: CIDEr's document frequencies come from each split's own
# references, so it is not comparable across splits.

# %%
B_METRICS = ["part_f1", "laterality", "action_f1", "CHAIR_i", "CHAIR_s"]
test_b = results.set_index(["variant", "decoder"]).loc[HELDOUT_ROWS].reset_index()
both = pd.concat([test_b.assign(split="test"), heldout.assign(split="test_heldout")], ignore_index=True)
grouped = both.groupby(["variant", "decoder", "split"], sort=False)[B_METRICS]
summary_b = grouped.agg(["mean", "std"]).rename(columns={"std": "sd"}, level=1)
summary_b[("seeds", "n")] = grouped.size()
display(Markdown(f"**{int(heldout['n_clips'].iloc[0])} held-out clips; mean ± sd over {len(seeds)} seeds.**"))
display(format_mean_sd(summary_b, B_METRICS))

held_out_pairs = {tuple(p) for p in config.data.held_out_pairs}
held_parts = {part for part, _ in held_out_pairs}
# per labelled segment: is its part (with side) named, its action named, and both? On test_heldout the segments
# with a held-out pair, on test the (seen) compositions of the same parts
comp = pd.DataFrame([{"variant": v, "decoder": d, "seed": s, "split": split,
                      **composition_rates(dict(zip(captions[(v, d, s, split)]["clip_id"],
                                                   captions[(v, d, s, split)]["caption"])),
                                          bench.segments, held_out_pairs, held_out=split == "test_heldout")}
                     for v, d in HELDOUT_ROWS for s in seeds for split in ("test", "test_heldout")])
comp_mean = comp.groupby(["variant", "decoder", "split"], sort=False)[
    ["segments", "part named", "action named", "both named"]].mean()
display(Markdown(
    f"**Compositions.** On `test_heldout`, the segments with a held-out pair "
    f"({', '.join(f'{p} + {a}' for p, a in sorted(held_out_pairs))}); on `test`, the segments of the same "
    f"parts ({', '.join(sorted(held_parts))}) with the actions they were trained with. A composition counts "
    "as described when the caption names the part with its side and the action (anywhere in the caption; "
    "mean over seeds)."))
display(comp_mean.round(3))

fig_b = go.Figure()
for (variant, decoder), colour in zip(HELDOUT_ROWS, ("#636efa", "#ef553b")):
    for split, pattern in (("test", ""), ("test_heldout", "/")):
        row = summary_b.loc[(variant, decoder, split)]
        names = B_METRICS + ["composition described"]
        values = [row[(m, "mean")] for m in B_METRICS] + [comp_mean.loc[(variant, decoder, split), "both named"]]
        errors = [row[(m, "sd")] for m in B_METRICS] + [comp.query(
            "variant == @variant and decoder == @decoder and split == @split")["both named"].std()]
        fig_b.add_trace(go.Bar(x=names, y=values, name=f"{variant} / {decoder}, {split}",
                               marker=dict(color=colour, pattern_shape=pattern),
                               error_y=dict(type="data", array=[0 if pd.isna(e) else e for e in errors])))
fig_b.update_layout(barmode="group", height=420, margin=dict(t=30), yaxis_title="score (ours, HMI-Synth)",
                    legend_title="row, split")
figures.export(fig_b, "heldout_compositions", figures_dir)
figures.show(fig_b, "heldout-compositions")


def drop(variant, decoder, metric):
    return (summary_b.loc[(variant, decoder, "test_heldout"), (metric, "mean")]
            - summary_b.loc[(variant, decoder, "test"), (metric, "mean")])


lines = [f"- `{v}` / `{d}`: part F1 {signed(drop(v, d, 'part_f1'))}, action F1 {signed(drop(v, d, 'action_f1'))}, "
         f"CHAIR_s {signed(drop(v, d, 'CHAIR_s'))}; compositions described "
         f"{comp_mean.loc[(v, d, 'test'), 'both named']:.3f} (seen) vs "
         f"{comp_mean.loc[(v, d, 'test_heldout'), 'both named']:.3f} (held out)" for v, d in HELDOUT_ROWS]
widths = ((heldout["part_f1_high"] - heldout["part_f1_low"]) / 2).dropna()
half_width = f"{widths.mean():.3f}" if len(widths) else "undefined"
msd_test = summary_b.loc[("macm", "msd", "test"), ("part_f1", "mean")] - summary_b.loc[
    ("baseline-fine", "greedy_visual", "test"), ("part_f1", "mean")]
msd_held = summary_b.loc[("macm", "msd", "test_heldout"), ("part_f1", "mean")] - summary_b.loc[
    ("baseline-fine", "greedy_visual", "test_heldout"), ("part_f1", "mean")]
display(Markdown(
    "From the test split to the held-out compositions (held out minus test, seed means):\n\n" + "\n".join(lines)
    + f"\n\nM-ACM with MSD is {signed(msd_test)} part F1 from the visual-only fine-grained baseline on seen "
    f"compositions and {signed(msd_held)} on unseen ones. The held-out split has "
    f"{int(heldout['n_clips'].iloc[0])} clips; the 95% bootstrap interval of one seed's held-out part F1 is "
    f"{half_width} wide on each side on average, the scale below which a difference is noise."))

# %% [markdown]
# ## 3. Which motion representation carries the body-part evidence? (a proxy)
#
# A dedicated SMPL encoder would have to be trained as an M-ACM pathway and the captioner
# retrained around it; that is not done here. The proxy: a linear probe (multinomial
# logistic regression, L2 strength chosen by 3-fold cross-validation on the training
# split) learns, from each representation of a clip, **which limb moves and on which
# side** (left/right arm with hand, left/right leg with foot, head, torso, whole body;
# the clip's first labelled segment), trained on the training split and scored on the
# test split. All representations come from the same uniform keyframes:
#
# - the frames through the frozen encoder (the visual pathway);
# - the fitted body drawn over the frames through the same encoder (M-ACM's motion pathway);
# - the fitted SMPL parameters themselves (what a dedicated encoder would read): per joint,
#   the mean and the largest rotation speed between keyframes, the spread of its rotation
#   and its mean rotation (6D).
#
# The encoder features are pooled over the keyframes, either over the whole image
# ("mean-pooled") or per cell of the encoder's grid ("grid kept", so that where a limb
# is in the picture is not averaged away). Both encoder pathways and the SMPL parameters
# start from the same estimated pose and fit, so the probe compares representations of
# one piece of evidence, not better and worse pose estimates. A linear probe measures
# what is linearly readable, not what a trained encoder could extract.

# %%
grid = config.features.grid
REPRESENTATIONS = {
    "frames, mean-pooled": lambda f: pool_keyframes(f.visual),
    "frames, grid kept": lambda f: pool_keyframes(f.visual, grid),
    "rendered body, mean-pooled": lambda f: pool_keyframes(f.motion),
    "rendered body, grid kept": lambda f: pool_keyframes(f.motion, grid),
    "frames + rendered body, grid kept": lambda f: np.concatenate([pool_keyframes(f.visual, grid),
                                                                   pool_keyframes(f.motion, grid)], 1),
    "SMPL parameters": lambda f: smpl_features(f.global_orient, f.body_pose, f.keyframes, config.data.fps),
}
labels = {split: limb_labels(bench.segments, f.clip_ids) for split, f in probe_feats.items()}
classes = sorted(set(labels["train"]) | set(labels["test"]))
y = {split: torch.as_tensor([classes.index(label) for label in labels[split]]) for split in labels}

n_train = len(y["train"])
probe_rows, correct = [], {}
for name, make in REPRESENTATIONS.items():
    x_train, x_test = make(probe_feats["train"]), make(probe_feats["test"])
    # L2 strength by 3-fold CV on the training split (ties: the stronger penalty), refitted on all of it
    fitted = run_probe(x_train, y["train"], x_test, num_classes=len(classes), seed=config.seed)
    truth = y["test"].numpy()
    correct[name] = (fitted.predicted == truth).astype(float)
    limb_acc, side_acc = limb_side_accuracy(fitted.predicted, truth, classes)
    acc, low, high = bootstrap_ci(correct[name], n=config.eval.bootstrap, seed=config.seed)
    probe_rows.append({"representation": name, "dims": x_train.shape[1], "L2 (by CV)": fitted.strength,
                       "CV accuracy (train)": fitted.cv_accuracy[fitted.strength], "test accuracy": acc,
                       "low": low, "high": high, "limb, side ignored": limb_acc, "side, sided limbs": side_acc})
probe = pd.DataFrame(probe_rows).set_index("representation")
majority = classes[int(torch.bincount(y["train"], minlength=len(classes)).argmax())]
chance = float(np.mean([label == majority for label in labels["test"]]))
display(Markdown(f"**Linear probe, {n_train} training clips, {len(y['test'])} test clips, {len(classes)} classes "
                 f"({', '.join(classes)}).** Majority class of the training split (`{majority}`) on the test "
                 f"split: {chance:.3f}. Interval: 95% bootstrap over test clips."))
display(probe.round(3))

fig_c = go.Figure(go.Bar(
    x=probe.index, y=probe["test accuracy"],
    error_y=dict(type="data", symmetric=False, array=(probe["high"] - probe["test accuracy"]).fillna(0),
                 arrayminus=(probe["test accuracy"] - probe["low"]).fillna(0))))
fig_c.add_hline(y=chance, line=dict(dash="dot", color="grey"), annotation_text="majority class")
fig_c.update_layout(height=420, margin=dict(t=30), yaxis_title="probe accuracy, moving limb + side (test)",
                    yaxis_range=[0, 1.02])
figures.export(fig_c, "probe_motion_representation", figures_dir)
figures.show(fig_c, "probe-motion-representation")

render_name, smpl_name, frames_name = "rendered body, grid kept", "SMPL parameters", "frames, grid kept"
diff, diff_low, diff_high = bootstrap_ci(correct[smpl_name] - correct[render_name], n=config.eval.bootstrap,
                                         seed=config.seed)
if diff_low > 0:
    probe_answer = "the SMPL parameters carry more linearly readable body-part evidence than the rendered body"
elif diff_high < 0:
    probe_answer = "the rendered body carries more linearly readable body-part evidence than the SMPL parameters"
else:
    probe_answer = "the probe cannot tell the SMPL parameters and the rendered body apart"
display(Markdown(
    f"Probe accuracy on the test split: SMPL parameters {probe.loc[smpl_name, 'test accuracy']:.3f}, rendered body "
    f"{probe.loc[render_name, 'test accuracy']:.3f}, frames {probe.loc[frames_name, 'test accuracy']:.3f} "
    f"(majority class {chance:.3f}). SMPL minus rendered body: {diff:+.3f} [{diff_low:+.3f}, {diff_high:+.3f}] "
    f"(paired bootstrap over test clips): **{probe_answer}** (a proxy: whether a trained SMPL pathway would "
    "caption better is not measured)."))

# %% [markdown]
# ## What this says about C9

# %%
v_f, v_m = HELDOUT_ROWS
ours = (f"(a) MSD part-F1 change with fine captions {signed(msd_gain)} (macm-uniform), with coarse captions "
        f"{signed(msd_gain_coarse)} (macm-coarse); fine-data change {signed(data_gain)} (visual-only, greedy); "
        f"(b) held-out minus test part F1: {v_f[0]} "
        f"{signed(drop(*v_f, 'part_f1'))}, {v_m[0]}/msd {signed(drop(*v_m, 'part_f1'))}; "
        f"(c) probe accuracy (moving limb + side): SMPL "
        f"{probe.loc[smpl_name, 'test accuracy']:.2f}, rendered body {probe.loc[render_name, 'test accuracy']:.2f}, "
        f"frames {probe.loc[frames_name, 'test accuracy']:.2f}, majority {chance:.2f}")
reason = ("Open questions, no paper number to reproduce. Measured: MSD's effect on two-pathway models trained "
          "with fine and with coarse captions and the data's effect, the held-out compositions split for "
          "baseline-fine and macm+MSD, and a linear-probe proxy for the motion representation "
          f"({probe_answer}). Not done: an M-ACM trained with the SMPL motion encoder as its pathway.")
record_verdict(config.name, "C9", ours=ours, verdict="not testable here", reason=reason)
display(Markdown(f"**C9: not testable here** as a claim of the paper (there is none to reproduce); measured: "
                 f"{ours}.\n\n{reason}"))
