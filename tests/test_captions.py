"""Captions and QA written from the labels agree with the labels, and no more."""
import re
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from macm_core.data.captions import (COUNT_PHRASES, action_clause, caption_counts,
                                     caption_mentions, caption_speeds, coarse_caption,
                                     expected_mentions, fine_caption)
from macm_core.data.motion import generate_motion, layout_segment
from macm_core.data.qa import Claim, claim_holds, make_qa
from macm_core.data.vocabulary import PAIRS, SIDED_PARTS, is_counted


def segments_of(seed, num_frames=64, fps=16.0):
    return generate_motion(seed=seed, num_frames=num_frames, fps=fps).segments


def side_words(text):
    return set(re.findall(r"\b(left|right|both)\b", text.lower()))


# ---------------------------------------------------------------------------------
# the lexicon
# ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text,mentions", [
    ("He bounces a ball with the left palm.", [("left", "hand")]),
    ("She turns to the left, then leans right.", []),
    ("The person taps the toes of the right foot.", [("right", "foot")]),
    ("Someone waves the left hand. Then the hand drops.", [("left", "hand"), ("left", "hand")]),
    ("They lift the left and right hands.", [("left", "hand"), ("right", "hand")]),
    ("A left-hand wave, then the other hand.", [("left", "hand"), ("right", "hand")]),
    ("The upper body bends; the head nods.", [(None, "torso"), (None, "head")]),
    ("Someone is standing and moving their arms.", [(None, "arm")]),
    ("Kicks with the RIGHT FOOT, then a limb moves.", [("right", "foot"), (None, "limb")]),
])
def test_caption_mentions(text, mentions):
    assert caption_mentions(text) == mentions


def test_counts_and_speeds_are_read_back():
    text = "The person slowly waves the left hand twice, then kicks three times at a fast pace."
    assert caption_counts(text) == [2, 3]
    assert caption_speeds(text) == ["slowly", "quickly"]
    assert caption_counts("nods once and jumps four times in a row") == [1, 4]
    with pytest.raises(TypeError, match="caption must be a str"):
        caption_mentions(None)


# ---------------------------------------------------------------------------------
# fine captions say exactly the labels
# ---------------------------------------------------------------------------------

@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 10**6))
def test_fine_caption_agrees_with_labels(seed):
    segments = segments_of(seed)
    caption = fine_caption(segments, seed=seed)
    assert caption == fine_caption(segments, seed=seed)
    assert set(caption_mentions(caption)) == expected_mentions(segments)
    assert caption_counts(caption) == [s.repetitions for s in segments if is_counted(s.action)]
    assert caption_speeds(caption) == [s.speed for s in segments]
    allowed = {s.side for s in segments} | {s.direction for s in segments}
    assert side_words(caption) <= allowed


def test_every_label_is_captioned_faithfully_with_variety():
    for (part, action), directions in PAIRS.items():
        for direction in directions:
            for side in (("left", "right") if part in SIDED_PARTS else (None,)):
                reps = 3 if is_counted(action) else 1
                seg = layout_segment(part=part, side=side, action=action, direction=direction,
                                     speed="slowly", repetitions=reps, start_frame=0, fps=16)
                texts = {fine_caption([seg], seed=s) for s in range(12)}
                assert len(texts) >= 6, texts
                for text in texts:
                    assert set(caption_mentions(text)) == expected_mentions([seg]), text
                    assert caption_counts(text) == ([3] if is_counted(action) else []), text
                    assert caption_speeds(text) == ["slowly"], text
    wave = layout_segment(part="hand", side="left", action="wave", direction=None,
                          speed="normally", repetitions=3, start_frame=0, fps=16)
    assert any("three times" in fine_caption([wave], seed=s) for s in range(5))


def test_multi_segment_captions_keep_time_order():
    segments = [layout_segment(part="hand", side="left", action="wave", direction=None,
                               speed="quickly", repetitions=2, start_frame=0, fps=16),
                layout_segment(part="foot", side="right", action="kick", direction="forward",
                               speed="slowly", repetitions=4, start_frame=30, fps=16)]
    for seed in range(20):
        text = fine_caption(segments, seed=seed)
        mentions = [m for m in caption_mentions(text)]
        assert mentions == [("left", "hand"), ("right", "foot")], text
        assert caption_counts(text) == [2, 4] and caption_speeds(text) == ["quickly", "slowly"]


def test_coarse_captions_are_vague():
    texts = set()
    for seed in range(120):
        segments = segments_of(seed, num_frames=32, fps=8)
        text = coarse_caption(segments, seed=seed)
        texts.add(text)
        assert not side_words(text), text
        assert all(side is None for side, _ in caption_mentions(text)), text
        assert caption_counts(text) == [] and caption_speeds(text) == [], text
    assert len(texts) >= 10


def test_captions_reject_bad_input():
    with pytest.raises(ValueError, match="non-empty list of Segment"):
        fine_caption([], seed=0)
    with pytest.raises(ValueError, match="cannot 'wave'"):
        action_clause(part="foot", side="left", action="wave", direction=None,
                      repetitions=1, speed=None, rng=np.random.default_rng(0))


# ---------------------------------------------------------------------------------
# QA
# ---------------------------------------------------------------------------------

def test_judge_statements_are_true_or_false_as_labelled_and_30_percent_false():
    answers, corruptions = Counter(), Counter()
    for seed in range(300):
        segments = segments_of(seed, num_frames=32, fps=8)
        items = make_qa(segments, seed=seed)
        assert items == make_qa(segments, seed=seed)
        for qa in items:
            if qa.kind != "judge":
                continue
            answers[qa.answer] += 1
            corruptions[qa.corruption] += 1
            assert claim_holds(qa.claim, segments) == (qa.answer == "true"), qa
            statement = qa.question.split("? ", 1)[-1].split(": ", 1)[-1]
            want = set() if qa.claim.part == "body" else {(qa.claim.side, qa.claim.part)}
            assert set(caption_mentions(statement)) == want, qa
            stated = caption_counts(statement)
            assert stated == ([qa.claim.repetitions] if qa.claim.repetitions else []), qa
    rate = answers["false"] / sum(answers.values())
    assert 0.25 <= rate <= 0.35, rate
    assert all(corruptions[how] > 10 for how in ("side", "part", "action", "count")), corruptions


def test_open_answers_match_labels():
    kinds = Counter()
    for seed in range(120):
        segments = segments_of(seed)
        for qa in make_qa(segments, seed=seed, num_open=6, num_judge=0):
            seg = segments[qa.segment]
            q = qa.question
            kinds[q.split()[0] + " " + q.split()[1]] += 1
            if q.startswith("How many times"):
                assert qa.answer == COUNT_PHRASES[seg.repetitions][0]
                same = [s for s in segments if (s.part, s.side, s.action, s.direction)
                        == (seg.part, seg.side, seg.action, seg.direction)]
                assert {s.repetitions for s in same} == {seg.repetitions}
            elif re.match(r"Which (hand|arm|foot|leg) ", q):
                assert qa.answer == f"the {seg.side} {seg.part}"
                assert {s.side for s in segments if (s.part, s.action)
                        == (seg.part, seg.action)} == {seg.side}
            if "body part" in q or "limb" in q:
                assert set(caption_mentions(qa.answer)) == expected_mentions([seg])
    assert kinds["How many"] > 20 and kinds["Which hand"] > 5 and kinds["Which body"] > 20


def test_example_questions():
    bounce = layout_segment(part="hand", side="left", action="bounce_ball", direction=None,
                            speed="quickly", repetitions=3, start_frame=0, fps=16)
    questions = {qa.question: qa.answer for qa in make_qa([bounce], seed=0, num_open=20,
                                                           num_judge=0)}
    assert questions["Which hand does the person bounce the ball with?"] == "the left hand"
    assert questions["Which body part does the person bounce the ball with?"] == "the left hand"
    assert questions["How many times does the person bounce a ball with the left hand?"] \
        == "three times"
    assert questions["How fast does the person bounce a ball with the left hand?"] == "quickly"
    false_one = Claim(part="foot", side="left", action="bounce_ball", direction=None)
    assert not claim_holds(false_one, [bounce])
    with pytest.raises(ValueError, match="false_rate"):
        make_qa([bounce], seed=0, false_rate=1.5)
