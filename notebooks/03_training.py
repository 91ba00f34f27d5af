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
# # Training M-ACM and its baselines
#
# Every model in the book is trained here, by one trainer, on cached pathway features of
# the HMI-Synth training split (see the motion-pathway chapter for how they are made:
# vitpose-tiny pose, SMPL-format fit, the fitted body drawn in grey over each keyframe, the
# frozen encoder on both). The variants differ only in data and inputs:
#
# | variant | captions it learns | pathways seen in training | keyframes |
# | --- | --- | --- | --- |
# | `baseline-coarse` | coarse ("a person is exercising") | visual only | uniform |
# | `baseline-fine` | fine-grained (HMI-like) | visual only | uniform |
# | `macm-uniform` | fine-grained | visual, motion and joint (pathway dropout) | uniform |
# | `macm-coarse` | coarse | visual, motion and joint (pathway dropout) | uniform |
# | `macm` | fine-grained | visual, motion and joint (pathway dropout) | pose-aware |
#
# Two stages, as the paper: stage 1 aligns the two projectors with the decoder frozen,
# stage 2 trains the projectors and the decoder. 20% of the training items are QA pairs of
# the clip instead of its caption. Pathway dropout puts every training batch's items under
# a visual-only, motion-only or joint prompt, so that both single-pathway distributions that
# Motion Synergetic Decoding compares at inference are ones the model was trained on. The
# mix is (visual, motion, joint) = (0.5, 0.25, 0.25): with a quarter visual-only and half
# joint items, the two-pathway model collapsed onto the caption prior on some seeds (one
# caption for nearly every clip); giving the visual prompt half of the items prevented it on
# the three seeds tried.
# The main table's variants train on every seed of the profile; the ablation-only ones
# (`train.first_seed_only`: `macm-uniform`, `macm-coarse`) on its first seed.
#
# The trainer takes the loss only where a caption or answer token is predicted, about a
# quarter of the positions: the LM head and the decoder's last layer (apart from its keys
# and values, which every position needs) run at those positions only
# (`macm_core/train/loss.py`). It is the same loss, computed on fewer rows; a unit test
# compares both its value and its gradients with the decoder's own loss.

# %% tags=["parameters"]
profile = "cpu"
seed = 0

# %% tags=["nbval-ignore-output"]
# (this cell computes the features and trains the variants on first use; nbval ignores the progress)
import json
import time

import pandas as pd
import plotly.graph_objects as go
from IPython.display import Markdown, display

from macm_core import figures
from macm_core.config import load_profile
from macm_core.determinism import set_determinism
from macm_core.features import book_feature_sets, compute_features, load_features
from macm_core.paths import resolve
from macm_core.runs import load_variant, train_runs
from macm_core.variants import VARIANTS

config = load_profile(profile)
set_determinism(seed, threads=config.threads)
figures_dir = resolve(config.book.figures_dir)
seeds = list(config.train.seeds)
# the features of every set the book reads (training split first, then the evaluation
# splits and the occlusion sweep), in one pool of worker processes: they start once, and no
# worker waits idle on a set's last batch
compute_features(config, book_feature_sets(config), progress=False)
start = time.perf_counter()
wanted = [(variant, s) for variant in config.train.variants for s in config.train.seeds_for(variant)]
folders = train_runs(config, wanted)  # train.parallel_runs at a time
runs = {run: json.loads((folder / "run.json").read_text()) for run, folder in folders.items()}
wall = time.perf_counter() - start

# %% [markdown]
# ## What is frozen and what is trained

# %%
first = runs[(config.train.variants[0], seeds[0])]
counts = pd.Series(first["parameters"], name="parameters").to_frame()
counts["trained"] = ["no (frozen)" if "frozen" in name else "yes" for name in counts.index]
counts.loc["total"] = [counts["parameters"].sum(), ""]
display(counts)
display(Markdown(
    f"Encoder `{config.features.encoder}`, {config.features.keyframes} keyframes x "
    f"{config.features.grid ** 2} tokens per pathway; decoder `{config.model.decoder}`"
    + (f" ({config.model.num_layers} layers, width {config.model.hidden_size}, trained from scratch with a "
       f"tokenizer of {config.model.vocab_size} tokens trained on the training captions)"
       if config.model.decoder == "scratch-qwen2" else "")
    + f"; stage 1 {config.train.stage1_steps} steps, stage 2 {config.train.stage2_steps} steps of "
      f"{config.train.batch_size} items{', LoRA' if config.train.lora else ''}."))

# %% [markdown]
# ## Loss curves
#
# Mean token cross-entropy of each training step (caption and QA targets together), for
# every variant and seed; stage 2 continues the step count of stage 1.

# %%
fig = go.Figure()
palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
for i, variant in enumerate(config.train.variants):
    for j, s in enumerate(config.train.seeds_for(variant)):
        run = runs[(variant, s)]
        steps, losses, offset = [], [], 0
        for stage in ("stage1", "stage2"):
            curve = run["stages"][stage]["losses"]
            steps += [offset + step for step, _ in curve]
            losses += [loss for _, loss in curve]
            offset += len(curve)
        fig.add_trace(go.Scatter(x=steps, y=losses, mode="lines", name=f"{variant} (seed {s})",
                                 legendgroup=variant, showlegend=j == 0, line=dict(color=palette[i % 6], width=1),
                                 opacity=1.0 if j == 0 else 0.5))
fig.add_vline(x=config.train.stage1_steps, line_dash="dot", annotation_text="stage 2 starts")
fig.update_layout(xaxis_title="optimizer step", yaxis_title="training loss (token cross-entropy)",
                  yaxis_type="log", height=420, margin=dict(t=30))
figures.export(fig, "training_loss_curves", figures_dir)
figures.show(fig, "training-loss-curves")

# %% [markdown]
# ## Wall time on this machine

# %% tags=["nbval-ignore-output"]
# (times and rates differ from run to run)
rows = []
for (variant, s), run in runs.items():
    rows.append({"variant": variant, "seed": s, "train clips": run["train_clips"],
                 "stage 1 samples/s": run["stages"]["stage1"]["samples_per_s"],
                 "stage 2 samples/s": run["stages"]["stage2"]["samples_per_s"],
                 "training seconds": run["stages"]["stage1"]["seconds"] + run["stages"]["stage2"]["seconds"],
                 "final loss": round(run["stages"]["stage2"]["losses"][-1][1], 3)})
table = pd.DataFrame(rows).set_index(["variant", "seed"])
display(table)
feature_info = pd.DataFrame([load_features(config, "train", keyframes="uniform", progress=False).info])
display(feature_info[["split", "clips", "seconds_both_modes"]].rename(
    columns={"seconds_both_modes": "feature extraction seconds, both keyframe modes (first run)"}))

# %% [markdown]
# Training times above are those of the run that made each model (they are cached and
# reused); the feature extraction time is that of the first run, which includes rendering,
# pose estimation, fitting and both encoder passes. The profile trains
# `train.parallel_runs` runs at once, each in its own process with its share of the
# threads, so the notebook's wall time is less than the sum of the runs' times; a run's
# weights are the same either way.

# %% tags=["nbval-ignore-output"]
print(f"this notebook's wall time: {wall:.0f} s (cached runs are reused)")
