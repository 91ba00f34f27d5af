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
# # Motion Synergetic Decoding (MSD)
#
# M-ACM decodes with two pathways of one model: the **visual** pathway (the prompt
# holds the video's features) and the **motion** pathway (it holds the features of the
# fitted body rendered over the same keyframes). At every step, MSD scores each word by
# how likely the visual pathway finds it plus a **synergy** S that rewards the words
# both pathways agree on, and it only considers the words the visual pathway finds
# plausible enough (the **pruning** rule).
#
# **What the paper publishes and what this chapter adds.** The paper gives only the
# outline of MSD: a synergy score S = L1 + ... + L5 made of an exponential, an
# averaging, a logarithmic, a power and a quadratic term; the constants
# alpha = [0.5, 0.2, 0.4, 0.8, 0.3, 2.0], beta = 0.2, theta = 2.0; and the pruning rule
# V_head = {y : rho(y) >= beta (1 + S)}. **The exact formulas of L1 to L5 are not
# public. The formulas below are this project's reconstruction**, built to fit that
# outline and those constants; they are not the paper's. Every constant sits in one
# config object (`MSDConfig`) and every term can be switched off, so the paper's own
# formulas could replace ours without touching the decoding loop.

# %% tags=["parameters"]
profile = "cpu"
seed = 0

# %%
from dataclasses import asdict

import pandas as pd
import plotly.graph_objects as go
from IPython.display import Markdown, display

from macm_core import figures
from macm_core.bench.latency import (CUMULATIVE_TERMS, bench_latency, build_bench_model, keyframes_of,
                                     random_clip_prompts)
from macm_core.config import load_profile
from macm_core.decoding import MSDConfig, VCDConfig
from macm_core.decoding.example import FOOT, HAND, VOCAB, hand_foot_logits, noised_logits
from macm_core.decoding.msd import (cut_floor, greedy_scores, msd_scores, poe_scores, synergy_bounds,
                                    synergy_terms, vcd_scores)
from macm_core.determinism import set_determinism
from macm_core.paths import resolve

config = load_profile(profile)
set_determinism(seed, threads=config.threads)
figures_dir = resolve(config.book.figures_dir)
small = config.name == "smoke"
cfg = MSDConfig()

# %% [markdown]
# ## The formulas (this project's reconstruction)
#
# At decoding step t, for the words y of the vocabulary V, let
# z_v(y) = logit(y | v, Q, y_<t) be the visual pathway's logits and
# z_m(y) = logit(y | v_m, Q, y_<t) the motion pathway's, with the same generated
# prefix y_<t; p_v = softmax(z_v) and p_m = softmax(z_m), always in float32. Both
# pathways run as two rows of one batch with one key/value cache.
#
# | term | name | formula (element-wise over the vocabulary) |
# | --- | --- | --- |
# | L1 | exponential amplification | alpha1 (exp(theta min(p_v, p_m)) - 1) / (exp(theta) - 1) |
# | L2 | arithmetic mean | alpha2 (p_v + p_m) / 2 |
# | L3 | soft log penalty | -alpha3 log(1 + abs(p_v - p_m)) |
# | L4 | power transform | alpha4 (p_v p_m)^(1 / alpha6)   (alpha6 = 2: the geometric mean) |
# | L5 | quadratic penalty | -alpha5 (p_v - p_m)^2 |
# | S | synergy | the sum of the enabled terms |
#
# | step | rule |
# | --- | --- |
# | visual top word | y_hat = argmax p_v |
# | cut | c = clamp(beta (1 + S(y_hat)), 0, 1) |
# | pruning | V_head = {y : p_v(y) >= c max p_v}; it always holds y_hat, so it is never empty |
# | scores | z_msd(y) = log p_v(y) + S(y) on V_head, minus infinity elsewhere |
# | choice | argmax z_msd (greedy), or temperature / top-p sampling from it |
#
# L1, L2 and L4 reward agreement (they are largest when both pathways give a word a
# high probability); L3 and L5 penalise disagreement. The baselines decoded by the same
# loop: greedy on the visual pathway alone (the paper's baseline decoding), greedy on
# the joint prompt (video and motion features in one sequence), the product of experts
# (log p_v + log p_m, pruned the same way with S = 0) and VCD (Leng et al., CVPR 2024:
# (1 + a) z_v - a z_v', where v' is the video with diffusion noise, on
# {p_v >= b max p_v}). The constants, from the one config object:

# %%
constants = pd.DataFrame(
    [{"constant": k, "value": v, "from": "paper" if k.startswith(("alpha", "beta", "theta")) else "switch"}
     for k, v in asdict(cfg).items()]
    + [{"constant": f"VCD {k}", "value": v, "from": "Leng et al."} for k, v in asdict(VCDConfig()).items()])
constants.set_index("constant")

# %% [markdown]
# ## A worked example: "hand" or "foot"?
#
# A vocabulary of ten words and one step, after "the person raises their left ...".
# The video alone slightly prefers "foot" (logit 2.0 against 1.8); the motion pathway,
# which sees the wrist move, clearly prefers "hand" (4.0 against 0.0); every other word
# has logit -2 in both. For VCD the noised video has lost the detail that told the two
# words apart (1.5 for both). These numbers are made up to show the arithmetic; the
# unit tests check each of them by hand (`tests/test_msd.py`).

# %%
z_v, z_m = hand_foot_logits()
z_noised = noised_logits()
scores, info = msd_scores(z_v, z_m, cfg)
vocab = info["vocab"]
words = pd.DataFrame({"word": VOCAB, "p_v": vocab["p_v"][0], "p_m": vocab["p_m"][0],
                      **{name: vocab[name][0] for name in ("L1", "L2", "L3", "L4", "L5", "S")},
                      "log p_v + S": (vocab["p_v"][0].log() + vocab["S"][0])})
y_hat = int(info["y_hat"][0])
c = float(info["row"]["c"][0])
threshold = c * float(vocab["p_v"][0].max())
words["in V_head"] = vocab["p_v"][0] >= threshold
words.set_index("word").loc[["hand", "foot", "left", "the"]].round(4)

# %%
s_top = float(vocab["S"][0, y_hat])
head = [VOCAB[i] for i in range(len(VOCAB)) if bool(words["in V_head"][i])]
display(Markdown(
    f"The visual top word is **{VOCAB[y_hat]}** (p_v = {float(vocab['p_v'][0, y_hat]):.4f}) with "
    f"S({VOCAB[y_hat]}) = {s_top:.4f}, so the cut is c = clamp({cfg.beta} x (1 + {s_top:.4f}), 0, 1) = "
    f"**{c:.4f}** and the threshold is c x max p_v = **{threshold:.4f}**. V_head = {{{', '.join(head)}}}: "
    f"the other eight words have p_v = {float(vocab['p_v'][0, 0]):.4f}. On V_head, "
    f"log p_v + S is {float(scores[0, HAND]):.4f} for hand and {float(scores[0, FOOT]):.4f} for foot."))

# %% [markdown]
# The same step for every decoder: the score of the two words that matter, the size
# of the set each decoder chooses from, and its choice.

# %%
decoders = {
    "greedy (visual)": (greedy_scores(z_v), "z_v"),
    "product of experts": (poe_scores(z_v, z_m, cfg), "log p_v + log p_m on {p_v >= beta max p_v}"),
    "VCD": (vcd_scores(z_v, z_noised, VCDConfig()), "(1 + a) log p_v - a log p_v' on {p_v >= b max p_v}"),
    "MSD": ((scores, info), "log p_v + S on V_head"),
}
choices = pd.DataFrame([
    {"decoder": name, "score": rule, "hand": float(s[0, HAND]), "foot": float(s[0, FOOT]),
     "words kept": int(i["row"]["v_head"][0]), "choice": VOCAB[int(s.argmax())]}
    for name, ((s, i), rule) in decoders.items()]).set_index("decoder")
choices.round(4)

# %%
fig_example = go.Figure()
shown = ["hand", "foot", "left", "right", "the"]
index = [VOCAB.index(w) for w in shown]
fig_example.add_bar(x=shown, y=vocab["p_v"][0, index].tolist(), name="p_v (visual pathway)")
fig_example.add_bar(x=shown, y=vocab["p_m"][0, index].tolist(), name="p_m (motion pathway)")
fig_example.add_bar(x=shown, y=vocab["S"][0, index].tolist(), name="synergy S")
fig_example.add_hline(y=threshold, line_dash="dash",
                      annotation_text=f"pruning threshold c max p_v = {threshold:.3f}")
fig_example.update_layout(barmode="group", title="MSD, one step: hand or foot?", yaxis_title="value",
                          xaxis_title="word")
figures.export(fig_example, "msd_hand_foot", figures_dir)
figures.show(fig_example, "msd-hand-foot")

# %% [markdown]
# Greedy decoding and VCD follow the video and say "foot": VCD contrasts the video
# with its noised copy, which can only sharpen what the video already prefers. The
# product of experts and MSD bring in the motion pathway and say "hand". MSD differs
# from the product of experts in how much the motion pathway may move the choice: it
# adds a bounded synergy to log p_v (S lies between the sum of the terms' lowest and
# the sum of their highest values), while the product of experts adds log p_m, which is
# unbounded below; and MSD's cut grows with S(y_hat), so the more the pathways agree on
# the visual top word, the fewer alternatives survive. The terms at the two words:

# %%
terms = synergy_terms(vocab["p_v"], vocab["p_m"], cfg)
terms_at = pd.DataFrame({f"at {VOCAB[y]}": [float(t[0, y]) for t in terms.values()] for y in (HAND, FOOT)},
                        index=list(terms))
terms_at.loc["S"] = terms_at.sum()
terms_at.round(4)

# %% [markdown]
# ## Computing it fast, and exactly
#
# The decoding loop never runs the two pathways as two models: they are two rows of
# one batch with one key/value cache, so each step is one forward pass. On the CPU the
# per-step arithmetic is one compiled loop over the vocabulary (`decoding.fused`, float64
# inside): it finds y_hat, computes S there for the cut c, and then S only on V_head,
# since the scores read S nowhere else. Elsewhere (a GPU) the same formulas run as torch
# operations in float32; for large vocabularies the synergy is then computed only on the
# candidate words {p_v >= c_lo max p_v}, where c_lo is the smallest cut the constants
# allow (every term is bounded, so S(y_hat) >= its lowest value and c >= c_lo). V_head
# and y_hat lie inside the candidates, so the scores are the same, bit for bit. The unit
# tests check both on random, extreme, tied and one-hot logits, and that the two
# implementations agree to float32 rounding.

# %%
low, high = synergy_bounds(cfg)
display(Markdown(f"With the paper's constants S lies in [{low:.4f}, {high:.4f}], so c_lo = {cut_floor(cfg):.4f} "
                 f"(with a small margin for rounding): V_head only ever holds words with at least "
                 f"{100 * cut_floor(cfg):.1f}% of the visual top word's probability, whatever S is."))

# %% [markdown]
# ## What MSD costs: time per caption
#
# The paper's Figure 2 times MSD against its baseline decoding: 0.41 s per caption for
# greedy decoding of the visual pathway, about 1.99 s with all five synergy terms
# (about 4.9 times as long). The same measurement here, in one run: every decoder on
# the same model and the same clips, MSD with cumulative term sets (L2 alone, then
# +L1, +L3, +L4, +L5), captions of a fixed length (no end-of-sequence stop, so every
# decoder generates the same number of tokens), the first clip a warm-up, each clip
# running every decoder in a rotated order, on one torch thread. The model is this
# profile's architecture with **random weights** and random encoder features of the
# cached features' shape: timing needs no trained model, and the captions are not the
# point here. (One thread, not the profile's two: on a shared two-core machine two
# threads make the two-row matrix products wait for each other, and the ratios below
# then measure the machine's load more than the decoders.)

# %% tags=["nbval-ignore-output"]
# (timings differ from run to run: nbval ignores this cell's output)
captions, new_tokens = (3, 8) if small else (20, 32)
model, _, weights = build_bench_model(config)
clips = random_clip_prompts(model, captions + 1, keyframes=keyframes_of(config), seed=seed)
lines = []
report = bench_latency(model, clips, max_new_tokens=new_tokens, threads=1, warmup=1,
                       info={"profile": config.name, "weights": weights}, emit=lines.append)
latency = pd.DataFrame(report.rows).set_index("label")
display(Markdown(f"`{report.summary}`"))
latency[["median_s", "p10_s", "p90_s", "ms_per_token", "ratio", "paired_ratio"]].round(4)

# %% tags=["nbval-ignore-output"]
steps = ["basic (L2)"] + [f"+{terms[-1]}" for terms in CUMULATIVE_TERMS[1:]]
msd_rows = latency[latency["decoder"] == "msd"]
fig_latency = go.Figure()
fig_latency.add_scatter(x=steps, y=msd_rows["ratio"].tolist(), mode="lines+markers",
                        name=f"this project, {config.name} profile (random weights)")
fig_latency.add_scatter(x=[steps[-1]], y=[1.99 / 0.41], mode="markers", marker_symbol="diamond",
                        marker_size=12, name="paper, Figure 2: all five terms (1.99 s / 0.41 s)")
for name in ("poe", "vcd", "greedy_joint"):
    fig_latency.add_hline(y=float(latency.loc[name, "ratio"]), line_dash="dot",
                          annotation_text=name, annotation_position="right")
fig_latency.add_hline(y=1.0, line_dash="dash", annotation_text="greedy (visual)", annotation_position="left")
fig_latency.update_layout(title="Time per caption relative to greedy decoding of the visual pathway",
                          xaxis_title="MSD terms (cumulative)", yaxis_title="time / greedy-visual time",
                          yaxis_type="log")
figures.export(fig_latency, "msd_latency", figures_dir)
figures.show(fig_latency, "msd-latency")

# %% [markdown]
# Every pairwise decoder (product of experts, VCD, MSD) runs two rows per step, so its
# floor is the cost of a two-row forward pass against a one-row one; MSD's five terms
# add about twenty element-wise operations over the vocabulary per step on top of
# that. On a small decoder on the CPU the two-row forward pass costs noticeably more
# than one row (its matrix products are compute-bound); on a 7B decoder on a GPU it
# costs about the same (memory-bound): one run of `scripts/gpu_check.py` on an H100
# (Qwen2-7B-sized decoder, random bf16 weights, 20 clips of 32 tokens) measured MSD
# with all five terms at 1.01 times greedy decoding of the visual pathway. This
# implementation does not reproduce the paper's 4.9 times; the paper does not say how
# its implementation runs the two pathways.
