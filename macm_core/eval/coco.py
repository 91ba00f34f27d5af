"""The standard captioning metrics, computed by pycocoevalcap (the COCO caption code).

``coco_metrics(references, predictions)`` returns BLEU-1..4, METEOR, ROUGE-L and CIDEr
(pycocoevalcap's ``Cider`` is CIDEr-D) as raw fractions, as the paper reports them (not
x100).  SPICE is left out: it downloads Stanford CoreNLP models on first use.

As in the COCO evaluation, every caption is first lower-cased and split by the Stanford
PTB tokenizer, which also drops punctuation; BLEU and CIDEr are corpus statistics (not
means of per-clip scores), METEOR aggregates its per-clip statistics, ROUGE-L is the mean
per-clip score.  ``per_clip=True`` also returns a per-clip table: the per-clip scores
pycocoevalcap gives (sentence BLEU, METEOR, ROUGE-L, CIDEr) and what the corpus
statistics need to be recomputed on a resample of clips (``corpus.py``).

The tokenizer and METEOR run on Java (``java`` on the PATH).  METEOR's jar loads a 60 MB
paraphrase table when it starts (10-20 s on a CPU), so one METEOR process is kept for the
whole Python session.
"""
from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence

import pandas as pd
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

COCO_METRICS: tuple[str, ...] = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR",
                                 "ROUGE-L", "CIDEr")
JAVA_INSTALL = "apt-get install -y default-jre-headless"


def require_java() -> str:
    """The path of ``java``; raises ``RuntimeError`` saying how to install it if absent."""
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("the COCO caption metrics (PTB tokenizer, METEOR) need Java, and "
                           f"no `java` is on the PATH: install it with `{JAVA_INSTALL}`")
    return java


def tokenize(captions: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Captions as the COCO evaluation sees them: lower case, PTB tokens joined by single
    spaces, punctuation dropped.  One Java run for all captions.

    captions: key -> list of captions; returns key -> list of tokenized captions (same
    order).  Whitespace (newlines included) becomes single spaces and "|" is dropped first,
    so no caption can break the tokenizer's one-line-per-caption or METEOR's "|||" protocol.
    """
    require_java()
    clean = {key: [{"caption": " ".join(c.replace("|", " ").split())} for c in caps]
             for key, caps in captions.items()}
    return PTBTokenizer().tokenize(clean)


_METEOR: Meteor | None = None


def _meteor() -> Meteor:
    """The session's METEOR process, (re)started when there is none alive."""
    global _METEOR
    if _METEOR is None or _METEOR.meteor_p.poll() is not None:
        require_java()
        _METEOR = Meteor()
    return _METEOR


def meteor_scores(gts: dict[str, list[str]],
                  res: dict[str, list[str]]) -> tuple[float, list[float], list[str]]:
    """(corpus METEOR, per-clip METEOR, per-clip statistics) for tokenized captions.

    This is ``Meteor.compute_score`` (one SCORE line per clip, then one EVAL line over
    all of them) keeping the statistics the SCORE lines return: 23 numbers per clip from
    which METEOR aggregates its corpus score (``corpus.meteor_from_stats``).
    """
    meteor = _meteor()
    keys = list(res)
    try:
        with meteor.lock:
            stats = [meteor._stat(res[k][0], gts[k]) for k in keys]
            meteor.meteor_p.stdin.write(("EVAL ||| " + " ||| ".join(stats) + "\n").encode())
            meteor.meteor_p.stdin.flush()
            scores = [float(meteor.meteor_p.stdout.readline().strip()) for _ in keys]
            score = float(meteor.meteor_p.stdout.readline().strip())
    except (ValueError, BrokenPipeError) as err:      # the jar died or answered garbage
        global _METEOR
        _METEOR = None
        meteor.meteor_p.kill()
        meteor.meteor_p.wait()
        detail = meteor.meteor_p.stderr.read().decode(errors="replace")[-2000:]
        raise RuntimeError(f"METEOR's Java process failed: {err}\n{detail}") from err
    return score, scores, stats


def coco_metrics(references: Mapping[str, Sequence[str]], predictions: Mapping[str, str], *,
                 per_clip: bool = False) -> dict[str, float] | tuple[dict[str, float],
                                                                     pd.DataFrame]:
    """BLEU-1..4, METEOR, ROUGE-L and CIDEr of the predictions against the references.

    references: clip_id -> one or more reference captions (the benchmark has one per
        clip); predictions: clip_id -> the predicted caption.  Every predicted clip needs
        references; references of clips without a prediction are ignored (CIDEr's
        document frequencies come from the predicted clips' references only).
    Returns ``{metric: float}`` (keys ``COCO_METRICS``), raw fractions; with
    ``per_clip=True`` also a table indexed by clip_id (sorted) with the per-clip scores
    (``COCO_METRICS`` columns; BLEU-n there is sentence BLEU) and ``prediction``,
    ``references`` (tokenized) and ``meteor_stats``, for ``corpus.corpus_statistics``.
    """
    ids = _check(references, predictions)
    tokens = tokenize({**{("ref", cid): list(references[cid]) for cid in ids},
                       **{("pred", cid): [predictions[cid]] for cid in ids}})
    gts = {cid: tokens[("ref", cid)] for cid in ids}
    res = {cid: tokens[("pred", cid)] for cid in ids}
    bleu, bleu_clip = Bleu(4).compute_score(gts, res, verbose=0)
    meteor, meteor_clip, meteor_stats = meteor_scores(gts, res)
    rouge, rouge_clip = Rouge().compute_score(gts, res)
    cider, cider_clip = Cider().compute_score(gts, res)
    scores = {**{f"BLEU-{k + 1}": float(bleu[k]) for k in range(4)},
              "METEOR": float(meteor), "ROUGE-L": float(rouge), "CIDEr": float(cider)}
    if not per_clip:
        return scores
    table = pd.DataFrame({**{f"BLEU-{k + 1}": bleu_clip[k] for k in range(4)},
                          "METEOR": meteor_clip, "ROUGE-L": rouge_clip, "CIDEr": cider_clip,
                          "prediction": [res[cid][0] for cid in ids],
                          "references": [gts[cid] for cid in ids],
                          "meteor_stats": meteor_stats},
                         index=pd.Index(ids, name="clip_id"))
    return scores, table


def _check(references: Mapping[str, Sequence[str]], predictions: Mapping[str, str]) -> list[str]:
    """The predicted clip ids, sorted, after checking both mappings."""
    if not predictions:
        raise ValueError("no predictions to evaluate")
    missing = [cid for cid in predictions if cid not in references]
    if missing:
        raise KeyError(f"{len(missing)} predicted clips have no reference, e.g. {missing[:3]}")
    for cid, text in predictions.items():
        if not isinstance(text, str):
            raise TypeError(f"prediction of {cid!r} is a {type(text).__name__}, not a str")
        refs = references[cid]
        if isinstance(refs, str) or not refs or not all(isinstance(r, str) for r in refs):
            raise ValueError(f"references of {cid!r} must be a non-empty list of str")
    return sorted(predictions)
