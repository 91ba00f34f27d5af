"""An optional LLM judge on the five HMI dimensions (the paper's Table 2), from a local model.

HMI-Bench scores each caption on five dimensions of human-motion understanding (Details
of Movements, Interaction with Environment, Motivation and Reason, Micro-expressions and
Emotions, Character Attributes) with an LLM judge.  The paper publishes neither its judge
model nor its prompt; the prompt below is this project's reconstruction: the reference
description and the candidate caption, and a request for one integer from 0 to 10 per
dimension as a single JSON object.

* Nothing is downloaded: ``load_judge(path)`` takes a local Hugging Face causal-LM folder
  (the gpu profile's ``eval.judge_path``, e.g. Qwen2-7B-Instruct); a missing folder is a
  clear error naming what to put there.
* ``judge_captions`` decodes greedily, in batches (left padding), with the tokenizer's
  chat template when it has one.
* Every raw reply is kept: the returned table has one row per clip with the prompt's
  inputs, the raw text and the parsed scores; ``write_judgements`` saves it as JSON lines
  next to the scores.  A reply without a parseable score for a dimension gives NaN there,
  and ``summarise_judgements`` reports how many replies were unparseable.
"""
from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

HMI_DIMENSIONS: tuple[str, ...] = ("Details of Movements", "Interaction with Environment",
                                   "Motivation and Reason", "Micro-expressions and Emotions",
                                   "Character Attributes")
SCORE_RANGE = (0.0, 10.0)
PROMPT_VERSION = 1

INSTRUCTION = (
    "You judge captions of videos of people. Compare the candidate caption with the reference description of "
    "the same video and score the candidate from 0 (wrong or missing) to 10 (complete and correct) on each "
    "dimension: {dimensions}. Reply with one JSON object whose keys are exactly these dimension names and "
    "whose values are integers, and nothing else.\n\nReference: {reference}\nCandidate: {candidate}"
)


def judge_prompt(reference: str, candidate: str) -> str:
    """The user message for one clip (``PROMPT_VERSION``)."""
    return INSTRUCTION.format(dimensions="; ".join(HMI_DIMENSIONS), reference=reference.strip(),
                              candidate=candidate.strip())


def _number(value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    lo, hi = SCORE_RANGE
    return number if lo <= number <= hi else math.nan


def parse_judgement(text: str) -> dict[str, float]:
    """Scores per dimension from a reply: the first JSON object in it whose keys match the
    dimension names (case and surrounding spaces ignored); else ``"<name>: <number>"``
    lines.  NaN for a dimension that is missing, not a number, or outside 0..10."""
    wanted = {name.lower(): name for name in HMI_DIMENSIONS}
    scores = {name: math.nan for name in HMI_DIMENSIONS}
    for match in re.finditer(r"\{[^{}]*\}", text):
        try:
            obj = json.loads(match.group(0))
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            found = {wanted[k.strip().lower()]: _number(v) for k, v in obj.items()
                     if isinstance(k, str) and k.strip().lower() in wanted}
            if found:
                scores.update(found)
                return scores
    for name in HMI_DIMENSIONS:
        line = re.search(re.escape(name) + r"\W{0,3}\s*[:=]\s*\"?(-?\d+(?:\.\d+)?)", text, flags=re.IGNORECASE)
        if line:
            scores[name] = _number(line.group(1))
    return scores


def load_judge(model_path: str | Path):
    """(model in eval mode, tokenizer) of a local causal LM folder; a clear error without one."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(model_path)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"LLM judge folder {folder} holds no Hugging Face model (config.json): put a local instruction-tuned "
            "causal LM there (e.g. Qwen2-7B-Instruct) and set eval.judge_path to it; nothing is downloaded")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype="auto").eval()
    return model, tokenizer


CHAT_FORMAT = "chat template"  # the judge's tokenizer has a chat template
PLAIN_FORMAT = "plain USER/ASSISTANT"  # it has none


def prompt_format(tokenizer) -> str:
    """``CHAT_FORMAT`` when the judge's tokenizer has a chat template, else ``PLAIN_FORMAT``."""
    return CHAT_FORMAT if getattr(tokenizer, "chat_template", None) else PLAIN_FORMAT


def _chat_text(tokenizer, message: str, fmt: str) -> str:
    if fmt == CHAT_FORMAT:
        return tokenizer.apply_chat_template([{"role": "user", "content": message}], tokenize=False,
                                             add_generation_prompt=True)
    return f"USER: {message}\nASSISTANT:"


def judge_captions(predictions: Mapping[str, str], references: Mapping[str, str], judge, *,
                   batch_size: int = 8, max_new_tokens: int = 96) -> pd.DataFrame:
    """One row per clip (sorted by clip_id): ``reference``, ``candidate``, ``raw`` (the
    judge's reply), ``prompt_format`` (``prompt_format``) and one column of scores per
    ``HMI_DIMENSIONS``.  A judge without a chat template is prompted in a plain
    ``USER: ... ASSISTANT:`` format, with a warning: an instruction-tuned judge reads its
    own template better, so its scores are not comparable with a templated judge's.

    predictions, references: clip_id -> caption; every predicted clip needs a reference.
    judge: ``(model, tokenizer)`` as ``load_judge`` returns.
    """
    import torch

    missing = [c for c in predictions if c not in references]
    if missing:
        raise KeyError(f"{len(missing)} captions have no reference description, e.g. {missing[:3]}")
    model, tokenizer = judge
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    clip_ids = sorted(predictions)
    fmt = prompt_format(tokenizer)
    if fmt == PLAIN_FORMAT:
        warnings.warn("the judge's tokenizer has no chat template: it is prompted as 'USER: ... ASSISTANT:'; "
                      "give a judge folder whose tokenizer_config.json holds its chat template", stacklevel=2)
    texts = [_chat_text(tokenizer, judge_prompt(references[c], predictions[c]), fmt) for c in clip_ids]
    replies: list[str] = []
    device = next(model.parameters()).device
    for first in range(0, len(texts), batch_size):
        batch = tokenizer(texts[first:first + batch_size], return_tensors="pt", padding=True,
                          add_special_tokens=False).to(device)
        with torch.inference_mode():
            out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        new = out[:, batch["input_ids"].shape[1]:]
        replies.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
    rows = []
    for clip_id, reply in zip(clip_ids, replies):
        rows.append({"clip_id": clip_id, "reference": references[clip_id], "candidate": predictions[clip_id],
                     "raw": reply, "prompt_format": fmt, **parse_judgement(reply)})
    return pd.DataFrame(rows)


def summarise_judgements(table: pd.DataFrame) -> dict[str, float]:
    """Mean score per dimension (over the replies that gave one), their mean ("Overall",
    over the five dimension means), and the number of replies with no score at all."""
    means = {f"judge {name}": float(table[name].mean()) for name in HMI_DIMENSIONS}
    finite = [v for v in means.values() if not math.isnan(v)]
    means["judge Overall"] = sum(finite) / len(finite) if len(finite) == len(HMI_DIMENSIONS) else math.nan
    means["judge unparsed"] = float(table[list(HMI_DIMENSIONS)].isna().all(axis=1).sum())
    return means


def write_judgements(table: pd.DataFrame, path: str | Path) -> Path:
    """Every raw judgement with its parsed scores, one JSON object per line (atomic)."""
    from ..cache import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_text("".join(json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v)
                                                 for k, v in row.items()}) + "\n"
                                     for row in table.to_dict("records")))
    return path
