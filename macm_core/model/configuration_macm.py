"""Configuration of the M-ACM model (``MACMConfig``) and the small from-scratch decoder."""
from __future__ import annotations

from typing import Any

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PretrainedConfig, Qwen2Config
from transformers.configuration_utils import SubConfigSpec

from macm_core.model.vision import VisionEncoderConfig

# ids of the special tokens in tokenizers trained by macm_core.model.tokenizer
DEFAULT_VIDEO_TOKEN_ID = 3
DEFAULT_MOTION_TOKEN_ID = 4


@strict
class MACMConfig(PretrainedConfig):
    r"""
    vision_config (`dict`): a `VisionEncoderConfig` as a dict (name, path, grid, image_size,
        seed): the frozen encoder shared by the visual and the motion pathway.
    text_config (`dict` or `PretrainedConfig`): the config of any Hugging Face causal LM
        (the decoder is built with `AutoModelForCausalLM.from_config`); a dict needs its
        `model_type` (default `"qwen2"`).
    projector_hidden_size (`int`, *optional*): width of the hidden layer of both
        projectors (Linear -> GELU -> Linear); defaults to the decoder's hidden size.
    projector_hidden_act (`str`): the projectors' activation.
    video_token_id / motion_token_id (`int`): the placeholder tokens in `input_ids` that are
        replaced by the projected visual / motion features, one token per feature.
    motion_encoder_config (`dict`, *optional*): reserved for a dedicated SMPL-sequence motion
        encoder; must stay `None` in this version (the motion pathway renders the body
        and reuses the frozen vision encoder).

    Example:

    ```python
    >>> from macm_core.model import MACMConfig, MACMForConditionalGeneration, small_qwen2_config
    >>> config = MACMConfig(vision_config={"name": "tiny-random", "grid": 2, "image_size": 64},
    ...                     text_config=small_qwen2_config(vocab_size=512))
    >>> model = MACMForConditionalGeneration(config)
    ```
    """

    model_type = "macm"
    sub_configs_defaults = {"text_config": SubConfigSpec(config_class=AutoConfig, model_type="qwen2")}

    vision_config: dict | None = None
    text_config: dict | PretrainedConfig | None = None
    projector_hidden_size: int | None = None
    projector_hidden_act: str = "gelu"
    video_token_id: int = DEFAULT_VIDEO_TOKEN_ID
    motion_token_id: int = DEFAULT_MOTION_TOKEN_ID
    motion_encoder_config: dict | None = None

    def __post_init__(self, **kwargs):
        if self.vision_config is None:
            self.vision_config = VisionEncoderConfig().to_dict()
        elif isinstance(self.vision_config, VisionEncoderConfig):
            self.vision_config = self.vision_config.to_dict()
        else:  # validates the keys and the values
            self.vision_config = VisionEncoderConfig.from_dict(self.vision_config).to_dict()
        super().__post_init__(**kwargs)
        if self.projector_hidden_size is None:
            self.projector_hidden_size = self.text_config.hidden_size
        if self.video_token_id == self.motion_token_id:
            raise ValueError(f"video_token_id and motion_token_id must differ, both are {self.video_token_id}")
        vocab = self.text_config.vocab_size
        for name in ("video_token_id", "motion_token_id"):
            if not 0 <= getattr(self, name) < vocab:
                raise ValueError(f"{name}={getattr(self, name)} is outside the decoder vocabulary (size {vocab}); "
                                 "take the ids from the tokenizer (`tokenizer.convert_tokens_to_ids('<video>')`)")
        if self.motion_encoder_config is not None:
            raise ValueError("motion_encoder_config is reserved for a dedicated SMPL-sequence motion encoder, "
                             "which this version does not build; leave it None (the motion pathway feeds the "
                             "rendered body images through the shared frozen vision encoder)")

    @property
    def vision_encoder_config(self) -> VisionEncoderConfig:
        return VisionEncoderConfig.from_dict(self.vision_config)


def small_qwen2_config(vocab_size: int, **overrides: Any) -> Qwen2Config:
    """A small Qwen2 decoder trained from scratch (cpu profile): hidden 256, 4 layers,
    4 heads, MLP 704, tied input/output embeddings (~3.2 M parameters + 256 per token)."""
    if vocab_size < 8:
        raise ValueError(f"vocab_size must come from the tokenizer (len(tokenizer)), got {vocab_size}")
    kwargs: dict[str, Any] = dict(
        vocab_size=vocab_size, hidden_size=256, intermediate_size=704, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024,
        tie_word_embeddings=True, pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )
    kwargs.update(overrides)
    return Qwen2Config(**kwargs)
