"""The paper's published numbers and the claims map, read from ``book/data``.

The CSV files hold the paper's own numbers (HMI-Bench); they are never mixed with ours.
``claims_map`` joins each claim with the notebook of this compendium that tests it and
says whether that notebook exists yet.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from .paths import project_root

TABLE1_METRICS = ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR",
                  "ROUGE-1", "ROUGE-2", "ROUGE-L", "CIDEr"]
DIMENSIONS = ["Details of Movements", "Interaction with Environment", "Motivation and Reason",
              "Micro-expressions and Emotions", "Character Attributes"]


def data_dir_default() -> Path:
    return project_root() / "book" / "data"


def _read_table(name: str, index: str, columns: list[str], data_dir: Path | None) -> pd.DataFrame:
    path = (data_dir or data_dir_default()) / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: it ships with the repository; restore it with git")
    table = pd.read_csv(path).set_index(index)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    if table[columns].isna().any().any():
        raise ValueError(f"{path}: empty cells in {columns}")
    return table[columns].astype(float)


def paper_table1(data_dir: Path | None = None) -> pd.DataFrame:
    """Table 1: caption metrics (raw fractions), one row per model."""
    return _read_table("paper_table1.csv", "model", TABLE1_METRICS, data_dir)


def paper_table2(data_dir: Path | None = None) -> pd.DataFrame:
    """Table 2: judge scores on the five dimensions and the reported Overall."""
    return _read_table("paper_table2.csv", "model", DIMENSIONS + ["Overall"], data_dir)


def paper_ablation(data_dir: Path | None = None) -> pd.DataFrame:
    """The ablation rows, in order: baseline, + HMI data, + MSD, + ViTPose sampling."""
    return _read_table("paper_ablation.csv", "step", DIMENSIONS + ["Overall"], data_dir)


def overall_consistency(scores: pd.DataFrame, *, tolerance: float = 0.011) -> pd.DataFrame:
    """Compare each row's reported Overall with the mean of its five dimensions.

    Returns columns ``reported``, ``mean_of_dimensions``, ``equals_mean`` and
    ``equals_movements`` (Overall equal to "Details of Movements" instead).
    """
    mean = scores[DIMENSIONS].mean(axis=1)
    return pd.DataFrame({
        "reported": scores["Overall"],
        "mean_of_dimensions": mean.round(3),
        "equals_mean": (scores["Overall"] - mean).abs() <= tolerance,
        "equals_movements": (scores["Overall"] - scores["Details of Movements"]).abs() < 1e-9,
    })


def load_claims(data_dir: Path | None = None) -> list[dict]:
    path = (data_dir or data_dir_default()) / "claims.yaml"
    claims = yaml.safe_load(path.read_text())
    required = {"id", "claim", "evidence", "notebook", "issue"}
    for i, claim in enumerate(claims):
        missing = required - set(claim)
        if missing:
            raise ValueError(f"{path}: claim #{i + 1} lacks {sorted(missing)}")
    return claims


def claims_map(data_dir: Path | None = None, notebook_dir: Path | None = None) -> pd.DataFrame:
    """One row per claim: the claim, the paper's evidence, the notebook and its state."""
    notebook_dir = notebook_dir or project_root() / "notebooks"
    rows = []
    for claim in load_claims(data_dir):
        written = (notebook_dir / f"{claim['notebook']}.py").is_file()
        rows.append({
            "id": claim["id"],
            "claim": claim["claim"],
            "paper evidence": claim["evidence"],
            "notebook": claim["notebook"],
            "status": "notebook written" if written
            else f"notebook not yet written (issue {claim['issue']})",
        })
    return pd.DataFrame(rows).set_index("id")


VERDICTS = ("reproduced in direction", "partly reproduced", "not reproduced", "not testable here")


def verdict_dir(profile_name: str) -> Path:
    from .cache import cache_root

    return cache_root() / "verdicts" / profile_name


def record_verdict(profile_name: str, claim_id: str, *, ours: str, verdict: str, reason: str) -> Path:
    """Store a claim notebook's conclusion (``ours``: our number in words, ``verdict``: one
    of ``VERDICTS``, ``reason``: why) for the claims table of the last chapter."""
    from .cache import write_json_atomic

    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
    known = {c["id"] for c in load_claims()}
    if claim_id not in known:
        raise ValueError(f"unknown claim {claim_id!r}; the claims are {sorted(known)}")
    return write_json_atomic(verdict_dir(profile_name) / f"{claim_id}.json",
                             {"id": claim_id, "ours": ours, "verdict": verdict, "reason": reason})


def verdict_table(profile_name: str) -> pd.DataFrame:
    """Each claim with our number and verdict as recorded by its notebook (or why not)."""
    import json

    rows = []
    for claim in load_claims():
        path = verdict_dir(profile_name) / f"{claim['id']}.json"
        found = json.loads(path.read_text()) if path.is_file() else None
        rows.append({"id": claim["id"], "claim": claim["claim"], "paper evidence": claim["evidence"],
                     "our result": found["ours"] if found else "",
                     "verdict": found["verdict"] if found else f"not yet measured ({claim['notebook']} not run)",
                     "reason": found["reason"] if found else "",
                     "notebook": claim["notebook"]})
    return pd.DataFrame(rows).set_index("id")
