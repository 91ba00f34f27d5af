"""Accuracy on the benchmark's question-answer pairs (``Benchmark.qa``), by normalised
exact match.

The QA table has two kinds of items (``data.qa``): ``"open"`` questions with a short
answer ("the left hand", "three times", "out to the side", "at a normal pace") and
``"judge"`` statements whose answer is ``"true"`` or ``"false"``.

* An open answer is right when it equals the gold one after ``normalise_answer``: lower
  case, punctuation and determiners ("the", "their", "a" ...) dropped, and any count
  ("twice", "2 times", "two", "2x") written as its number.
* A judge answer is right when its verdict (``verdict``: the first of true / yes /
  correct vs false / no / incorrect in it, flipped by a "not" just before) equals the gold
  one, so "True." and "Yes, that is true" both answer "true".
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

from .lexicon import COUNT_WORDS, NUMBER_WORDS, normalise

DETERMINERS: frozenset[str] = frozenset({"a", "an", "the", "their", "his", "her", "its"})
TRUE_WORDS: frozenset[str] = frozenset({"true", "yes", "correct"})  # not "right": a side
FALSE_WORDS: frozenset[str] = frozenset({"false", "no", "incorrect", "wrong"})
_COUNT = re.compile(r"(\d{1,2}) ?(?:times?|x)?|x ?(\d{1,2})")


def normalise_answer(text: str) -> str:
    """A short answer in a canonical form: "The LEFT hand." -> "left hand", "2 times" and
    "twice" -> "2"."""
    words = [w for w in re.sub(r"[.!?;,]", " ", normalise(text)).split()
             if w not in DETERMINERS]
    answer = " ".join(words)
    if answer in COUNT_WORDS:
        return str(COUNT_WORDS[answer])
    if answer in NUMBER_WORDS:
        return str(NUMBER_WORDS[answer])
    digits = _COUNT.fullmatch(answer)
    if digits:
        return str(int(digits.group(1) or digits.group(2)))
    return answer


def verdict(text: str) -> str | None:
    """"true", "false" or None (no verdict word) for an answer to a judge statement."""
    words = re.sub(r"[.!?;,]", " ", normalise(text)).split()
    for i, word in enumerate(words):
        if word in TRUE_WORDS or word in FALSE_WORDS:
            says_true = word in TRUE_WORDS
            if i > 0 and words[i - 1] == "not":
                says_true = not says_true
            return "true" if says_true else "false"
    return None


def qa_correct(predicted_answers: Sequence[str] | Mapping,
               gold_answers: Sequence[str] | Mapping) -> np.ndarray:
    """(N,) bool: is each predicted answer right?

    Sequences are compared item by item (equal lengths); mappings (e.g. QA-row id ->
    answer) by the gold keys, a missing prediction being wrong.  A gold answer "true" or
    "false" is judged by ``verdict``, any other by ``normalise_answer``.
    """
    if isinstance(gold_answers, Mapping):
        if not isinstance(predicted_answers, Mapping):
            raise TypeError("gold answers are a mapping: give the predictions as one too")
        keys = list(gold_answers)
        gold = [gold_answers[k] for k in keys]
        predicted = [predicted_answers.get(k) for k in keys]
    else:
        gold, predicted = list(gold_answers), list(predicted_answers)
        if len(gold) != len(predicted):
            raise ValueError(f"{len(predicted)} predicted answers for {len(gold)} questions")
    out = np.zeros(len(gold), dtype=bool)
    for i, (pred, want) in enumerate(zip(predicted, gold)):
        if pred is None:
            continue
        want_norm = normalise_answer(want)
        if want_norm in ("true", "false"):
            out[i] = verdict(pred) == want_norm
        else:
            out[i] = normalise_answer(pred) == want_norm
    return out


def qa_accuracy(predicted_answers: Sequence[str] | Mapping,
                gold_answers: Sequence[str] | Mapping) -> float:
    """Share of questions answered right (normalised exact match; NaN for no questions)."""
    correct = qa_correct(predicted_answers, gold_answers)
    return float(correct.mean()) if len(correct) else float("nan")
