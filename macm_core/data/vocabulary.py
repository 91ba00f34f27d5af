"""The HMI-Synth label space, written down as data.

A motion segment is labelled by six values:

* ``part``: the body part that performs the action (``PARTS``);
* ``side``: ``"left"`` or ``"right"`` for the sided parts (hand, arm, foot, leg), ``None``
  for head, torso and the whole body;
* ``action``: what the part does (``ACTIONS``); ``PAIRS`` says which part may do which
  action, and in which directions;
* ``direction``: one of ``DIRECTIONS`` or ``None`` where the action has no direction;
* ``speed``: one of ``SPEEDS``;
* ``repetitions``: 1-4 (``REPETITIONS``); one-shot actions (``ONE_SHOT_ACTIONS``) are
  always 1.

The body conventions are SMPL's: y up, the body faces +z, +x is the body's LEFT.  Sides
and directions are the PERSON's (``"left"`` is the person's left, which is the viewer's
right for a camera in front).  Arm circles are drawn in the frontal plane in front of the
body; ``"clockwise"`` is clockwise as the person sees it (up, then towards the person's
right, then down).

Some labels differ on purpose only in the part (hand vs foot, arm vs leg) or only in the
side: these are the confusions a captioner must not make.  ``CONFUSABLE_PARTS`` and
``confusable_labels`` list them; the motion generator gives such pairs the same rhythm.
"""
from __future__ import annotations

from ..body.skeleton import JOINT_INDEX

SIDES: tuple[str, ...] = ("left", "right")
SIDED_PARTS: tuple[str, ...] = ("hand", "arm", "foot", "leg")
UNSIDED_PARTS: tuple[str, ...] = ("head", "torso", "body")
PARTS: tuple[str, ...] = SIDED_PARTS + UNSIDED_PARTS

ACTIONS: tuple[str, ...] = (
    "raise", "lower", "wave", "circle", "push", "punch", "kick", "step", "stomp", "tap",
    "bounce_ball", "bend", "lean", "twist", "squat", "jump", "turn", "nod", "shake_head",
)
DIRECTIONS: tuple[str, ...] = (
    "forward", "backward", "left", "right", "up", "down", "sideways",
    "clockwise", "counterclockwise",
)
SPEEDS: tuple[str, ...] = ("slowly", "normally", "quickly")
REPETITIONS: tuple[int, ...] = (1, 2, 3, 4)

# (part, action) -> the directions that pair may take; (None,) means "no direction".
PAIRS: dict[tuple[str, str], tuple[str | None, ...]] = {
    ("arm", "raise"): ("forward", "sideways", "up"),
    ("arm", "lower"): ("down",),
    ("arm", "circle"): ("clockwise", "counterclockwise"),
    ("arm", "push"): ("forward", "up"),
    ("hand", "wave"): (None,),
    ("hand", "punch"): ("forward",),
    ("hand", "tap"): (None,),
    ("hand", "bounce_ball"): (None,),
    ("foot", "tap"): (None,),
    ("foot", "stomp"): (None,),
    ("foot", "kick"): ("forward", "sideways"),
    ("foot", "bounce_ball"): (None,),
    ("leg", "raise"): ("forward", "sideways"),
    ("leg", "step"): ("forward", "backward", "sideways"),
    ("head", "nod"): (None,),
    ("head", "shake_head"): (None,),
    ("torso", "bend"): ("forward", "backward"),
    ("torso", "lean"): ("left", "right"),
    ("torso", "twist"): ("left", "right"),
    ("body", "squat"): (None,),
    ("body", "jump"): (None,),
    ("body", "turn"): ("left", "right"),
}

# Actions done exactly once per segment ("lowers the arm", "turns to the left").
ONE_SHOT_ACTIONS: frozenset[str] = frozenset({"lower", "turn"})
# Actions that must open a clip: the held posture they end is there from frame 0.
OPENING_ACTIONS: frozenset[str] = frozenset({"lower"})
# Pairs with a ball; the ball follows ``BALL_JOINT[part]`` of the segment's side.
BALL_PAIRS: frozenset[tuple[str, str]] = frozenset({("hand", "bounce_ball"),
                                                   ("foot", "bounce_ball")})
BALL_JOINT: dict[str, str] = {"hand": "hand", "foot": "foot"}

# The part a captioner is most likely to confuse a part with.
CONFUSABLE_PARTS: dict[str, str] = {"hand": "foot", "foot": "hand", "arm": "leg", "leg": "arm"}

# Joints (without side prefix) that a sided part moves; unsided parts list full names.
_LIMB_JOINTS: dict[str, tuple[str, ...]] = {
    "hand": ("collar", "shoulder", "elbow", "wrist", "hand"),
    "arm": ("collar", "shoulder", "elbow", "wrist", "hand"),
    "foot": ("hip", "knee", "ankle", "foot"),
    "leg": ("hip", "knee", "ankle", "foot"),
}
_TRUNK_JOINTS: dict[str, tuple[str, ...]] = {
    "head": ("neck", "head"),
    "torso": ("spine1", "spine2", "spine3"),
    "body": ("left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
             "left_foot", "right_foot", "spine1", "spine2", "spine3"),
}


def sides_for(part: str) -> tuple[str | None, ...]:
    """The sides a part may take: ``("left", "right")`` or ``(None,)``."""
    _check_part(part)
    return SIDES if part in SIDED_PARTS else (None,)


def actions_for(part: str) -> tuple[str, ...]:
    """The actions a part may perform, in ``ACTIONS`` order."""
    _check_part(part)
    return tuple(a for a in ACTIONS if (part, a) in PAIRS)


def parts_for(action: str) -> tuple[str, ...]:
    """The parts that may perform an action, in ``PARTS`` order."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}: choose one of {', '.join(ACTIONS)}")
    return tuple(p for p in PARTS if (p, action) in PAIRS)


def is_counted(action: str) -> bool:
    """Whether the action's repetitions are a label (False for one-shot actions)."""
    return action not in ONE_SHOT_ACTIONS


def part_joints(part: str, side: str | None) -> tuple[str, ...]:
    """Names of the SMPL joints that the labelled part moves (e.g. left shoulder..hand)."""
    check_label(part=part, side=side)
    if part in _TRUNK_JOINTS:
        return _TRUNK_JOINTS[part]
    return tuple(f"{side}_{name}" for name in _LIMB_JOINTS[part])


def ball_joint(part: str, side: str | None) -> str:
    """The joint a ball follows for a ball pair, e.g. ``"left_hand"`` or ``"right_foot"``."""
    if part not in BALL_JOINT:
        raise ValueError(f"part {part!r} never carries a ball; ball parts: {', '.join(BALL_JOINT)}")
    check_label(part=part, side=side)
    name = f"{side}_{BALL_JOINT[part]}"
    assert name in JOINT_INDEX, name
    return name


def confusable_labels(part: str, side: str | None,
                      action: str) -> list[tuple[str, str | None, str]]:
    """Valid labels a captioner might say instead: other side, or hand<->foot / arm<->leg.

    Returns (part, side, action) triples that differ from the given one in exactly one of
    side or part and are themselves valid labels.
    """
    check_label(part=part, side=side, action=action)
    out: list[tuple[str, str | None, str]] = []
    if side is not None:
        out.append((part, "right" if side == "left" else "left", action))
    other = CONFUSABLE_PARTS.get(part)
    if other is not None and (other, action) in PAIRS:
        out.append((other, side, action))
    return out


def check_label(*, part: str, side: str | None, action: str | None = None,
                direction: str | None = None, repetitions: int | None = None,
                speed: str | None = None) -> None:
    """Raise ``ValueError`` naming the first value that is not a valid label.

    ``action``, ``repetitions`` and ``speed`` are checked only when given; ``direction`` is
    checked whenever ``action`` is given (``None`` is a valid direction only for pairs
    without one).
    """
    _check_part(part)
    if side not in sides_for(part):
        want = "'left' or 'right'" if part in SIDED_PARTS else "None"
        raise ValueError(f"side {side!r} is not valid for part {part!r}: use {want}")
    if action is not None:
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}: choose one of {', '.join(ACTIONS)}")
        if (part, action) not in PAIRS:
            raise ValueError(f"part {part!r} cannot {action!r}; its actions are "
                             f"{', '.join(actions_for(part))}")
        allowed = PAIRS[(part, action)]
        if direction not in allowed:
            raise ValueError(f"direction {direction!r} is not valid for ({part!r}, {action!r}): "
                             f"use one of {allowed}")
    if repetitions is not None:
        if isinstance(repetitions, bool) or not isinstance(repetitions, int) \
                or repetitions not in REPETITIONS:
            raise ValueError(f"repetitions must be an int in {REPETITIONS}, got {repetitions!r}")
        if action is not None and not is_counted(action) and repetitions != 1:
            raise ValueError(f"{action!r} is a one-shot action: repetitions must be 1, "
                             f"got {repetitions}")
    if speed is not None and speed not in SPEEDS:
        raise ValueError(f"unknown speed {speed!r}: choose one of {', '.join(SPEEDS)}")


def _check_part(part: str) -> None:
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}: choose one of {', '.join(PARTS)}")
