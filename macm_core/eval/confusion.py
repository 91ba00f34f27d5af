"""Hand or foot, left or right: what a caption names against a clip's labelled limb.

Body-part hallucinations come in two kinds that the grounded metrics pool together: the
other limb (a hand said for a foot) and the other side (the left for the right).  This
module separates them on the clips where the answer is unambiguous, those whose labelled
movements use one limb on one side:

* ``labelled_limb(labels)``: the (limb, side) such a clip moves, else None.  Hand and arm
  are one limb ("hand/arm"), as are foot and leg ("foot/leg"), as in the grounded metrics
  (``grounded.MOVES_WITH``); a whole-body movement moves the legs as well, so a clip with
  one is never single-limb;
* ``named_limb_side(caption, limb)``: which limbs a caption names, and on which side it
  names the labelled limb;
* ``judge_captions``: one row per (decoder, clip) with both, and whether each is a
  hand/foot or a left/right confusion; ``confusion_matrix`` and ``confusion_counts``
  summarise that table;
* ``flip_kind``: the kind of a token flip of MSD (the visual pathway's top token replaced
  by another), by whether the two tokens are body-part or side words;
* ``describe_labels``: a clip's labelled segments in a few words, for case-study tables.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

from ..data.captions import PART_LEXICON
from .lexicon import parse_caption

# a body-part or side word of a token flip ("limb" names no part: see the lexicon)
PART_TOKENS: frozenset[str] = frozenset(PART_LEXICON) - {"limb", "limbs"}
SIDE_TOKENS: frozenset[str] = frozenset({"left", "right"})
FLIP_KINDS: tuple[str, ...] = ("body part -> body part", "side -> side",
                               "part or side word <-> other", "other")

LIMB: dict[str, str] = {"hand": "hand/arm", "arm": "hand/arm", "foot": "foot/leg", "leg": "foot/leg"}
LIMBS: list[str] = ["hand/arm", "foot/leg"]
SIDES: list[str] = ["left", "right"]
# the columns of the two confusion matrices: what a caption names
PART_COLUMNS: list[str] = LIMBS + ["both", "neither"]
SIDE_COLUMNS: list[str] = SIDES + ["both", "no side"]
# kind -> (label column, named column, rows, columns) of ``confusion_matrix``
MATRICES: dict[str, tuple[str, str, list[str], list[str]]] = {
    "limb": ("limb", "named limb", LIMBS, PART_COLUMNS),
    "side": ("side", "named side", SIDES, SIDE_COLUMNS),
}
JUDGED_COLUMNS: list[str] = ["decoder", "clip_id", "limb", "side", "named limb", "named side",
                             "hand/foot confusion", "left/right confusion"]
CONFUSIONS: list[str] = ["hand/foot confusion", "left/right confusion"]


def flip_kind(top: str, chosen: str) -> str:
    """The kind (one of ``FLIP_KINDS``) of a flip from token ``top`` to ``chosen``.

    Token texts as the tokenizer writes them (leading spaces and case are ignored):
    both body-part words, both side words, one of them a part or side word, or neither.
    """
    a, b = top.strip().lower(), chosen.strip().lower()
    if a in PART_TOKENS and b in PART_TOKENS:
        return FLIP_KINDS[0]
    if a in SIDE_TOKENS and b in SIDE_TOKENS:
        return FLIP_KINDS[1]
    if {a, b} & (PART_TOKENS | SIDE_TOKENS):
        return FLIP_KINDS[2]
    return FLIP_KINDS[3]


def labelled_limb(labels: pd.DataFrame) -> tuple[str, str] | None:
    """(limb, side) of a clip that moves one limb on one side, else None.

    labels: the clip's segments (columns part, side), as ``Benchmark.labels``.  Head and
    torso segments are ignored; a whole-body segment makes the clip ineligible.
    """
    if (labels["part"] == "body").any():
        return None
    sided = {(LIMB[p], s) for p, s in zip(labels["part"], labels["side"]) if p in LIMB}
    return sided.pop() if len(sided) == 1 else None


def named_limb_side(caption: str, limb: str) -> tuple[str, str]:
    """(named limb, named side) of a caption, for a clip whose labelled limb is ``limb``.

    named limb: the limb of ``LIMBS`` the caption names, "both" or "neither";
    named side: the side it names for ``limb`` itself, "both" or "no side".
    """
    parts = parse_caption(caption).parts
    limbs = {LIMB[p] for _, p in parts if p in LIMB}
    sides = {s for s, p in parts if LIMB.get(p) == limb and s in SIDES}
    part_col = "both" if len(limbs) == 2 else limbs.pop() if limbs else "neither"
    side_col = "both" if len(sides) == 2 else sides.pop() if sides else "no side"
    return part_col, side_col


def judge_captions(captions: Mapping[str, Mapping[str, str]],
                   targets: Mapping[str, tuple[str, str] | None],
                   clip_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per (decoder, single-limb clip): what the caption names, and its confusions.

    captions: decoder -> clip_id -> caption; targets: clip_id -> ``labelled_limb`` (None:
    not single-limb, skipped); clip_ids: the clips in row order (default: ``targets``'
    order).  A hand/foot confusion names the other limb (alone or beside the labelled
    one); a left/right confusion names the other side for the labelled limb.  Columns:
    ``JUDGED_COLUMNS``.
    """
    eligible = [c for c in (targets if clip_ids is None else clip_ids) if targets[c] is not None]
    rows = []
    for decoder, by_clip in captions.items():
        for c in eligible:
            limb, side = targets[c]
            part_col, side_col = named_limb_side(by_clip[c], limb)
            other_limb, other_side = LIMBS[1 - LIMBS.index(limb)], SIDES[1 - SIDES.index(side)]
            rows.append({"decoder": decoder, "clip_id": c, "limb": limb, "side": side,
                         "named limb": part_col, "named side": side_col,
                         "hand/foot confusion": part_col in (other_limb, "both"),
                         "left/right confusion": side_col in (other_side, "both")})
    return pd.DataFrame(rows, columns=JUDGED_COLUMNS)


def confusion_matrix(judged: pd.DataFrame, kind: str, decoder: str | None = None) -> pd.DataFrame:
    """Counts of labelled limb (``kind="limb"``) or side (``"side"``) x what is named.

    judged: a ``judge_captions`` table, restricted to ``decoder``'s rows when given.
    Rows and columns are those of ``MATRICES[kind]``, all present (0 where none).
    """
    row, col, rows, cols = MATRICES[kind]
    part = judged if decoder is None else judged[judged["decoder"] == decoder]
    return pd.crosstab(part[row], part[col]).reindex(index=rows, columns=cols, fill_value=0)


def confusion_counts(judged: pd.DataFrame, decoders: Iterable[str]) -> pd.DataFrame:
    """Per decoder (rows, in ``decoders``' order): the clips with a hand/foot confusion,
    a left/right confusion, either, and the clips judged."""
    decoders = list(decoders)
    counts = (judged.groupby("decoder")[CONFUSIONS].sum()
              .reindex(decoders, fill_value=0).astype(int))
    either = judged["hand/foot confusion"] | judged["left/right confusion"]
    counts["either"] = (judged.assign(either=either).groupby("decoder")["either"].sum()
                        .reindex(decoders, fill_value=0).astype(int))
    counts["clips"] = judged.groupby("decoder").size().reindex(decoders, fill_value=0).astype(int)
    return counts


def describe_labels(labels: pd.DataFrame) -> str:
    """'right hand wave x2; head nod' from a clip's labelled segments."""
    out = []
    for part, side, action, n in zip(labels["part"], labels["side"], labels["action"],
                                     labels["repetitions"]):
        words = ([side] if isinstance(side, str) else []) + [part, action]
        out.append(" ".join(words) + (f" x{n}" if n > 1 else ""))
    return "; ".join(out)
