"""Caption evaluation: COCO metrics, grounded fine-grained metrics, QA accuracy, intervals.

* ``coco_metrics``: BLEU-1..4, METEOR, ROUGE-L, CIDEr (pycocoevalcap; needs Java);
* ``parse_caption`` / ``grounded_metrics``: body parts, sides, actions, counts and
  body-part hallucination (CHAIR) checked against the benchmark's labels;
* ``qa_accuracy``: normalised exact match on the benchmark's QA pairs;
* ``bootstrap_ci`` / ``bootstrap_weighted``: percentile intervals over clips;
* ``evaluate_captions``: all of the caption metrics with intervals, in one flat dict.

Analyses of the claim chapters:

* ``confusion``: hand/foot and left/right confusions of captions on single-limb clips,
  and the kinds of MSD's token flips;
* ``paired_difference``: a grounded metric of two caption sets on the same clips, their
  difference with a paired bootstrap interval;
* ``composition_rates``: are held-out part-action compositions described;
* ``probe``: a linear probe of the moving limb on a representation (encoder features,
  SMPL parameters) with a cross-validated L2 penalty.
"""
from .bootstrap import bootstrap_ci, bootstrap_weighted, resample_indices
from .coco import COCO_METRICS, coco_metrics, require_java, tokenize
from .compositions import composition_rates
from .confusion import (confusion_counts, confusion_matrix, describe_labels, flip_kind,
                        judge_captions, labelled_limb, named_limb_side)
from .corpus import CiderD, corpus_statistics
from .evaluate import METRICS, benchmark_tables, evaluate_captions
from .grounded import GROUNDED_METRICS, grounded_metrics, moving_parts, summarise
from .lexicon import CaptionMentions, parse_caption
from .paired import format_interval, interval_direction, paired_difference
from .probe import (ProbeResult, fit_probe, limb_label, limb_labels, limb_side_accuracy,
                    pool_keyframes, run_probe, side_part, smpl_features)
from .qa import normalise_answer, qa_accuracy, qa_correct, verdict

__all__ = [
    "COCO_METRICS", "GROUNDED_METRICS", "METRICS", "CaptionMentions", "CiderD", "ProbeResult",
    "benchmark_tables", "bootstrap_ci", "bootstrap_weighted", "coco_metrics", "composition_rates", "confusion_counts",
    "confusion_matrix", "corpus_statistics", "describe_labels", "evaluate_captions", "fit_probe",
    "flip_kind", "format_interval", "grounded_metrics", "interval_direction", "judge_captions",
    "labelled_limb", "limb_label", "limb_labels", "limb_side_accuracy", "moving_parts",
    "named_limb_side", "normalise_answer", "paired_difference", "parse_caption", "pool_keyframes",
    "qa_accuracy", "qa_correct", "require_java", "resample_indices", "run_probe", "side_part",
    "smpl_features", "summarise", "tokenize", "verdict",
]
