"""Question-answer pairs per clip, as the HMI data has them, written from the labels.

Two kinds:

* ``"open"``: an open-ended question with a short answer, e.g. "Which hand does the
  person wave?" -> "the left hand", "How many times does the person nod the head?" ->
  "three times".  A question is asked only when its answer is unique in the clip.
* ``"judge"``: a statement to judge, answer ``"true"`` or ``"false"``.  About 30 % are
  false (``false_rate``), made from a true one by swapping the side, the part
  (hand <-> foot, arm <-> leg), the action, the count or the direction: the confusions
  fine-grained captioning must avoid.  Each judge item keeps its ``Claim``, and a false
  claim is checked to hold for no segment of the clip.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from .captions import COUNT_PHRASES, check_segments, action_clause
from .motion import Segment
from .vocabulary import (CONFUSABLE_PARTS, PAIRS, REPETITIONS, actions_for, check_label,
                         is_counted)


@dataclass(frozen=True, kw_only=True)
class Claim:
    """What a judge statement asserts; repetitions None = the count is not stated."""

    part: str
    side: str | None
    action: str
    direction: str | None
    repetitions: int | None = None


@dataclass(frozen=True, kw_only=True)
class QAPair:
    """One question about a clip.

    kind: "open" or "judge"; segment: index of the segment it is about; claim and
    corruption (None, "side", "part", "action", "count" or "direction") for judge items.
    """

    question: str
    answer: str
    kind: str
    segment: int
    claim: Claim | None = None
    corruption: str | None = None


def claim_holds(claim: Claim, segments: Sequence[Segment]) -> bool:
    """Whether some segment does what the claim says (count compared when stated)."""
    return any(seg.part == claim.part and seg.side == claim.side and seg.action == claim.action
               and seg.direction == claim.direction
               and (claim.repetitions is None or claim.repetitions == seg.repetitions)
               for seg in segments)


# ---------------------------------------------------------------------------------
# Phrases for questions: infinitive verb phrases ({P} part, {dir} direction) and
# gerunds (what the part is doing)
# ---------------------------------------------------------------------------------

_INFINITIVE: dict[tuple[str, str], str] = {
    ("arm", "raise"): "raise {P} {dir}", ("arm", "lower"): "lower {P}",
    ("arm", "circle"): "circle {P} {dir}", ("arm", "push"): "push {P} {dir}",
    ("hand", "wave"): "wave {P}", ("hand", "punch"): "punch {dir} with {P}",
    ("hand", "tap"): "tap with {P}", ("hand", "bounce_ball"): "bounce a ball with {P}",
    ("foot", "tap"): "tap {P}", ("foot", "stomp"): "stomp {P}",
    ("foot", "kick"): "kick {dir} with {P}", ("foot", "bounce_ball"): "bounce a ball with {P}",
    ("leg", "raise"): "raise {P} {dir}", ("leg", "step"): "step {dir} with {P}",
    ("head", "nod"): "nod {P}", ("head", "shake_head"): "shake {P}",
    ("torso", "bend"): "bend {P} {dir}", ("torso", "lean"): "lean {P} {dir}",
    ("torso", "twist"): "twist {P} {dir}", ("body", "squat"): "squat",
    ("body", "jump"): "jump", ("body", "turn"): "turn {dir}",
}
# "Which hand does the person ...?"
_WHICH: dict[tuple[str, str], str] = {
    ("arm", "raise"): "raise", ("arm", "lower"): "lower", ("arm", "circle"): "circle",
    ("arm", "push"): "push with", ("hand", "wave"): "wave", ("hand", "punch"): "punch with",
    ("hand", "tap"): "tap with", ("hand", "bounce_ball"): "bounce the ball with",
    ("foot", "tap"): "tap", ("foot", "stomp"): "stomp", ("foot", "kick"): "kick with",
    ("foot", "bounce_ball"): "bounce the ball with", ("leg", "raise"): "raise",
    ("leg", "step"): "step with",
}
_GERUND: dict[tuple[str, str], str] = {
    ("arm", "raise"): "raising it {dir}", ("arm", "lower"): "lowering it",
    ("arm", "circle"): "circling it {dir}", ("arm", "push"): "pushing {dir}",
    ("hand", "wave"): "waving it", ("hand", "punch"): "punching {dir}",
    ("hand", "tap"): "tapping", ("hand", "bounce_ball"): "bouncing a ball",
    ("foot", "tap"): "tapping it", ("foot", "stomp"): "stomping",
    ("foot", "kick"): "kicking {dir}", ("foot", "bounce_ball"): "bouncing a ball",
    ("leg", "raise"): "raising it {dir}", ("leg", "step"): "stepping {dir}",
    ("head", "nod"): "nodding", ("head", "shake_head"): "shaking it",
    ("torso", "bend"): "bending it {dir}", ("torso", "lean"): "leaning it {dir}",
    ("torso", "twist"): "twisting it {dir}",
}
# "Which body part ...?": the same question for hand and foot (arm and leg) on purpose
_PART_QUESTION: dict[tuple[str, str], str] = {
    ("arm", "raise"): "Which limb does the person raise?",
    ("leg", "raise"): "Which limb does the person raise?",
    ("arm", "lower"): "Which limb does the person lower?",
    ("arm", "circle"): "Which limb does the person move in a circle?",
    ("arm", "push"): "Which body part does the person push with?",
    ("hand", "wave"): "Which body part does the person wave?",
    ("hand", "punch"): "Which body part does the person punch with?",
    ("hand", "tap"): "Which body part does the person tap with?",
    ("foot", "tap"): "Which body part does the person tap with?",
    ("hand", "bounce_ball"): "Which body part does the person bounce the ball with?",
    ("foot", "bounce_ball"): "Which body part does the person bounce the ball with?",
    ("foot", "stomp"): "Which body part does the person stomp with?",
    ("foot", "kick"): "Which body part does the person kick with?",
    ("leg", "step"): "Which body part does the person step with?",
    ("head", "nod"): "Which body part does the person nod?",
    ("head", "shake_head"): "Which body part does the person shake?",
    ("torso", "bend"): "Which body part does the person bend?",
    ("torso", "lean"): "Which body part does the person lean?",
    ("torso", "twist"): "Which body part does the person twist?",
}
_DIRECTION_ANSWER = {
    "forward": "forward", "backward": "backward", "sideways": "out to the side",
    "up": "up", "down": "down", "left": "to the left", "right": "to the right",
    "clockwise": "clockwise", "counterclockwise": "counterclockwise",
}
_SPEED_ANSWER = {"slowly": "slowly", "normally": "at a normal pace", "quickly": "quickly"}
_JUDGE_PREFIXES = ("True or false: ", "Is this statement true or false? ",
                   "True or false? ")


def _fill(template: str, seg: Segment, *, with_dir: bool = True) -> str:
    det_phrase = f"the {seg.side} {seg.part}" if seg.side else f"the {seg.part}"
    if seg.part == "torso":
        det_phrase = "the upper body"
    direction = _DIRECTION_ANSWER[seg.direction] if (seg.direction and with_dir) else ""
    return " ".join(template.format(P=det_phrase, dir=direction).split())


def _open_candidates(segments: Sequence[Segment]) -> list[tuple[str, QAPair]]:
    """(question type, QAPair) for every open question about every segment."""
    out = []
    for i, seg in enumerate(segments):
        pair = (seg.part, seg.action)
        infinitive = _fill(_INFINITIVE[pair], seg)

        def ask(kind: str, question: str, answer: str) -> None:
            out.append((kind, QAPair(question=question, answer=answer, kind="open", segment=i)))

        if seg.side is not None:
            ask("which", f"Which {seg.part} does the person {_WHICH[pair]}?",
                f"the {seg.side} {seg.part}")
        if pair in _PART_QUESTION:
            ask("part", _PART_QUESTION[pair], _fill("{P}", seg))
        if pair in _GERUND:
            ask("doing", f"What is the person doing with {_fill('{P}', seg)}?",
                _fill(_GERUND[pair], seg))
        if is_counted(seg.action):
            ask("count", f"How many times does the person {infinitive}?",
                COUNT_PHRASES[seg.repetitions][0])
        ask("speed", f"How fast does the person {infinitive}?", _SPEED_ANSWER[seg.speed])
        if seg.direction is not None:
            ask("direction", "In which direction does the person "
                f"{_fill(_INFINITIVE[pair], seg, with_dir=False)}?",
                _DIRECTION_ANSWER[seg.direction])
        if len(segments) > 1 and i in (0, len(segments) - 1):
            ask("order", f"What does the person do {'first' if i == 0 else 'last'}?", infinitive)
    return out


def _unique(candidates):
    """Keep each question once, and only if all segments it fits give one answer."""
    answers: dict[str, set] = {}
    for _, qa in candidates:
        answers.setdefault(qa.question, set()).add(qa.answer)
    seen, out = set(), []
    for kind, qa in candidates:
        if len(answers[qa.question]) == 1 and qa.question not in seen:
            seen.add(qa.question)
            out.append((kind, qa))
    return out


def _corrupt(claim: Claim, how: str, rng: np.random.Generator) -> Claim | None:
    """The claim with one thing swapped, or None when that swap is impossible."""
    if how == "side":
        if claim.side is None:
            return None
        return replace(claim, side="right" if claim.side == "left" else "left")
    if how == "part":
        other = CONFUSABLE_PARTS.get(claim.part)
        if other is None or (other, claim.action) not in PAIRS:
            return None
        directions = PAIRS[(other, claim.action)]
        direction = claim.direction if claim.direction in directions else \
            directions[int(rng.integers(len(directions)))]
        return replace(claim, part=other, direction=direction)
    if how == "action":
        actions = [a for a in actions_for(claim.part) if a != claim.action]
        if not actions:
            return None
        action = actions[int(rng.integers(len(actions)))]
        directions = PAIRS[(claim.part, action)]
        return replace(claim, action=action,
                       direction=directions[int(rng.integers(len(directions)))],
                       repetitions=claim.repetitions if is_counted(action) else None)
    if how == "count":
        if claim.repetitions is None:
            return None
        others = [n for n in REPETITIONS if n != claim.repetitions]
        return replace(claim, repetitions=others[int(rng.integers(len(others)))])
    if how == "direction":
        others = [d for d in PAIRS[(claim.part, claim.action)] if d != claim.direction]
        if not others:
            return None
        return replace(claim, direction=others[int(rng.integers(len(others)))])
    raise ValueError(f"unknown corruption {how!r}")


CORRUPTIONS = ("side", "part", "action", "count", "direction")
# side and part swaps (left/right, hand/foot) are the confusions the paper targets
CORRUPTION_WEIGHTS = (0.3, 0.3, 0.15, 0.15, 0.1)


def _judge(segments: Sequence[Segment], i: int, false: bool,
           rng: np.random.Generator) -> QAPair:
    seg = segments[i]
    claim = Claim(part=seg.part, side=seg.side, action=seg.action, direction=seg.direction,
                  repetitions=seg.repetitions if is_counted(seg.action) and rng.random() < 0.5
                  else None)
    corruption = None
    if false:
        for how in rng.choice(CORRUPTIONS, size=len(CORRUPTIONS), replace=False,
                              p=CORRUPTION_WEIGHTS):
            base = claim
            if how == "count" and base.repetitions is None and is_counted(seg.action):
                base = replace(claim, repetitions=seg.repetitions)
            changed = _corrupt(base, str(how), rng)
            if changed is not None and not claim_holds(changed, segments):
                claim, corruption = changed, str(how)
                break
    clause = action_clause(part=claim.part, side=claim.side, action=claim.action,
                           direction=claim.direction, repetitions=claim.repetitions,
                           speed=None, rng=rng)
    statement = f"The person {clause}."
    return QAPair(question=_JUDGE_PREFIXES[int(rng.integers(len(_JUDGE_PREFIXES)))] + statement,
                  answer="false" if corruption else "true", kind="judge", segment=i,
                  claim=claim, corruption=corruption)


def make_qa(segments: Sequence[Segment], *, seed: int, num_open: int = 3, num_judge: int = 3,
            false_rate: float = 0.3) -> list[QAPair]:
    """Up to ``num_open`` open questions (fewer when the clip has fewer unambiguous ones)
    and exactly ``num_judge`` true/false statements, each false with probability
    ``false_rate``; deterministic per seed."""
    check_segments(segments)
    for seg in segments:
        check_label(part=seg.part, side=seg.side, action=seg.action, direction=seg.direction,
                    repetitions=seg.repetitions, speed=seg.speed)
    if num_open < 0 or num_judge < 0:
        raise ValueError(f"num_open and num_judge must be >= 0, got {num_open}, {num_judge}")
    if not 0.0 <= false_rate <= 1.0:
        raise ValueError(f"false_rate must be in [0, 1], got {false_rate}")
    rng = np.random.default_rng(seed)
    candidates = _unique(_open_candidates(segments))
    order = rng.permutation(len(candidates))
    chosen, kinds = [], set()
    for j in order:                       # prefer different question types first
        if candidates[j][0] not in kinds:
            kinds.add(candidates[j][0])
            chosen.append(int(j))
    chosen += [int(j) for j in order if int(j) not in chosen]
    items = [candidates[j][1] for j in chosen[:num_open]]
    claims = set()
    for _ in range(num_judge):
        false = bool(rng.random() < false_rate)
        for _attempt in range(5):                 # avoid asking the same claim twice
            i = int(rng.integers(len(segments)))
            item = _judge(segments, i, false, rng)
            if item.claim not in claims:
                break
        claims.add(item.claim)
        items.append(item)
    return items
