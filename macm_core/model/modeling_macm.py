"""The M-ACM model: a frozen vision encoder shared by two pathways, two projectors, a causal LM.

Visual pathway: video frames -> frozen encoder -> ``visual_projector``.
Motion pathway: images of the fitted body rendered over the same keyframes -> the same
frozen encoder -> ``motion_projector`` (the paper's M-ACM feeds the rendered motion
through the shared encoder).  The projected features replace the ``<video>`` and
``<motion>`` placeholder tokens of the prompt, one feature per token, in order; which
placeholders the prompt holds decides the conditioning (visual only, motion only or
joint).  The decoder is any Hugging Face causal LM built from ``config.text_config``.

Checkpoints: ``save_pretrained`` writes every parameter and buffer, the frozen encoder's
included (EfficientNet-Lite0 adds 18.6 MB), so ``from_pretrained`` restores the exact
model without reading the encoder's source (asset cache; the SigLIP folder is still read
for its config.json).  A freshly constructed model takes the encoder weights from that
source (``VisionEncoder.load_pretrained``); they are never randomly initialised.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoModelForCausalLM, PreTrainedModel
from transformers.activations import ACT2FN
from transformers.utils import ModelOutput

from macm_core.model.configuration_macm import MACMConfig
from macm_core.model.vision import VisionEncoder, build_vision_encoder


@dataclass
class MACMOutput(ModelOutput):
    """
    loss (`torch.FloatTensor` of shape `()`, *optional*): mean next-token cross-entropy over
        the positions whose label is not -100 (given `labels`).
    logits (`torch.FloatTensor` of shape `(B, L, V)`): next-token scores at every position.
    cache (`Cache`, *optional*): the decoder's key/value cache when it returns one.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    cache: object | None = None


class MACMProjector(nn.Module):
    """Linear -> GELU -> Linear from encoder features to decoder embeddings (as LLaVA)."""

    def __init__(self, *, in_features: int, hidden_features: int, out_features: int, act: str = "gelu"):
        super().__init__()
        self.linear_1 = nn.Linear(in_features, hidden_features)
        self.act = ACT2FN[act]
        self.linear_2 = nn.Linear(hidden_features, out_features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(features)))


class MACMPreTrainedModel(PreTrainedModel):
    config_class = MACMConfig
    config: MACMConfig
    base_model_prefix = "macm"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True


class MACMForConditionalGeneration(MACMPreTrainedModel):
    """Frozen shared vision encoder + visual/motion projectors + causal-LM decoder.

    Trainable: ``visual_projector``, ``motion_projector`` and ``language_model``.
    ``forward`` takes ``pixel_values`` / ``motion_pixel_values`` (B, T, 3, H, W) in [0, 1],
    or the cached encoder outputs ``video_features`` / ``motion_features``
    (B, T * N, D_enc) instead (N = grid**2 tokens per frame).
    """

    def __init__(self, config: MACMConfig):
        super().__init__(config)
        self.vision_encoder = build_vision_encoder(config.vision_encoder_config, load_weights=False)
        text_hidden = config.text_config.hidden_size
        projector = dict(in_features=self.vision_encoder.hidden_size, hidden_features=config.projector_hidden_size,
                         out_features=text_hidden, act=config.projector_hidden_act)
        self.visual_projector = MACMProjector(**projector)
        self.motion_projector = MACMProjector(**projector)
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        self.post_init()
        # post_init gave the encoder a generic random init; a fresh model takes the frozen
        # weights from their source (from_pretrained builds on the meta device: skipped there)
        if not any(p.is_meta for p in self.vision_encoder.parameters()):
            self.vision_encoder.load_pretrained()

    @classmethod
    def from_pretrained(cls, *args, **kwargs) -> "MACMForConditionalGeneration":
        """``PreTrainedModel.from_pretrained``, then the frozen encoder is re-frozen (loading
        makes parameters trainable) and, if the checkpoint lacks its weights, re-read from
        its source."""
        want_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(*args, output_loading_info=True, **kwargs)
        if any(key.startswith("vision_encoder.") for key in info["missing_keys"]):
            model.vision_encoder.load_pretrained()
        model.vision_encoder.freeze()
        return (model, info) if want_info else model

    # -- embeddings ---------------------------------------------------------------------
    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def get_decoder(self) -> PreTrainedModel:
        return self.language_model

    def embed_tokens(self, input_ids: torch.LongTensor) -> torch.Tensor:
        """input_ids (B, L) -> token embeddings (B, L, D) of the decoder (placeholders not replaced)."""
        return self.get_input_embeddings()(input_ids)

    def tokens_per_clip(self, num_frames: int) -> int:
        """How many ``<video>`` (or ``<motion>``) placeholders a clip of ``num_frames`` needs."""
        return self.vision_encoder.tokens_per_clip(num_frames)

    # -- pathways -----------------------------------------------------------------------
    def encode_frames(self, images: torch.Tensor) -> torch.Tensor:
        """Frozen encoder: images (B, T, 3, H, W) in [0, 1] -> features (B, T * N, D_enc), no grad."""
        return self.vision_encoder(images)

    def _pathway(self, name: str, pixels: torch.Tensor | None,
                 features: torch.Tensor | None) -> torch.Tensor | None:
        """Pixels (B, T, 3, H, W) or cached features (B, T * N, D_enc) -> projected (B, T * N, D)."""
        pixel_arg = "pixel_values" if name == "video" else "motion_pixel_values"
        if pixels is not None and features is not None:
            raise ValueError(f"give either {pixel_arg} or {name}_features, not both")
        if pixels is not None:
            features = self.encode_frames(pixels)
        if features is None:
            return None
        if features.ndim != 3 or features.shape[-1] != self.vision_encoder.hidden_size:
            raise ValueError(f"{name}_features must have shape (B, T * N, {self.vision_encoder.hidden_size}) "
                             f"(the {self.vision_encoder.encoder_config.name} encoder's output), "
                             f"got {tuple(features.shape)}")
        projector = self.visual_projector if name == "video" else self.motion_projector
        return projector(features.to(projector.linear_1.weight.dtype))

    def prompt_embeddings(
        self,
        input_ids: torch.LongTensor,
        pixel_values: torch.Tensor | None = None,
        motion_pixel_values: torch.Tensor | None = None,
        *,
        video_features: torch.Tensor | None = None,
        motion_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """input_ids (B, L) with placeholders -> inputs_embeds (B, L, D) for the decoder.

        The i-th ``<video>`` token of row b gets projected visual feature i of clip b, the
        same for ``<motion>``.  Each row must hold exactly as many placeholders of a kind as
        its clip has features (``tokens_per_clip(T)``); placeholders without features, or
        features without placeholders, raise ``ValueError``.
        """
        if input_ids.ndim != 2:
            raise ValueError(f"input_ids must have shape (B, L), got {tuple(input_ids.shape)}")
        embeds = self.embed_tokens(input_ids)
        for name, token_id, pixels, features in (
            ("video", self.config.video_token_id, pixel_values, video_features),
            ("motion", self.config.motion_token_id, motion_pixel_values, motion_features),
        ):
            projected = self._pathway(name, pixels, features)
            embeds = _scatter_placeholders(embeds, input_ids == token_id, projected, name)
        return embeds

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        motion_pixel_values: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        *,
        video_features: torch.Tensor | None = None,
        motion_features: torch.Tensor | None = None,
        **decoder_kwargs,
    ) -> MACMOutput:
        """input_ids (B, L), attention_mask (B, L), labels (B, L) with -100 where no loss ->
        ``MACMOutput(loss, logits (B, L, V))``.  Extra keyword arguments (``position_ids``,
        ``cache``, ``use_cache``, ...) go to the decoder unchanged; ``use_cache`` defaults to
        False here (training), a decoding loop passes ``use_cache=True`` to get ``.cache``."""
        decoder_kwargs.setdefault("use_cache", False)
        inputs_embeds = self.prompt_embeddings(input_ids, pixel_values, motion_pixel_values,
                                               video_features=video_features, motion_features=motion_features)
        out = self.language_model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, labels=labels,
                                  **decoder_kwargs)
        return MACMOutput(loss=out.loss, logits=out.logits, cache=getattr(out, "cache", None))


def _scatter_placeholders(embeds: torch.Tensor, mask: torch.Tensor, features: torch.Tensor | None,
                          name: str) -> torch.Tensor:
    """Put features (B, n, D) at the n True positions of each row of mask (B, L), in order."""
    counts = mask.sum(dim=1)
    if features is None:
        if bool(counts.any()):
            pixel_arg = "pixel_values" if name == "video" else "motion_pixel_values"
            raise ValueError(f"input_ids hold <{name}> placeholders (per row: {counts.tolist()}) but neither "
                             f"{pixel_arg} nor {name}_features were given; pass them, or build the prompt "
                             f"without <{name}> tokens")
        return embeds
    if features.shape[0] != embeds.shape[0]:
        raise ValueError(f"{name} features are for {features.shape[0]} clips but input_ids has "
                         f"{embeds.shape[0]} rows")
    if bool((counts != features.shape[1]).any()):
        raise ValueError(f"<{name}> placeholder tokens and {name} features do not match: tokens per row "
                         f"{counts.tolist()}, features per clip {features.shape[1]}; build the prompt with "
                         f"tokens_per_clip(num_frames) placeholders")
    mask = mask.unsqueeze(-1).expand_as(embeds)
    return embeds.masked_scatter(mask, features.to(embeds.dtype))
