"""Caption evaluation: COCO metrics, grounded fine-grained metrics, QA accuracy, intervals.

* ``coco_metrics``: BLEU-1..4, METEOR, ROUGE-L, CIDEr (pycocoevalcap; needs Java);
* ``parse_caption`` / ``grounded_metrics``: body parts, sides, actions, counts and
  body-part hallucination (CHAIR) checked against the benchmark's labels;
* ``qa_accuracy``: normalised exact match on the benchmark's QA pairs;
* ``bootstrap_ci``: percentile intervals over clips;
* ``evaluate_captions``: all of the caption metrics with intervals, in one flat dict.
"""
from .bootstrap import bootstrap_ci, resample_indices
from .coco import COCO_METRICS, coco_metrics, require_java, tokenize
from .corpus import CiderD, corpus_statistics
from .evaluate import METRICS, benchmark_tables, evaluate_captions
from .grounded import GROUNDED_METRICS, grounded_metrics, moving_parts, summarise
from .lexicon import CaptionMentions, parse_caption
from .qa import normalise_answer, qa_accuracy, qa_correct, verdict

__all__ = [
    "COCO_METRICS", "GROUNDED_METRICS", "METRICS", "CaptionMentions", "CiderD",
    "benchmark_tables", "bootstrap_ci", "coco_metrics", "corpus_statistics",
    "evaluate_captions", "grounded_metrics", "moving_parts", "normalise_answer",
    "parse_caption", "qa_accuracy", "qa_correct", "require_java", "resample_indices",
    "summarise", "tokenize", "verdict",
]
