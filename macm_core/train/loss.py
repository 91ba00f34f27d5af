"""The training loss, computed only where it is needed.

The loss is a Hugging Face causal LM's with ``labels``: the mean next-token cross-entropy
over the positions whose next label is not -100, with float32 logits.  ``label_token_loss``
gives the same number (up to float32 rounding) with less work:

- the LM head runs only on the positions that predict a label, not on every position
  (the cpu profile: about 750 of 3,800 positions in a batch of 32);
- with ``length_groups`` > 1 the rows are sorted by length and go through the decoder in
  that many groups, each cut to its own longest row instead of the batch's (a third of
  the cpu profile's positions are padding in one group, 12% in 3 groups).  The batch must be padded
  on the right, so that cutting a row keeps all its tokens and their positions;
- the decoder's last layer, too, runs its query side only where the head does: its keys
  and values are needed at every position (the label positions attend to them), but its
  queries, attention output, MLP and the final norm only at the label positions, a quarter
  of the positions on the cpu profile (``last_layer_at``).  The same function, computed on
  fewer rows; for Qwen2 and Llama layers (the architectures of every profile), other
  decoders run the last layer on every position.  On the cpu profile (2 layers) a stage-2
  step takes 1.26x the samples/s it took with the whole last layer (median of 3 alternated
  runs of 30 steps in one process: 201 against 159; two processes at once: 199 against 142).

On the cpu profile the first two together made a stage-2 step about 15-30% faster (measured
step by step against the full-logits loss, 1 and 2 threads).  Several groups mean
several decoder forwards per optimizer step; one process and DDP handle that (the
gradients add up before the one backward), but keep ``length_groups`` at 1 for FSDP,
which is not tested with it.

A decoder that post-processes its logits (``final_logit_softcapping``, e.g. Gemma 2)
gets its own forward with ``labels`` instead: the LM head alone would not give its loss.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.llama.modeling_llama import rotate_half  # Qwen2's is the same function

IGNORE_INDEX = -100
# decoder layers whose structure ``last_layer_at`` writes out (pre-norm attention with rotary
# q/k, then a pre-norm MLP, each added to the residual stream)
LAST_LAYER_CLASSES = ("Qwen2DecoderLayer", "LlamaDecoderLayer")


def label_token_loss(language_model: nn.Module, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                     labels: torch.Tensor, *, length_groups: int = 1) -> torch.Tensor:
    """Mean next-token cross-entropy () of a causal LM over the label tokens.

    inputs_embeds (B, L, D); attention_mask (B, L), 1 on tokens, padded on the right when
    length_groups > 1; labels (B, L), -100 where there is no loss.  language_model: a
    Hugging Face causal LM (or a peft model around one), in train or eval mode.
    """
    if length_groups < 1:
        raise ValueError(f"length_groups must be >= 1, got {length_groups}")
    if getattr(language_model.config, "final_logit_softcapping", None):
        return language_model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, labels=labels,
                              use_cache=False).loss
    decoder, head = language_model.get_decoder(), language_model.get_output_embeddings()
    lengths = attention_mask.sum(dim=1)
    if length_groups == 1:
        groups = [slice(None)]  # the whole batch, as a view
    else:
        positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
        if not torch.equal(attention_mask.bool(), positions < lengths[:, None]):
            raise ValueError("length_groups > 1 needs a batch padded on the right (collate(..., "
                             "padding_side='right')): cutting a left-padded row would drop its tokens")
        groups = [g for g in torch.argsort(lengths, stable=True).tensor_split(length_groups) if g.numel()]
    count = (labels[:, 1:] != IGNORE_INDEX).sum()
    total = inputs_embeds.new_zeros((), dtype=torch.float32)
    for rows in groups:
        width = int(lengths[rows].max()) if length_groups > 1 else labels.shape[1]
        targets = labels[rows, 1:width]  # the token that position t predicts is the label at t + 1
        wanted = targets != IGNORE_INDEX
        if supports_last_layer_at(decoder):
            hidden = last_layer_at(decoder, inputs_embeds[rows, :width], attention_mask[rows, :width],
                                   F.pad(wanted, (0, 1)))
        else:
            hidden = decoder(inputs_embeds=inputs_embeds[rows, :width], attention_mask=attention_mask[rows, :width],
                             use_cache=False).last_hidden_state[:, :-1][wanted]
        logits = head(hidden).float()
        total = total + F.cross_entropy(logits, targets[wanted], reduction="sum")
    return total / count


def supports_last_layer_at(decoder: nn.Module) -> bool:
    """Whether ``last_layer_at`` can compute this decoder's last layer (a Qwen2 or Llama
    layer, full attention without dropout, no sliding window)."""
    layers = getattr(decoder, "layers", None)
    if not layers or type(layers[-1]).__name__ not in LAST_LAYER_CLASSES or not hasattr(decoder, "norm"):
        return False
    attn = layers[-1].self_attn
    return (getattr(attn, "sliding_window", None) is None and not (attn.training and attn.attention_dropout > 0)
            and all(hasattr(attn, name) for name in ("q_proj", "k_proj", "v_proj", "o_proj", "scaling", "head_dim")))


class _LastLayerInput(Exception):
    """Raised by a pre-hook on the last layer: carries what the decoder passes it."""

    def __init__(self, hidden: torch.Tensor, kwargs: dict):
        super().__init__()
        self.hidden, self.kwargs = hidden, kwargs


def last_layer_at(decoder: nn.Module, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                  wanted: torch.Tensor) -> torch.Tensor:
    """The decoder's final hidden states (after its norm) at the positions ``wanted``.

    inputs_embeds (B, L, D); attention_mask (B, L), 1 on tokens (either side padded); wanted (B, L) bool
    -> (N, D), N = wanted.sum(), row by row in position order (as ``hidden[wanted]``).
    Every layer but the last runs as the decoder runs it, on every position (the decoder
    builds its own mask and rotary tables; a pre-hook stops it before the last layer).
    The last layer computes its keys and values at every position and the rest only at
    the ``wanted`` positions, each attending to the keys at and before its position.
    """
    layer = decoder.layers[-1]

    # the decoder's own forward up to its last layer: however this version of transformers
    # builds masks and rotary tables, the layers before see what they always see
    def stop(module, args, kwargs):
        raise _LastLayerInput(args[0] if args else kwargs["hidden_states"], kwargs)

    handle = layer.register_forward_pre_hook(stop, with_kwargs=True)
    try:
        decoder(inputs_embeds=inputs_embeds, attention_mask=attention_mask, use_cache=False)
        raise RuntimeError("the decoder never called its last layer")
    except _LastLayerInput as caught:
        hidden, (cos, sin) = caught.hidden, caught.kwargs["position_embeddings"]  # cos, sin: (B or 1, L, d)
    finally:
        handle.remove()

    attn = layer.self_attn
    batch, length, _ = hidden.shape
    cos, sin = cos.expand(batch, -1, -1), sin.expand(batch, -1, -1)
    counts = wanted.sum(dim=1)
    slots = int(counts.max()) if batch else 0
    if slots == 0:
        return hidden.new_zeros((0, hidden.shape[-1]))
    # the wanted positions of each row first, in order, then position 0 as filler
    order = torch.argsort((~wanted).to(torch.int8), dim=1, stable=True)[:, :slots]  # (B, Q)
    filled = torch.arange(slots, device=hidden.device) < counts[:, None]  # (B, Q)
    where = torch.where(filled, order, 0)

    def at(x: torch.Tensor) -> torch.Tensor:  # (B, L, C) -> (B, Q, C)
        return x.gather(1, where[..., None].expand(-1, -1, x.shape[-1]))

    normed = layer.input_layernorm(hidden)
    key = attn.k_proj(normed).view(batch, length, -1, attn.head_dim).transpose(1, 2)  # (B, H_kv, L, d)
    value = attn.v_proj(normed).view(batch, length, -1, attn.head_dim).transpose(1, 2)
    query = attn.q_proj(at(normed)).view(batch, slots, -1, attn.head_dim).transpose(1, 2)  # (B, H, Q, d)
    key = key * cos[:, None] + rotate_half(key) * sin[:, None]  # rotary, as apply_rotary_pos_emb
    query = query * at(cos)[:, None] + rotate_half(query) * at(sin)[:, None]
    positions = torch.arange(length, device=hidden.device)
    allowed = (positions <= where[..., None]) & attention_mask[:, None, :].bool()  # (B, Q, L)
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=allowed[:, None], scale=attn.scaling,
                                         enable_gqa=query.shape[1] != key.shape[1])
    out = attn.o_proj(out.transpose(1, 2).reshape(batch, slots, -1))
    x = at(hidden) + out
    x = x + layer.mlp(layer.post_attention_layernorm(x))
    return decoder.norm(x)[filled]
