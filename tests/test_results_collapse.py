"""results.distinct_share / collapse_reason: a model writing one caption for every clip
makes a comparison untestable, and the reason names it."""
import math

import pandas as pd

from macm_core.results import MIN_DISTINCT_SHARE, collapse_reason, distinct_share


def test_distinct_share_counts_distinct_captions():
    assert distinct_share(["a", "b", "a", "c"]) == 0.75
    assert distinct_share(["same"] * 10) == 0.1
    assert math.isnan(distinct_share([]))


def _table(shares):
    return pd.DataFrame([{"variant": v, "decoder": d, "seed": 0, "distinct_captions": s}
                         for (v, d), s in shares.items()])


def test_collapse_reason_names_the_collapsed_sets_only_among_the_compared_rows():
    table = _table({("baseline-fine", "greedy_visual"): 1 / 300, ("macm", "msd"): 0.4,
                    ("macm", "greedy_visual"): 0.5})
    reason = collapse_reason(table)
    assert reason is not None and "baseline-fine / greedy_visual" in reason and "1 of 3" in reason
    assert "macm / msd" not in reason
    assert collapse_reason(table, [("macm", "msd"), ("macm", "greedy_visual")]) is None


def test_collapse_reason_threshold_is_strict():
    at = _table({("macm", "msd"): MIN_DISTINCT_SHARE})
    below = _table({("macm", "msd"): MIN_DISTINCT_SHARE * 0.99})
    assert collapse_reason(at) is None
    assert collapse_reason(below) is not None


def test_coarse_caption_models_are_not_counted_as_collapsed():
    table = _table({("baseline-coarse", "greedy_visual"): 0.02, ("macm", "msd"): 0.4})
    assert collapse_reason(table) is None
    table = _table({("baseline-coarse", "greedy_visual"): 0.02, ("baseline-fine", "greedy_visual"): 0.01})
    reason = collapse_reason(table)
    assert "baseline-fine" in reason and "baseline-coarse" not in reason and "1 of 2" in reason
