# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The claims, re-measured: verdicts
#
# Each claim of the paper, the number this book measured for it on HMI-Synth (or on the
# real demo videos), and a verdict, as recorded by the chapter that tests it when it ran
# in this build. The verdicts:
#
# - **reproduced in direction**: our measurement goes the way the paper says, by more than
#   the spread over training seeds where there are several;
# - **partly reproduced**: some of the metrics or settings agree, others do not;
# - **not reproduced**: our measurement goes the other way, or shows no gain;
# - **not testable here**: the claim needs data, models or judges this machine does not have.
#
# Our benchmark, models and scale differ from the paper's (HMI-Bench, 7B decoders, an LLM
# judge), so a verdict says whether the *mechanism* behaves as claimed at our scale, not
# whether the paper's numbers are right.

# %% tags=["parameters"]
profile = "cpu"
seed = 0

# %%
import pandas as pd
from IPython.display import Markdown, display

from macm_core.claims import verdict_table
from macm_core.config import load_profile

config = load_profile(profile)
table = verdict_table(config.name)
pd.set_option("display.max_colwidth", None)
display(table[["claim", "our result", "verdict", "reason", "notebook"]])

# %%
counts = table["verdict"].value_counts()
display(Markdown("**Summary:** " + "; ".join(f"{n} {v}" for v, n in counts.items()) + "."))
