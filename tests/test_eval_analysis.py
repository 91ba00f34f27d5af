"""Analyses of the claim chapters: confusions, paired differences, compositions, the probe."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from macm_core.eval import (composition_rates, confusion_counts, confusion_matrix, describe_labels,
                            fit_probe, flip_kind, format_interval, grounded_metrics, interval_direction,
                            judge_captions, labelled_limb, limb_label, limb_labels, limb_side_accuracy,
                            named_limb_side, paired_difference, pool_keyframes, run_probe, side_part,
                            smpl_features)
from macm_core.eval.confusion import FLIP_KINDS, PART_COLUMNS, SIDE_COLUMNS


def segments(clips: dict[str, list[tuple]]) -> pd.DataFrame:
    """A segments table (as Benchmark.segments) from clip_id -> [(part, side, action[, reps])]."""
    rows = []
    for cid, labels in clips.items():
        for k, (part, side, action, *reps) in enumerate(labels):
            rows.append({"clip_id": cid, "segment": k, "part": part, "side": side, "action": action,
                         "direction": None, "repetitions": reps[0] if reps else 1, "speed": "normally"})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------
# confusion
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("top, chosen, kind", [
    (" hand", " foot", "body part -> body part"),
    ("Arm", " knees", "body part -> body part"),
    (" left", " right", "side -> side"),
    (" hand", " the", "part or side word <-> other"),
    (" slowly", " left", "part or side word <-> other"),
    (" limb", " foot", "part or side word <-> other"),     # "limb" names no part
    (" waves", " raises", "other"),
])
def test_flip_kind(top, chosen, kind):
    assert flip_kind(top, chosen) == kind and kind in FLIP_KINDS


def test_labelled_limb_only_for_one_limb_on_one_side():
    table = segments({
        "hand": [("hand", "left", "wave")],
        "arm+hand": [("arm", "right", "raise"), ("hand", "right", "wave"), ("head", None, "nod")],
        "leg": [("leg", "left", "raise")],
        "two sides": [("hand", "left", "wave"), ("hand", "right", "wave")],
        "two limbs": [("hand", "left", "wave"), ("foot", "left", "tap")],
        "whole body": [("hand", "left", "wave"), ("body", None, "jump")],
        "head only": [("head", None, "nod")],
    })
    got = {cid: labelled_limb(rows) for cid, rows in table.groupby("clip_id", sort=False)}
    assert got == {"hand": ("hand/arm", "left"), "arm+hand": ("hand/arm", "right"),
                   "leg": ("foot/leg", "left"), "two sides": None, "two limbs": None,
                   "whole body": None, "head only": None}


@pytest.mark.parametrize("caption, limb, expected", [
    ("The person waves the left hand.", "hand/arm", ("hand/arm", "left")),
    ("raises the right arm", "hand/arm", ("hand/arm", "right")),
    ("raises both arms", "hand/arm", ("hand/arm", "both")),
    ("taps the right foot", "hand/arm", ("foot/leg", "no side")),   # side of the labelled limb only
    ("waves the left hand and kicks the right foot", "foot/leg", ("both", "right")),
    ("nods the head", "hand/arm", ("neither", "no side")),
    ("waves a hand", "hand/arm", ("hand/arm", "no side")),
])
def test_named_limb_side(caption, limb, expected):
    assert named_limb_side(caption, limb) == expected


def test_confusion_matrices_and_counts_of_known_captions():
    targets = {"a": ("hand/arm", "left"), "b": ("hand/arm", "right"), "c": ("foot/leg", "left"),
               "d": ("foot/leg", "right"), "x": None}
    captions = {
        "greedy": {"a": "waves the left foot", "b": "raises the left arm",
                   "c": "taps the left foot", "d": "kicks the right foot and waves the left hand",
                   "x": "jumps"},
        "msd": {"a": "waves the left hand", "b": "raises the right arm",
                "c": "taps the right foot", "d": "nods", "x": "jumps"},
    }
    judged = judge_captions(captions, targets, clip_ids=["d", "c", "b", "a", "x"])
    assert list(judged["clip_id"]) == ["d", "c", "b", "a"] * 2          # x is not single-limb
    greedy = judged[judged["decoder"] == "greedy"].set_index("clip_id")
    assert greedy.loc["a", ["named limb", "named side", "hand/foot confusion", "left/right confusion"]
                      ].to_list() == ["foot/leg", "no side", True, False]
    assert greedy.loc["b", ["hand/foot confusion", "left/right confusion"]].to_list() == [False, True]
    assert greedy.loc["d", ["named limb", "hand/foot confusion"]].to_list() == ["both", True]

    limb = confusion_matrix(judged, "limb", "greedy")
    assert list(limb.index) == ["hand/arm", "foot/leg"] and list(limb.columns) == PART_COLUMNS
    assert limb.to_numpy().tolist() == [[1, 1, 0, 0], [0, 1, 1, 0]]
    side = confusion_matrix(judged, "side", "msd")
    assert list(side.columns) == SIDE_COLUMNS
    assert side.to_numpy().tolist() == [[1, 1, 0, 0], [0, 1, 0, 1]]
    assert confusion_matrix(judged, "limb").to_numpy().sum() == 8        # both decoders

    counts = confusion_counts(judged, ["greedy", "msd", "other"])
    assert counts.to_dict("index") == {
        "greedy": {"hand/foot confusion": 2, "left/right confusion": 1, "either": 3, "clips": 4},
        "msd": {"hand/foot confusion": 0, "left/right confusion": 1, "either": 1, "clips": 4},
        "other": {"hand/foot confusion": 0, "left/right confusion": 0, "either": 0, "clips": 0},
    }
    empty = judge_captions(captions, {"x": None})
    assert empty.empty and confusion_matrix(empty, "side", "msd").to_numpy().sum() == 0
    assert confusion_counts(empty, ["msd"]).loc["msd"].to_list() == [0, 0, 0, 0]


def test_describe_labels():
    table = segments({"c": [("hand", "right", "wave", 2), ("head", None, "nod")]})
    assert describe_labels(table) == "right hand wave x2; head nod"


# ---------------------------------------------------------------------------------
# paired differences
# ---------------------------------------------------------------------------------


def test_paired_difference_has_the_known_sign_and_interval():
    n = 40
    table = segments({f"c{i:02d}": [("hand", "left", "wave")] for i in range(n)})
    right = {f"c{i:02d}": "waves the left hand" for i in range(n)}
    wrong = {f"c{i:02d}": "waves the right hand" for i in range(n)}
    half = {c: right[c] if i % 2 else wrong[c] for i, c in enumerate(right)}
    a, _ = grounded_metrics(right, table)
    b, _ = grounded_metrics(wrong, table)
    h, _ = grounded_metrics(half, table)

    # every clip right in A, wrong in B: the difference is 1 on every resample
    assert paired_difference(a, b, "part_precision", n=200, seed=0) == (1.0, 1.0, 1.0)
    assert paired_difference(b, a, "CHAIR_s", n=200, seed=0) == (1.0, 1.0, 1.0)
    # half of B's clips right: +0.5, an interval above 0 that contains it; reversed, below 0
    est, low, high = paired_difference(a, h, "part_precision", n=500, seed=0)
    assert est == pytest.approx(0.5) and 0 < low < est < high <= 1.0
    rev = paired_difference(h, a, "part_precision", n=500, seed=0)
    assert rev == pytest.approx((-est, -high, -low))
    # same seed, same resamples: reproducible
    assert paired_difference(a, h, "part_precision", n=500, seed=0) == (est, low, high)
    # a caption set that names no part has no precision: undefined
    none, _ = grounded_metrics({c: "the person jumps" for c in right}, table)
    assert all(math.isnan(v) for v in paired_difference(none, a, "part_precision", n=50, seed=0))
    with pytest.raises(ValueError, match="same clips"):
        paired_difference(a, h.iloc[::-1], "part_f1", n=10)


def test_interval_direction_and_format():
    assert interval_direction(0.2, 0.05) == "yes"
    assert interval_direction(0.2, -0.05) == "unclear"
    assert interval_direction(0.0, -0.1) == interval_direction(-0.2, -0.3) == "no"
    assert interval_direction(float("nan"), float("nan")) == "none"
    assert format_interval(0.1234, -0.01, 0.25) == "+0.123 [-0.010, +0.250]"
    assert format_interval(float("nan"), 0, 0, undefined="n/a") == "n/a"


# ---------------------------------------------------------------------------------
# compositions
# ---------------------------------------------------------------------------------


def test_composition_rates():
    held = [("foot", "tap"), ("leg", "raise")]
    table = segments({
        "h1": [("foot", "left", "tap")],
        "h2": [("leg", "right", "raise"), ("hand", "left", "wave")],
        "s1": [("foot", "left", "kick")],
        "s2": [("leg", "right", "step"), ("head", None, "nod")],
        "other": [("foot", "left", "tap")],                      # no caption: ignored
    })
    captions = {"h1": "taps the left foot",                   # part and action
                "h2": "raises the left leg and waves the left hand",   # action, wrong side
                "s1": "kicks the left foot", "s2": "steps"}
    held_out = composition_rates(captions, table, held, held_out=True)
    assert held_out == {"segments": 2, "part named": 0.5, "action named": 1.0, "both named": 0.5}
    seen = composition_rates(captions, table, held, held_out=False)   # the foot and leg segments
    assert seen == {"segments": 4, "part named": 0.5, "action named": 1.0, "both named": 0.5}
    nothing = composition_rates({"s1": "kicks"}, table, [("arm", "circle")], held_out=True)
    assert nothing["segments"] == 0 and math.isnan(nothing["both named"])


# ---------------------------------------------------------------------------------
# probe
# ---------------------------------------------------------------------------------


def test_limb_labels_and_sides():
    table = segments({"a": [("hand", "left", "wave")], "b": [("head", None, "nod"), ("foot", "right", "tap")],
                      "c": [("body", None, "jump")], "d": [("leg", "right", "raise")]})
    table = table.iloc[::-1]                                    # the first segment, whatever the row order
    assert limb_labels(table, ["d", "c", "b", "a"]) == ["right leg", "whole body", "head", "left arm"]
    assert limb_label("arm", "right") == "right arm" and limb_label("torso", None) == "torso"
    assert side_part("left arm") == ("left", "arm")
    assert side_part("whole body") == (None, "whole body") and side_part("head") == (None, "head")
    classes = ["head", "left arm", "right arm", "right leg"]
    limb, side = limb_side_accuracy([2, 1, 0, 3], [1, 1, 3, 0], classes)
    assert limb == pytest.approx(0.5) and side == pytest.approx(1 / 3)
    assert math.isnan(limb_side_accuracy([1], [0], classes)[1])


def test_smpl_features_shape_and_speeds():
    n, k, fps = 2, 4, 30.0
    orient, body = np.zeros((n, k, 3)), np.zeros((n, k, 69))
    keyframes = np.array([[0, 3, 6, 9], [0, 10, 20, 30]])
    body[:, :, 2] = np.arange(k) * 0.3                           # joint 1 about z, 0.3 rad a keyframe
    feats = smpl_features(orient, body, keyframes, fps)
    assert feats.shape == (n, 24 + 24 + 23 + 23 * 6) and feats.dtype == np.float32
    speed_mean, speed_max = feats[:, :24], feats[:, 24:48]
    np.testing.assert_allclose(speed_mean[:, 1], [0.3 * fps / 3, 0.3 * fps / 10], rtol=1e-3)
    np.testing.assert_allclose(speed_max[:, 1], speed_mean[:, 1], rtol=1e-3)
    assert np.abs(np.delete(speed_max, 1, axis=1)).max() < 1e-3          # other joints still
    spread, mean6d = feats[:, 48:71], feats[:, 71:].reshape(n, 23, 6)
    assert spread[:, 0].min() > 0 and np.abs(spread[:, 1:]).max() < 1e-6
    np.testing.assert_allclose(mean6d[:, 1:], np.broadcast_to([1, 0, 0, 0, 1, 0], (n, 22, 6)), atol=1e-6)


def test_pool_keyframes():
    n, k, grid, d = 2, 3, 2, 5
    tokens = np.random.default_rng(0).normal(size=(n, k * grid * grid, d))
    np.testing.assert_allclose(pool_keyframes(tokens), tokens.mean(1), rtol=1e-5)
    cells = pool_keyframes(tokens, grid)
    assert cells.shape == (n, grid * grid * d)
    np.testing.assert_allclose(cells.reshape(n, grid * grid, d),
                               tokens.reshape(n, k, grid * grid, d).mean(1), rtol=1e-5)


def blobs(rng, per_class, classes=3, dims=6, spread=0.3):
    centres = np.eye(classes, dims) * 4.0
    y = np.repeat(np.arange(classes), per_class)
    return centres[y] + rng.normal(scale=spread, size=(len(y), dims)), torch.as_tensor(y)


def test_probe_separates_separable_data_perfectly():
    rng = np.random.default_rng(0)
    x_train, y_train = blobs(rng, 20)
    x_test, y_test = blobs(rng, 30)
    predict = fit_probe(x_train, y_train, 1e-3, num_classes=3)
    assert (predict(x_train) == y_train).all() and (predict(x_test) == y_test).all()
    result = run_probe(x_train, y_train, x_test, num_classes=3, seed=0)
    assert set(result.cv_accuracy) == {1e-3, 1e-2, 1e-1, 1.0}
    assert result.cv_accuracy[result.strength] == 1.0
    assert result.strength == 1.0                           # all tie at 1.0: the strongest penalty
    assert (result.predicted == y_test.numpy()).all()
    assert run_probe(x_train, y_train, x_test, num_classes=3, seed=0).predicted.tolist() == \
        result.predicted.tolist()


def test_probe_is_at_chance_on_shuffled_labels():
    rng = np.random.default_rng(1)
    x_train, y_train = blobs(rng, 40)
    x_test, y_test = blobs(rng, 60)
    shuffled = y_train[torch.as_tensor(rng.permutation(len(y_train)))]
    result = run_probe(x_train, shuffled, x_test, num_classes=3, seed=0)
    accuracy = (result.predicted == y_test.numpy()).mean()
    assert abs(accuracy - 1 / 3) < 0.15                     # 180 test clips: chance +- ~4.5 sd
    assert max(result.cv_accuracy.values()) < 0.6
