"""The words that name body parts, sides, actions and counts, and reading them out of text.

``parse_caption(text)`` reads any caption (a ground-truth one or free text a model
wrote) into a ``CaptionMentions``:

* ``parts``: the (side, part) pairs it names, side ``None`` where unsaid;
* ``actions``: the labelled actions (``vocabulary.ACTIONS``) its verbs describe;
* ``counts``: the repetition counts it states, each with the action it counts.

Body parts and sides are read by the benchmark's own reader, ``captions.caption_mentions``
(its ``PART_LEXICON``: "fist" and "palm" are the hand, "toes" and "heel" the foot, "knee"
the leg, "trunk" and "upper body" the torso ...), so that a ground-truth caption reads
back exactly as it was written.  This module adds what that reader leaves out: "both
hands" (two mentions), the whole body ("whole body", "entire body"), action verbs with
their inflections, and counts written with digits ("3 times", "2x").

Conventions (the grounded metrics rely on them):

* "limb" names no particular part and is dropped; so is a bare "body" ("the rest of the
  body stays still" is said of clips where nothing moves the whole body).  Only "whole /
  entire / full body" is a mention, of the part ``"body"``.
* A verb that is only a phase of another action is not an action of its own: "raises the
  arm and brings it back down" is one raise, "lifts the foot and stomps it down" one
  stomp (``PHASE_PHRASES``).
* A count belongs to the last action before it in the same sentence ("waves twice"), or,
  when none is before it, to the first one after it ("twice, the person nods").
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..data.captions import COUNT_PHRASES, PART_LEXICON, caption_mentions
from ..data.vocabulary import ACTIONS, PARTS, SIDES

# ---------------------------------------------------------------------------------
# Body parts and sides
# ---------------------------------------------------------------------------------

# single words -> part, as the benchmark's captions use them (re-exported for reference)
PART_WORDS: dict[str, str] = dict(PART_LEXICON)
# phrases that name the whole body (a bare "body" is too vague to count)
WHOLE_BODY_PHRASES: tuple[str, ...] = ("whole body", "entire body", "full body")
# parts a caption may name that are no label ("limb": an arm or a leg)
VAGUE_PARTS: frozenset[str] = frozenset({"limb"})
SIDE_WORDS: dict[str, tuple[str, ...]] = {"left": ("left",), "right": ("right",),
                                          "both": ("left", "right")}

# ---------------------------------------------------------------------------------
# Actions: every surface form of the verbs (and nouns) that describe each labelled action
# ---------------------------------------------------------------------------------

ACTION_WORDS: dict[str, tuple[str, ...]] = {
    "raise": ("raise", "raises", "raising", "raised", "lift", "lifts", "lifting", "lifted"),
    "lower": ("lower", "lowers", "lowering", "lowered"),
    "wave": ("wave", "waves", "waving", "waved"),
    "circle": ("circle", "circles", "circling", "circled", "circular"),
    "push": ("push", "pushes", "pushing", "pushed"),
    "punch": ("punch", "punches", "punching", "punched", "jab", "jabs", "jabbing", "jabbed"),
    "kick": ("kick", "kicks", "kicking", "kicked"),
    "step": ("step", "steps", "stepping", "stepped"),
    "stomp": ("stomp", "stomps", "stomping", "stomped", "stamp", "stamps", "stamping",
              "stamped"),
    "tap": ("tap", "taps", "tapping", "tapped", "pat", "pats", "patting", "patted"),
    "bounce_ball": ("bounce", "bounces", "bouncing", "bounced", "dribble", "dribbles",
                    "dribbling", "dribbled"),
    "bend": ("bend", "bends", "bending", "bent", "tips", "tipping", "tipped", "bow", "bows",
             "bowing", "bowed"),
    "lean": ("lean", "leans", "leaning", "leaned", "leant", "tilt", "tilts", "tilting",
             "tilted", "sway", "sways", "swaying", "swayed"),
    "twist": ("twist", "twists", "twisting", "twisted", "rotate", "rotates", "rotating",
              "rotated"),
    "squat": ("squat", "squats", "squatting", "squatted", "crouch", "crouches", "crouching",
              "crouched"),
    "jump": ("jump", "jumps", "jumping", "jumped", "hop", "hops", "hopping", "hopped", "leap",
             "leaps", "leaping", "leaped", "leapt"),
    "turn": ("turn", "turns", "turning", "turned"),
    "nod": ("nod", "nods", "nodding", "nodded"),
    "shake_head": ("shake", "shakes", "shaking", "shook", "shaken"),
}
# phrases (regular expressions over normalised text) that describe an action without
# one of its words: "brings the arm back down" lowers it
ACTION_PHRASES: dict[str, tuple[str, ...]] = {
    "lower": (r"\b(?:bring|brings|bringing|brought|put|puts|putting)\b(?: \w+){0,3}? "
              r"(?:back )?down\b",),
}
# an action word counts only when this word (a regular expression) is in the same
# sentence: "shakes the head", "bounces a ball"; not "shakes out the arms" or "bounces on
# the spot"
ACTION_CONTEXT: dict[str, str] = {"shake_head": r"heads?", "bounce_ball": r"balls?"}
# phrases removed before actions are read: phases of another action, and adjectives
PHASE_PHRASES: tuple[str, ...] = (
    # the way back of a raise: "raises the arm and brings it back down"
    r"\band (?:then )?(?:brings|bring|puts|put|lowers|lower) (?:it|them) back down\b",
    # the wind-up of a stomp: "lifts the foot and stomps it down"
    r"\b(?:lifts|lift|lifting|raises|raise|raising) (?:\w+ ){0,4}?and (?=(?:stomp|stamp))",
    # "lower" as an adjective: "lower body", "lower back"
    r"\blower (?=(?:body|back|half|legs?)\b)",
)

# ---------------------------------------------------------------------------------
# Counts
# ---------------------------------------------------------------------------------

NUMBER_WORDS: dict[str, int] = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
                                "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10}
# whole phrases -> count: the benchmark's own ("once", "twice", "a single time" ...) first
COUNT_WORDS: dict[str, int] = {
    **{phrase: n for n, phrases in COUNT_PHRASES.items() for phrase in phrases},
    "thrice": 3,
    **{f"{word} times": n for word, n in NUMBER_WORDS.items() if n > 1},
}
# digits: "3 times", "1 time", "2x", "x2"
_DIGIT_COUNT = r"\b(\d{1,2}) ?(?:times?|x)\b|\bx ?(\d{1,2})\b"


@dataclass(frozen=True)
class CaptionMentions:
    """What one caption says, read with the lexicon.

    parts: unique (side, part) pairs in the order first named; part in ``PARTS``, side
        "left" / "right" or None where unsaid ("both hands" gives both sides).
    actions: unique actions (``ACTIONS``) in the order first described.
    counts: (action, count) for every stated count, in order; action None when no action
        is described in the count's sentence.
    """

    parts: tuple[tuple[str | None, str], ...] = ()
    actions: tuple[str, ...] = ()
    counts: tuple[tuple[str | None, int], ...] = ()


def normalise(text: str) -> str:
    """Lower case; hyphens and anything but letters, digits and sentence punctuation
    become spaces; runs of spaces become one.  Lengths change, so positions are only
    comparable within the normalised text."""
    if not isinstance(text, str):
        raise TypeError(f"a caption must be a str, got {type(text).__name__}")
    text = re.sub(r"[^a-z0-9.!?;,]+", " ", text.lower())
    return re.sub(r" +", " ", text).strip()


def parse_caption(text: str) -> CaptionMentions:
    """Read the body parts (with sides), actions and counts of a caption.

    Any string is accepted: empty, garbled or repetitive text gives fewer (or no)
    mentions, never an error.
    """
    clean = normalise(text)
    actions = _actions(clean)
    return CaptionMentions(parts=_parts(clean),
                           actions=tuple(_unique(action for _, action in actions)),
                           counts=_counts(clean, actions))


def _unique(items):
    seen, out = set(), []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def _parts(clean: str) -> tuple[tuple[str | None, str], ...]:
    found: list[tuple[str | None, str]] = []
    for side, part in caption_mentions(clean):
        if part in VAGUE_PARTS:
            continue
        for one in SIDE_WORDS.get(side, (side,)):
            found.append((one, part))
    if any(re.search(rf"\b{phrase}\b", clean) for phrase in WHOLE_BODY_PHRASES):
        found.append((None, "body"))
    return tuple(_unique(found))


def _blank(text: str, pattern: str) -> str:
    """The text with every match of ``pattern`` replaced by spaces (positions kept)."""
    return re.sub(pattern, lambda m: " " * len(m.group(0)), text)


_WORD_PATTERNS = {action: re.compile(r"\b(?:" + "|".join(words) + r")\b")
                  for action, words in ACTION_WORDS.items()}


def _actions(clean: str) -> list[tuple[int, str]]:
    """(position, action) of every action described, in text order."""
    text = clean
    for pattern in PHASE_PHRASES:
        text = _blank(text, pattern)
    found = []
    for start, sentence in _sentences(text):
        for action, pattern in _WORD_PATTERNS.items():
            need = ACTION_CONTEXT.get(action)
            if need is not None and not re.search(rf"\b{need}\b", sentence):
                continue
            found += [(start + m.start(), action) for m in pattern.finditer(sentence)]
        for action, patterns in ACTION_PHRASES.items():
            for pattern in patterns:
                found += [(start + m.start(), action) for m in re.finditer(pattern, sentence)]
    return sorted(found)


def _sentences(text: str) -> list[tuple[int, str]]:
    """(start, sentence) pieces of the text split at . ! ? and ;"""
    out, start = [], 0
    for m in re.finditer(r"[.!?;]", text):
        out.append((start, text[start:m.start()]))
        start = m.end()
    out.append((start, text[start:]))
    return out


_COUNT_PATTERN = re.compile(r"\b(?:" + "|".join(
    re.escape(p) for p in sorted(COUNT_WORDS, key=len, reverse=True)) + r")\b")


def _counts(clean: str, actions: list[tuple[int, str]]) -> tuple[tuple[str | None, int], ...]:
    """(action, count) of every stated count; ``actions`` as ``_actions`` gives them."""
    stated = [(m.start(), COUNT_WORDS[m.group(0)]) for m in _COUNT_PATTERN.finditer(clean)]
    stated += [(m.start(), int(m.group(1) or m.group(2)))
               for m in re.finditer(_DIGIT_COUNT, clean)]
    bounds = [start for start, _ in _sentences(clean)] + [len(clean) + 1]
    out = []
    for pos, count in sorted(stated):
        end = min(b for b in bounds if b > pos)
        start = max(b for b in bounds if b <= pos)
        before = [a for p, a in actions if start <= p < pos]
        after = [a for p, a in actions if pos < p < end]
        out.append((before[-1] if before else (after[0] if after else None), count))
    return tuple(out)


def _check_lexicon() -> None:
    """The lexicon's labels are the benchmark's labels (run at import)."""
    assert set(ACTION_WORDS) == set(ACTIONS), set(ACTION_WORDS) ^ set(ACTIONS)
    assert set(ACTION_PHRASES) <= set(ACTIONS) and set(ACTION_CONTEXT) <= set(ACTIONS)
    assert set(PART_WORDS.values()) - VAGUE_PARTS <= set(PARTS)
    assert {s for sides in SIDE_WORDS.values() for s in sides} == set(SIDES)


_check_lexicon()
