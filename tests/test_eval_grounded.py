"""Grounded caption metrics: the lexicon, parse_caption, grounded_metrics, QA accuracy."""
import math
import re

import numpy as np
import pandas as pd
import pytest

from macm_core.data.captions import fine_caption
from macm_core.data.motion import layout_segment
from macm_core.data.vocabulary import ACTIONS, PAIRS, PARTS, SPEEDS, is_counted, sides_for
from macm_core.eval import grounded_metrics, moving_parts, parse_caption, qa_accuracy
from macm_core.eval.grounded import GROUNDED_METRICS, summarise
from macm_core.eval.lexicon import (ACTION_WORDS, COUNT_WORDS, PART_WORDS, SIDE_WORDS,
                                    WHOLE_BODY_PHRASES, normalise)
from macm_core.eval.qa import normalise_answer, qa_correct, verdict

PERFECT = {"part_precision": 1.0, "part_recall": 1.0, "part_f1": 1.0, "laterality": 1.0,
           "action_precision": 1.0, "action_recall": 1.0, "action_f1": 1.0,
           "action_exact": 1.0, "count_accuracy": 1.0, "count_recall": 1.0,
           "CHAIR_i": 0.0, "CHAIR_s": 0.0}


def table(clips: dict[str, list[dict]]) -> pd.DataFrame:
    """A segments table (as Benchmark.segments) from clip_id -> list of label dicts."""
    rows = []
    for cid, labels in clips.items():
        for k, lab in enumerate(labels):
            rows.append({"clip_id": cid, "segment": k, "side": None, "direction": None,
                         "repetitions": 1, "speed": "normally", **lab})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------
# lexicon
# ---------------------------------------------------------------------------------


def test_lexicon_covers_every_label_and_no_word_names_two_actions():
    assert set(ACTION_WORDS) == set(ACTIONS)
    words = [w for forms in ACTION_WORDS.values() for w in forms]
    assert len(words) == len(set(words))
    assert {p for p in PART_WORDS.values()} - {"limb"} == set(PARTS) - {"body"}
    assert SIDE_WORDS["both"] == ("left", "right")
    for word, part in {"hands": "hand", "fist": "hand", "palm": "hand", "feet": "foot",
                       "toes": "foot", "knee": "leg", "trunk": "torso", "arms": "arm"}.items():
        assert PART_WORDS[word] == part
    for action, forms in {"wave": ("waves", "waving", "waved"), "tap": ("tapping",),
                          "bend": ("bent",), "shake_head": ("shook",)}.items():
        assert set(forms) <= set(ACTION_WORDS[action])
    assert COUNT_WORDS["once"] == 1 and COUNT_WORDS["twice"] == 2
    assert COUNT_WORDS["three times"] == 3 and COUNT_WORDS["four times"] == 4
    assert "whole body" in WHOLE_BODY_PHRASES


@pytest.mark.parametrize("text, parts", [
    ("The person waves the left hand.", [("left", "hand")]),
    ("She waves both hands.", [("left", "hand"), ("right", "hand")]),
    ("raises the left and right arms", [("left", "arm"), ("right", "arm")]),
    ("Taps the toes of the right foot.", [("right", "foot")]),
    ("bends the upper body forward", [(None, "torso")]),
    ("The whole body jumps.", [(None, "body")]),
    ("The rest of the body stays mostly still.", []),       # a bare "body" is vague
    ("The person moves their limbs.", []),                   # so is "limb"
    ("Kicks with the LEFT-FOOT!!", [("left", "foot")]),
])
def test_parse_caption_parts(text, parts):
    assert list(parse_caption(text).parts) == parts


@pytest.mark.parametrize("text, actions, counts", [
    ("The person waves the left hand twice.", ["wave"], [("wave", 2)]),
    ("raises the right arm up and brings it back down three times",
     ["raise"], [("raise", 3)]),                             # the way back is no "lower"
    ("lifts the left foot and stomps it down 4 times", ["stomp"], [("stomp", 4)]),
    ("The person slowly brings their right arm back down.", ["lower"], []),
    ("Twice, the person nods. Then jumps x3.", ["nod", "jump"], [("nod", 2), ("jump", 3)]),
    ("crouches down into a squat and rises once", ["squat"], [("squat", 1)]),
    ("dribbles a ball with the left hand", ["bounce_ball"], []),
    ("bounces on the spot", [], []),                        # no ball: not bounce_ball
    ("shakes out the arms", [], []),                        # no head: not shake_head
    ("waves, then punches 2 times and kicks twice", ["wave", "punch", "kick"],
     [("punch", 2), ("kick", 2)]),
    ("it happens twice", [], [(None, 2)]),
])
def test_parse_caption_actions_and_counts(text, actions, counts):
    mentions = parse_caption(text)
    assert list(mentions.actions) == actions
    assert list(mentions.counts) == counts


@pytest.mark.parametrize("text", ["", "   ", "...", "the the the the", "%$#@ 1234 ???",
                                  "left left left right hand hand hand " * 50,
                                  "wavewave handhand\n\tfoot\u00e9\u4e2d"])
def test_parse_caption_survives_garbage(text):
    mentions = parse_caption(text)
    assert len(mentions.parts) == len(set(mentions.parts)) <= 4
    assert set(mentions.actions) <= set(ACTIONS)


def test_parse_caption_rejects_non_text():
    with pytest.raises(TypeError, match="str"):
        parse_caption(None)
    assert normalise("A  Left-Hand, waves!") == "a left hand, waves!"


# ---------------------------------------------------------------------------------
# ground truth reads back perfectly, for every label and caption template
# ---------------------------------------------------------------------------------


def every_label():
    for (part, action), directions in PAIRS.items():
        for side in sides_for(part):
            for direction in directions:
                for reps in (1, 2, 3, 4) if is_counted(action) else (1,):
                    yield dict(part=part, side=side, action=action, direction=direction,
                               repetitions=reps)


def test_ground_truth_captions_score_perfectly_for_every_label():
    labels = list(every_label())
    rng = np.random.default_rng(0)
    clips, captions = {}, {}
    for i, lab in enumerate(labels):
        for seed in range(5):                       # several templates per label
            picks = [lab] + [labels[j] for j in rng.choice(len(labels), size=seed % 3)]
            segs = [layout_segment(**p, speed=SPEEDS[(seed + k) % 3], start_frame=0, fps=8.0)
                    for k, p in enumerate(picks)]
            cid = f"clip-{i}-{seed}"
            captions[cid] = fine_caption(segs, seed=1000 * i + seed)
            clips[cid] = picks
    per_clip, summary = grounded_metrics(captions, table(clips))
    assert summary == PERFECT
    assert len(per_clip) == 5 * len(labels) and (per_clip["parts_hallucinated"] == 0).all()


# ---------------------------------------------------------------------------------
# hand-made cases: what counts as right, wrong side, hallucinated
# ---------------------------------------------------------------------------------

ARM = {"part": "arm", "side": "left", "action": "raise", "direction": "up", "repetitions": 2}
SQUAT = {"part": "body", "action": "squat", "repetitions": 3}
WAVE = {"part": "hand", "side": "right", "action": "wave", "repetitions": 1}


def one(caption: str, labels: list[dict]) -> pd.Series:
    per_clip, _ = grounded_metrics({"c": caption}, table({"c": labels}))
    return per_clip.loc["c"]


def test_moving_parts_include_the_limb_and_the_whole_body():
    assert moving_parts(table({"c": [ARM]})) == {("left", "arm"), ("left", "hand")}
    squat = moving_parts(table({"c": [SQUAT]}))
    assert {("left", "leg"), ("right", "foot"), (None, "torso"), (None, "body")} <= squat
    assert not any(p in ("hand", "arm", "head") for _, p in squat)


def test_a_part_of_the_same_limb_is_right_the_other_side_or_limb_is_not():
    same_limb = one("The person raises the left hand up twice.", [ARM])
    assert same_limb["parts_correct"] == same_limb["parts_named"] == 1
    assert same_limb["parts_recalled"] == 1
    wrong_side = one("The person raises the right arm up twice.", [ARM])
    assert wrong_side["parts_correct"] == 0 and wrong_side["parts_recalled"] == 0
    assert wrong_side["sides_named"] == 1 and wrong_side["sides_correct"] == 0
    assert wrong_side["hallucinates"] == 1
    wrong_limb = one("The person raises the left leg up twice.", [ARM])
    assert wrong_limb["parts_hallucinated"] == 1 and wrong_limb["sides_named"] == 0


def test_unsided_mentions_are_right_but_do_not_recall_a_sided_part():
    row = one("Someone raises an arm.", [ARM])
    assert row["parts_correct"] == 1 and row["parts_recalled"] == 0
    assert row["sides_named"] == 0


def test_whole_body_actions_license_legs_and_torso_but_need_no_part():
    row = one("The person squats three times, bending both knees.", [SQUAT])
    assert row["parts_named"] == 2 and row["parts_correct"] == 2     # both legs move
    assert row["parts_labelled"] == 0
    assert row["actions_correct"] == 1 and row["counts_correct"] == 1
    assert one("The whole body jumps.", [WAVE])["parts_hallucinated"] == 1
    assert one("The whole body squats.", [SQUAT])["parts_hallucinated"] == 0


def test_counts_and_actions_are_checked_against_the_labels():
    row = one("raises the left arm up three times", [ARM])
    assert row["counts_named"] == 1 and row["counts_correct"] == 0
    row = one("raises the left arm up twice and waves once", [ARM])
    assert row["actions_named"] == 2 and row["actions_correct"] == 1
    assert row["counts_named"] == 1          # a count of an unlabelled action is no count error
    assert row["action_set_exact"] == 0


def test_chair_counts_mentions_and_captions():
    captions = {"a": "waves the right hand and the left foot",   # 1 of 2 hallucinated
                "b": "waves the right hand",                       # none
                "c": "the head nods"}                              # 1 of 1
    labels = {cid: [WAVE] for cid in captions}
    _, summary = grounded_metrics(captions, table(labels))
    assert summary["CHAIR_i"] == pytest.approx(2 / 4)
    assert summary["CHAIR_s"] == pytest.approx(2 / 3)
    assert summary["part_precision"] == pytest.approx(2 / 4)


def test_summary_pools_counts_and_handles_empty_denominators():
    captions = {"a": "", "b": "nothing to see"}
    per_clip, summary = grounded_metrics(captions, table({"a": [ARM], "b": [WAVE]}))
    assert math.isnan(summary["part_precision"]) and math.isnan(summary["laterality"])
    assert summary["part_recall"] == 0.0 and math.isnan(summary["part_f1"])
    assert summary["CHAIR_s"] == 0.0 and set(summary) == set(GROUNDED_METRICS)
    doubled = summarise(per_clip, np.array([2.0, 0.0]))
    assert doubled["part_recall"] == 0.0 and doubled["action_exact"] == 0.0


def test_grounded_metrics_requires_labels_for_every_clip():
    with pytest.raises(KeyError, match="no labelled segments"):
        grounded_metrics({"zzz": "waves"}, table({"c": [WAVE]}))


def swap(text: str, a: str, b: str) -> str:
    return re.sub(rf"\b({a}|{b})\b", lambda m: b if m.group(1) == a else a, text)


def test_swapping_parts_or_sides_is_penalised():
    labels = list(every_label())
    clips = {f"c{i}": [lab] for i, lab in enumerate(labels)}
    captions = {f"c{i}": fine_caption([layout_segment(**lab, speed="slowly", start_frame=0,
                                                      fps=8.0)], seed=i)
                for i, lab in enumerate(labels)}
    segments = table(clips)
    _, truth = grounded_metrics(captions, segments)
    _, limbs = grounded_metrics({k: swap(swap(v, "hand", "foot"), "arm", "leg")
                                 for k, v in captions.items()}, segments)
    _, sides = grounded_metrics({k: swap(v, "left", "right") for k, v in captions.items()},
                                segments)
    for swapped in (limbs, sides):
        assert swapped["part_precision"] < truth["part_precision"] - 0.3
        assert swapped["part_recall"] < truth["part_recall"] - 0.3
        assert swapped["CHAIR_i"] > truth["CHAIR_i"] + 0.3
        assert swapped["CHAIR_s"] > truth["CHAIR_s"] + 0.3
    assert sides["laterality"] == 0.0 and truth["laterality"] == 1.0


# ---------------------------------------------------------------------------------
# QA
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("answer, canonical", [
    ("The LEFT hand.", "left hand"), ("their left hand", "left hand"), ("twice", "2"),
    ("2 times", "2"), ("two", "2"), ("Three times.", "3"), ("once", "1"), ("4x", "4"),
    ("at a normal pace", "at normal pace"), ("", ""),
])
def test_normalise_answer(answer, canonical):
    assert normalise_answer(answer) == canonical


@pytest.mark.parametrize("answer, want", [
    ("True.", "true"), ("Yes, that is true", "true"), ("false", "false"), ("No.", "false"),
    ("That is not true.", "false"), ("incorrect", "false"), ("the right hand", None),
    ("", None)])
def test_verdict(answer, want):
    assert verdict(answer) == want


def test_qa_accuracy_sequences_and_mappings():
    gold = ["the left hand", "three times", "true", "false"]
    assert qa_accuracy(gold, gold) == 1.0
    predicted = ["left hand", "3", "No, false.", "False"]
    assert qa_correct(predicted, gold).tolist() == [True, True, False, True]
    assert qa_accuracy({1: "twice", 2: "yes"}, {1: "twice", 2: "true", 3: "up"}) == \
        pytest.approx(2 / 3)
    assert math.isnan(qa_accuracy([], []))
    with pytest.raises(ValueError, match="2 predicted answers for 1"):
        qa_accuracy(["a", "b"], ["a"])
