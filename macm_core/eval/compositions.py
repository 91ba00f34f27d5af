"""Do captions describe part-action compositions never seen in training?

The ``test_heldout`` split holds clips with (part, action) pairs that training never
shows together (the profile's ``data.held_out_pairs``).  ``composition_rates`` counts, per
labelled segment, whether a caption names the segment's part with its side, its action,
and both (anywhere in the caption, read with ``parse_caption``):

* held out (``held_out=True``): the segments whose (part, action) pair is held out;
* seen (``held_out=False``): the segments of the same parts, whatever their action (on
  the test split these are the compositions those parts were trained with).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from .lexicon import parse_caption


def composition_rates(captions: Mapping[str, str], segments: pd.DataFrame,
                      held_out_pairs: Iterable[tuple[str, str]], *,
                      held_out: bool) -> dict[str, float]:
    """Shares of the selected segments whose part (with side), action, and both are named.

    captions: clip_id -> caption; segments: the benchmark's segment table (clip_id, part,
    side, action; clips without a caption are ignored); held_out_pairs: the (part, action)
    pairs held out of training; held_out: which segments to count (module docstring).
    Returns {"segments": count, "part named", "action named", "both named": shares}, the
    shares NaN when no segment is selected.
    """
    pairs = {tuple(p) for p in held_out_pairs}
    said = {cid: parse_caption(text) for cid, text in captions.items()}
    segs = segments[segments["clip_id"].isin(said)]
    if held_out:
        segs = segs[[(p, a) in pairs for p, a in zip(segs["part"], segs["action"])]]
    else:
        segs = segs[segs["part"].isin({part for part, _ in pairs})]
    part_named = np.array([(_side(s), p) in said[c].parts
                           for c, p, s in zip(segs["clip_id"], segs["part"], segs["side"])], dtype=bool)
    action_named = np.array([a in said[c].actions for c, a in zip(segs["clip_id"], segs["action"])],
                            dtype=bool)
    if not len(segs):
        return {"segments": 0, "part named": np.nan, "action named": np.nan, "both named": np.nan}
    return {"segments": len(segs), "part named": part_named.mean(),
            "action named": action_named.mean(), "both named": (part_named & action_named).mean()}


def _side(side) -> str | None:
    return side if isinstance(side, str) and side else None
