"""Training M-ACM on cached encoder features (stage 1 alignment, stage 2 fine-tuning / LoRA).

- ``dataset``: ``ClipTexts`` (captions + QA per clip), ``CaptionDataset`` (deterministic QA
  mixing and pathway dropout per (seed, epoch, index)), ``batch_keys`` (data order as a
  function of the step), ``collate``.
- ``loss``: ``label_token_loss`` (the causal-LM loss with the LM head on label positions
  only, the decoder run on groups of rows of similar length).
- ``trainer``: ``TrainConfig``, ``train`` (accelerate; resumable exactly from atomic
  checkpoints), ``MixedPathwayModel``, ``configure_trainable``, ``merge_lora``.
- ``configs/fsdp_7b.yaml``: ``accelerate launch`` config for 7B/8B decoders on one 8-GPU node.
"""
from macm_core.train.dataset import (CAPTION_FIELDS, CONDITIONING_PRESETS, CaptionDataset, Choice, ClipTexts,
                                     Example, batch_keys, collate, epoch_order)
from macm_core.train.loss import label_token_loss
from macm_core.train.trainer import (MixedPathwayModel, TrainConfig, TrainResult, configure_trainable,
                                     latest_checkpoint, merge_lora, train)

__all__ = [
    "CAPTION_FIELDS", "CONDITIONING_PRESETS", "CaptionDataset", "Choice", "ClipTexts", "Example",
    "MixedPathwayModel", "TrainConfig", "TrainResult", "batch_keys", "collate", "configure_trainable",
    "epoch_order", "label_token_loss", "latest_checkpoint", "merge_lora", "train",
]
