"""Captions written from the labels, and the lexicon that reads body parts back out.

* ``fine_caption``: a multi-sentence caption that names every segment's part and side,
  its direction, its speed and its repetitions ("twice", "three times"), with several
  templates per action, synonyms for parts and speeds, and varied sentence structure;
  deterministic per seed.
* ``coarse_caption``: one vague sentence of the kind general video data has ("someone
  is standing and moving their arms"); it never names a side, a count or a speed.  It
  stands in for captions "before fine-grained data" in the ablation.
* ``caption_mentions`` / ``caption_counts`` / ``caption_speeds``: what a caption says
  about sides and parts, repetitions and speeds, read with a fixed lexicon.  The
  hallucination metrics use them on model captions; the tests use them to check that
  every generated caption agrees with its labels.

Whole-body actions (squat, jump, turn) are described without naming a part, so they
contribute no mention: ``expected_mentions`` gives the (side, part) set a faithful
caption of some segments mentions.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from .motion import Segment
from .vocabulary import check_label, is_counted

# ---------------------------------------------------------------------------------
# Lexicon: surface words -> parts, sides, counts, speeds
# ---------------------------------------------------------------------------------

# single words that name a part; "limb" is vague (arm or leg) and never a label
PART_LEXICON: dict[str, str] = {
    "hand": "hand", "hands": "hand", "palm": "hand", "palms": "hand", "fist": "hand",
    "fists": "hand", "fingers": "hand", "finger": "hand", "wrist": "hand", "wrists": "hand",
    "arm": "arm", "arms": "arm", "forearm": "arm", "forearms": "arm", "elbow": "arm",
    "elbows": "arm", "shoulder": "arm", "shoulders": "arm",
    "foot": "foot", "feet": "foot", "toe": "foot", "toes": "foot", "heel": "foot",
    "heels": "foot", "ankle": "foot", "ankles": "foot",
    "leg": "leg", "legs": "leg", "knee": "leg", "knees": "leg", "thigh": "leg",
    "thighs": "leg", "shin": "leg", "shins": "leg",
    "head": "head", "chin": "head", "face": "head",
    "torso": "torso", "trunk": "torso", "chest": "torso", "waist": "torso",
    "limb": "limb", "limbs": "limb",
}
# two-word names of a part
PART_BIGRAMS: dict[tuple[str, str], str] = {("upper", "body"): "torso"}
SIDE_WORDS: dict[str, str] = {"left": "left", "right": "right", "both": "both"}
_OPPOSITE = {"left": "right", "right": "left"}

COUNT_PHRASES: dict[int, tuple[str, ...]] = {
    1: ("once", "one time", "a single time"),
    2: ("twice", "two times"),
    3: ("three times",),
    4: ("four times",),
}
# pre-verb adverbs ("slowly waves ...") and trailing phrases ("... at a slow pace")
SPEED_ADVERBS: dict[str, tuple[str, ...]] = {
    "slowly": ("slowly",),
    "normally": ("steadily",),
    "quickly": ("quickly", "rapidly", "briskly"),
}
SPEED_PHRASES: dict[str, tuple[str, ...]] = {
    "slowly": ("slowly", "at a slow pace", "at a leisurely pace", "in a slow, controlled way"),
    "normally": ("at a normal pace", "at a steady pace", "at a moderate pace",
                 "at an even pace"),
    "quickly": ("quickly", "rapidly", "at a fast pace", "at a brisk pace"),
}

_TOKEN = re.compile(r"[a-z]+|[.!?;:,]")
_SENTENCE_END = {".", "!", "?", ";"}


def caption_mentions(caption: str) -> list[tuple[str | None, str]]:
    """The (side, part) mentions of a caption, in order; side is None when unsaid.

    A side word counts only directly before a part word ("the left hand", "right
    foot", "left-hand"), so directions ("turns to the left") are not mentions.  "left
    and right hands" gives both sides; "the other hand" the side opposite the last
    hand.  A part said without a side ("the toes of the left foot", "then the hand")
    refers to the same part said with a side in the same sentence (it is then not
    listed again) or, failing that, to its last sided mention before; otherwise its side
    is None.  Head, torso and "limb" never have a side.
    """
    if not isinstance(caption, str):
        raise TypeError(f"caption must be a str, got {type(caption).__name__}")
    tokens = _TOKEN.findall(caption.lower().replace("-", " "))
    sentences: list[list[tuple[str | None, str]]] = [[]]
    for i, tok in enumerate(tokens):
        if tok in _SENTENCE_END:
            sentences.append([])
            continue
        part = None
        if i + 1 < len(tokens) and (tok, tokens[i + 1]) in PART_BIGRAMS:
            part = PART_BIGRAMS[(tok, tokens[i + 1])]
        elif tok in PART_LEXICON and not (i > 0 and (tokens[i - 1], tok) in PART_BIGRAMS):
            part = PART_LEXICON[tok]
        if part is None:
            continue
        before = tokens[i - 1] if i > 0 else ""
        if part in ("head", "torso", "limb"):
            sentences[-1].append((None, part))
        elif before in SIDE_WORDS:
            if i >= 3 and tokens[i - 2] == "and" and tokens[i - 3] in SIDE_WORDS:
                sentences[-1].append((SIDE_WORDS[tokens[i - 3]], part))
            sentences[-1].append((SIDE_WORDS[before], part))
        elif before == "other":
            sentences[-1].append(("other", part))
        else:
            sentences[-1].append((None, part))
    mentions: list[tuple[str | None, str]] = []
    last_side: dict[str, str] = {}
    for sentence in sentences:
        sided_here = {p for s, p in sentence if s not in (None, "other")}
        for side, part in sentence:
            if side == "other":
                side = _OPPOSITE.get(last_side.get(part, ""), None)
            elif side is None and part not in ("head", "torso", "limb"):
                if part in sided_here:
                    continue
                side = last_side.get(part)
            if side is not None:
                last_side[part] = side
            mentions.append((side, part))
    return mentions


def caption_counts(caption: str) -> list[int]:
    """The repetition counts a caption states ("twice" -> 2), in order."""
    found = []
    for count, phrases in COUNT_PHRASES.items():
        for phrase in phrases:
            found += [(m.start(), count) for m in re.finditer(rf"\b{phrase}\b", caption.lower())]
    return [count for _, count in sorted(found)]


def caption_speeds(caption: str) -> list[str]:
    """The speeds a caption states ("rapidly" -> "quickly"), in order."""
    phrases = sorted({(p, s) for table in (SPEED_ADVERBS, SPEED_PHRASES)
                      for s, ps in table.items() for p in ps}, key=lambda ps: -len(ps[0]))
    pattern = re.compile(r"\b(" + "|".join(re.escape(p) for p, _ in phrases) + r")\b")
    speed_of = dict(phrases)
    return [speed_of[m.group(1)] for m in pattern.finditer(caption.lower())]


def expected_mentions(segments: Sequence[Segment]) -> set[tuple[str | None, str]]:
    """The (side, part) set a faithful caption of these segments mentions."""
    return {(seg.side, seg.part) for seg in segments if seg.part != "body"}


# ---------------------------------------------------------------------------------
# Templates: one verb phrase per segment, starting with a third-person verb
# ---------------------------------------------------------------------------------

PART_WORDS: dict[str, tuple[str, ...]] = {
    "hand": ("hand",), "arm": ("arm",), "foot": ("foot",), "leg": ("leg",),
    "head": ("head",), "torso": ("upper body", "torso", "trunk"),
}
_PART_WORDS_FOR: dict[tuple[str, str], tuple[str, ...]] = {
    ("hand", "punch"): ("fist", "hand"),
    ("hand", "bounce_ball"): ("hand", "palm"),
}
DIRECTION_WORDS: dict[str, tuple[str, ...]] = {
    "forward": ("forward", "to the front", "out in front"),
    "backward": ("backward", "back"),
    "sideways": ("out to the side", "sideways"),
    "up": ("overhead", "straight up", "up high"),
    "down": ("down",),
    "left": ("to the left", "toward the left"),
    "right": ("to the right", "toward the right"),
    "clockwise": ("clockwise", "in a clockwise direction"),
    "counterclockwise": ("counterclockwise", "anticlockwise", "in a counterclockwise direction"),
}
_DIRECTION_WORDS_FOR: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {
    ("arm", "push"): {"up": ("upward", "up overhead", "up toward the ceiling")},
    ("torso", "bend"): {"forward": ("forward", "over")},
    ("foot", "kick"): {"forward": ("forward", "to the front", "straight ahead")},
    ("leg", "step"): {"sideways": ("to the side", "sideways", "out to the side")},
}

# {P} part phrase, {dir} direction phrase, {n} count phrase (counted actions only)
TEMPLATES: dict[tuple[str, str], tuple[str, ...]] = {
    ("arm", "raise"): ("raises {P} {dir} {n}", "lifts {P} {dir} {n}",
                       "raises {P} {dir} and brings it back down {n}"),
    ("arm", "lower"): ("lowers {P} to the side", "holds {P} out to the side and then lowers it",
                       "brings {P} back down"),
    ("arm", "circle"): ("circles {P} {dir} {n}", "moves {P} in a circle {dir} {n}",
                        "draws a big circle {dir} with {P} {n}"),
    ("arm", "push"): ("pushes {P} {dir} {n}", "pushes {dir} with {P} {n}",
                      "extends {P} {dir} in a pushing motion {n}"),
    ("hand", "wave"): ("waves {P} {n}", "waves with {P} {n}", "holds up {P} and waves it {n}",
                       "waves {P} from side to side {n}"),
    ("hand", "punch"): ("punches {dir} with {P} {n}", "throws a punch {dir} with {P} {n}",
                        "jabs {dir} with {P} {n}"),
    ("hand", "tap"): ("taps with {P} {n}", "makes a tapping motion with {P} {n}",
                      "pats the air with {P} {n}"),
    ("hand", "bounce_ball"): ("bounces a ball with {P} {n}", "dribbles a ball with {P} {n}",
                              "bounces a ball on the floor using {P} {n}"),
    ("foot", "tap"): ("taps {P} {n}", "taps {P} on the floor {n}", "taps the toes of {P} {n}"),
    ("foot", "stomp"): ("stomps {P} {n}", "stamps {P} on the floor {n}",
                        "lifts {P} and stomps it down {n}"),
    ("foot", "kick"): ("kicks {dir} with {P} {n}", "kicks {P} {dir} {n}",
                       "delivers a kick {dir} with {P} {n}"),
    ("foot", "bounce_ball"): ("bounces a ball with {P} {n}", "bounces a ball on {P} {n}",
                              "bounces a ball off {P} {n}"),
    ("leg", "raise"): ("raises {P} {dir} {n}", "lifts {P} {dir} {n}",
                       "raises {P} {dir} and puts it back down {n}"),
    ("leg", "step"): ("steps {dir} with {P} and back {n}",
                      "takes a step {dir} with {P} and returns {n}",
                      "steps {P} {dir} and brings it back {n}"),
    ("head", "nod"): ("nods {P} {n}", "nods {P} up and down {n}", "bobs {P} in a nod {n}"),
    ("head", "shake_head"): ("shakes {P} {n}", "shakes {P} from side to side {n}"),
    ("torso", "bend"): ("bends {P} {dir} {n}", "bends {dir} at the waist {n}",
                        "tips {P} {dir} and straightens up {n}"),
    ("torso", "lean"): ("leans {P} {dir} {n}", "tilts {P} {dir} {n}", "sways {P} {dir} {n}"),
    ("torso", "twist"): ("twists {P} {dir} {n}", "rotates {P} {dir} {n}"),
    ("body", "squat"): ("squats down and stands back up {n}", "squats {n}",
                        "crouches down into a squat and rises {n}"),
    ("body", "jump"): ("jumps {n}", "jumps in place {n}", "jumps straight up {n}",
                       "hops up and down {n}"),
    ("body", "turn"): ("turns {dir}", "turns ninety degrees {dir}", "makes a quarter turn {dir}"),
}


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def part_phrase(part: str, side: str | None, action: str, rng: np.random.Generator) -> str:
    """"the left hand", "their right fist", "the upper body" ..."""
    word = _pick(rng, _PART_WORDS_FOR.get((part, action), PART_WORDS[part]))
    det = _pick(rng, ("the", "their"))
    return f"{det} {side} {word}" if side else f"{det} {word}"


def direction_phrase(part: str, action: str, direction: str | None,
                     rng: np.random.Generator) -> str:
    if direction is None:
        return ""
    table = _DIRECTION_WORDS_FOR.get((part, action), {})
    return _pick(rng, table.get(direction, DIRECTION_WORDS[direction]))


def count_phrase(repetitions: int, rng: np.random.Generator) -> str:
    phrase = _pick(rng, COUNT_PHRASES[repetitions])
    if repetitions > 1 and rng.random() < 0.2:
        phrase += " in a row"
    return phrase


def action_clause(*, part: str, side: str | None, action: str, direction: str | None,
                  repetitions: int | None, speed: str | None, rng: np.random.Generator) -> str:
    """A verb phrase for one labelled action: "slowly waves the left hand twice".

    repetitions / speed None leave the count / speed unsaid (used for QA statements).
    """
    check_label(part=part, side=side, action=action, direction=direction, speed=speed)
    template = _pick(rng, TEMPLATES[(part, action)])
    phrase = part_phrase(part, side, action, rng) if "{P}" in template else ""
    count = count_phrase(repetitions, rng) if repetitions is not None and is_counted(action) else ""
    text = template.format(P=phrase,
                           dir=direction_phrase(part, action, direction, rng), n=count)
    text = " ".join(text.split())
    if speed is not None:
        if rng.random() < 0.4:
            text = f"{_pick(rng, SPEED_ADVERBS[speed])} {text}"
        else:
            text = f"{text} {_pick(rng, SPEED_PHRASES[speed])}"
    return text


def _segment_clause(seg: Segment, rng: np.random.Generator) -> str:
    return action_clause(part=seg.part, side=seg.side, action=seg.action,
                         direction=seg.direction, repetitions=seg.repetitions,
                         speed=seg.speed, rng=rng)


# ---------------------------------------------------------------------------------
# Fine and coarse captions
# ---------------------------------------------------------------------------------

_FIRST_SUBJECTS = ("The person", "A person", "Someone", "The subject", "The figure")
_LATER_SUBJECTS = ("the person", "the subject", "the figure")
_CONNECTORS = ("Then", "Next,", "After that,", "Afterwards,", "Later,")
_FINAL_CONNECTORS = ("Finally,", "Lastly,", "At the end,")
_OPENERS = ("A person is standing upright.", "The video shows a person standing in place.",
            "A person stands still at first.")
_CLOSERS = ("The rest of the body stays mostly still.", "Otherwise the person stands still.",
            "The person keeps a relaxed standing posture throughout.")


def fine_caption(segments: Sequence[Segment], *, seed: int) -> str:
    """A multi-sentence caption naming every segment's part, side, direction, speed and
    count, in time order; the same segments and seed give the same text."""
    check_segments(segments)
    rng = np.random.default_rng(seed)
    clauses = [_segment_clause(seg, rng) for seg in segments]
    opener = rng.random() < 0.35
    subject = _pick(rng, ("The person",) if opener else _FIRST_SUBJECTS)
    later = _pick(rng, _LATER_SUBJECTS)
    sentences = [_pick(rng, _OPENERS)] if opener else []
    i = 0
    while i < len(clauses):
        if i == 0:
            first = "First, " + subject[0].lower() + subject[1:] if (
                len(clauses) > 1 and rng.random() < 0.3) else subject
            head = f"{first} {clauses[0]}"
        else:
            last = i == len(clauses) - 1 and len(clauses) > 2
            head = f"{_pick(rng, _FINAL_CONNECTORS if last else _CONNECTORS)} {later} {clauses[i]}"
        if i + 1 < len(clauses) and rng.random() < 0.3:       # two segments, one sentence
            head += f", and then {clauses[i + 1]}"
            i += 1
        sentences.append(head + ".")
        i += 1
    if rng.random() < 0.35:
        sentences.append(_pick(rng, _CLOSERS))
    return " ".join(sentences)


_COARSE: dict[str, tuple[str, ...]] = {
    "arms": ("a person is moving their arms", "someone is standing and moving their arms",
             "a person gestures while standing", "a person is standing and gesturing"),
    "legs": ("a person is moving their legs", "someone stands and moves their legs around",
             "a person shifts around on the spot"),
    "head": ("a person moves a little while standing", "someone is standing and looking around"),
    "torso": ("a person stretches", "someone is standing and moving their body",
              "a person bends and stretches"),
    "body": ("a person moves around", "someone is exercising", "a person is working out"),
    "ball": ("a person plays with a ball", "someone is playing with a ball"),
    "mixed": ("a person moves around", "someone is standing and moving",
              "a person does some movements", "a person is moving in place"),
}
_COARSE_GROUP = {"hand": "arms", "arm": "arms", "foot": "legs", "leg": "legs",
                 "head": "head", "torso": "torso", "body": "body"}


def coarse_caption(segments: Sequence[Segment], *, seed: int) -> str:
    """One vague sentence (no side, no exact part, no count, no speed), as general video
    captions are; the same segments and seed give the same text."""
    check_segments(segments)
    rng = np.random.default_rng(seed)
    groups = {"ball" if seg.action == "bounce_ball" else _COARSE_GROUP[seg.part]
              for seg in segments}
    group = groups.pop() if len(groups) == 1 else (
        "mixed" if rng.random() < 0.5 else _COARSE_GROUP[segments[0].part])
    text = _pick(rng, _COARSE[group])
    return text[0].upper() + text[1:] + "."


def check_segments(segments: Sequence[Segment]) -> None:
    """Raise ``ValueError`` unless ``segments`` is a non-empty sequence of ``Segment``."""
    if isinstance(segments, Segment) or not isinstance(segments, Sequence) or not segments:
        raise ValueError("segments must be a non-empty list of Segment (clip.segments)")
