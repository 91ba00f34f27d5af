"""Caption tokenizer and the prompt template that places the pathway placeholders.

``train_caption_tokenizer`` trains a byte-level BPE on caption texts (ids 0-4 are
``<pad> <s> </s> <video> <motion>``) and wraps it as a ``PreTrainedTokenizerFast``;
``save_pretrained(folder)`` / ``load_tokenizer(folder)`` round-trip it.  Any other
tokenizer works the same once ``add_placeholder_tokens`` gave it ``<video>``/``<motion>``
(the SmolLM2 tokenizer of the cpu-pretrained profile, for one).

The prompt, one example (``build_inputs``)::

    <s>USER: <video>x Nv <motion>x Nm Describe the person's motion. ASSISTANT: {caption}</s>

A ChatML tokenizer (eos ``<|im_end|>`` and a ``<|im_start|>`` token: SmolLM2-Instruct,
Qwen2-Instruct) gets the chat format its model was tuned on instead, without a system
turn and without an extra bos (``<|im_start|>`` opens the turn)::

    <|im_start|>user\\n<video>x Nv <motion>x Nm\\nDescribe the person's motion.<|im_end|>\\n<|im_start|>assistant\\n{caption}<|im_end|>

In both, the caption ends with ``tokenizer.eos_token_id`` (``</s>``, or ``<|im_end|>``, the
end of an assistant turn) and ``decode_caption`` cuts there.

``conditioning`` picks the placeholder blocks: ``visual`` (``<video>`` only), ``motion``
(``<motion>`` only) or ``joint`` (both).  Labels are -100 on the prompt and on padding,
so the loss covers the caption and its end-of-sequence token only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, NamedTuple, Sequence

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

PAD_TOKEN, BOS_TOKEN, EOS_TOKEN = "<pad>", "<s>", "</s>"
VIDEO_TOKEN, MOTION_TOKEN = "<video>", "<motion>"
SPECIAL_TOKENS = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, VIDEO_TOKEN, MOTION_TOKEN)
DEFAULT_INSTRUCTION = "Describe the person's motion."
CONDITIONINGS = ("visual", "motion", "joint")
IGNORE_INDEX = -100
CHATML_START, CHATML_END = "<|im_start|>", "<|im_end|>"


class ModelInputs(NamedTuple):
    """One example (each (L,)) or a padded batch (each (B, L)), all int64.

    input_ids: prompt (+ caption + eos) token ids, placeholders included.
    attention_mask: 1 on tokens, 0 on padding.
    labels: the caption ids and eos; -100 on the prompt and on padding.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor


def train_caption_tokenizer(texts: Iterable[str], *, vocab_size: int = 2000,
                            min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on ``texts`` (at most ``vocab_size`` tokens,
    the 256 byte symbols and 5 special tokens included; fewer if the corpus is small)."""
    minimum = 256 + len(SPECIAL_TOKENS)
    if vocab_size < minimum:
        raise ValueError(f"vocab_size must be at least {minimum} (256 bytes + {len(SPECIAL_TOKENS)} special "
                         f"tokens), got {vocab_size}")
    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise ValueError("no caption texts to train the tokenizer on")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=BOS_TOKEN, eos_token=EOS_TOKEN,
                                   pad_token=PAD_TOKEN, extra_special_tokens=[VIDEO_TOKEN, MOTION_TOKEN])


def load_tokenizer(folder: str | Path) -> PreTrainedTokenizerBase:
    """A tokenizer saved with ``save_pretrained(folder)``; it must hold ``<video>``/``<motion>``."""
    folder = Path(folder)
    if not (folder / "tokenizer_config.json").is_file():
        raise FileNotFoundError(f"{folder} holds no saved tokenizer (tokenizer_config.json); train one with "
                                "train_caption_tokenizer(...) and save_pretrained(folder)")
    from transformers.utils import logging as hf_logging

    # in a model folder AutoTokenizer reads the model's config.json as a generic config and
    # warns that its model_type ("macm") is not the generic one: expected, so silenced
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
    finally:
        hf_logging.set_verbosity(level)
    placeholder_ids(tokenizer)
    return tokenizer


def add_placeholder_tokens(tokenizer: PreTrainedTokenizerBase) -> int:
    """Give any tokenizer ``<video>``/``<motion>`` (and a pad token) as special tokens;
    returns how many tokens were added (resize the decoder's embeddings by as many)."""
    vocab = tokenizer.get_vocab()
    new = [t for t in (VIDEO_TOKEN, MOTION_TOKEN) if t not in vocab]
    added = (tokenizer.add_special_tokens({"extra_special_tokens": new}, replace_extra_special_tokens=False)
             if new else 0)
    if tokenizer.pad_token is None:
        added += tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
    return added


def _token_id(tokenizer: PreTrainedTokenizerBase, token: str) -> int | None:
    """The id of ``token``, None if the tokenizer lacks it (``get_vocab()`` is slow on large vocabularies)."""
    token_id = tokenizer.convert_tokens_to_ids(token)
    return token_id if token_id is not None and tokenizer.convert_ids_to_tokens(token_id) == token else None


def placeholder_ids(tokenizer: PreTrainedTokenizerBase) -> tuple[int, int]:
    """(video_token_id, motion_token_id); ``ValueError`` if the tokenizer lacks them."""
    video_id, motion_id = _token_id(tokenizer, VIDEO_TOKEN), _token_id(tokenizer, MOTION_TOKEN)
    missing = [t for t, i in ((VIDEO_TOKEN, video_id), (MOTION_TOKEN, motion_id)) if i is None]
    if missing:
        raise ValueError(f"the tokenizer has no {' / '.join(missing)} token; call "
                         "add_placeholder_tokens(tokenizer) and resize the decoder's embeddings")
    return video_id, motion_id


def uses_chatml(tokenizer: PreTrainedTokenizerBase) -> bool:
    """True for a ChatML tokenizer: its eos is ``<|im_end|>`` and it has ``<|im_start|>``."""
    return tokenizer.eos_token == CHATML_END and _token_id(tokenizer, CHATML_START) is not None


def build_inputs(tokenizer: PreTrainedTokenizerBase, *, prompt: str = DEFAULT_INSTRUCTION,
                 caption: str | None = None, num_video_tokens: int, num_motion_tokens: int,
                 conditioning: str = "joint") -> ModelInputs:
    """One example: the prompt with its placeholders, then (if given) the caption and eos.

    Without a caption the result ends at ``ASSISTANT:`` (ChatML: ``<|im_start|>assistant\\n``),
    what a decoding loop starts from.
    ``num_*_tokens`` must equal ``model.tokens_per_clip(T)``; the count of the pathway that
    ``conditioning`` leaves out is ignored.
    """
    if conditioning not in CONDITIONINGS:
        raise ValueError(f"conditioning must be one of {', '.join(CONDITIONINGS)}, got {conditioning!r}")
    video_id, motion_id = placeholder_ids(tokenizer)
    num_video = num_video_tokens if conditioning in ("visual", "joint") else 0
    num_motion = num_motion_tokens if conditioning in ("motion", "joint") else 0
    if (conditioning in ("visual", "joint") and num_video < 1) or (conditioning in ("motion", "joint")
                                                                    and num_motion < 1):
        raise ValueError(f"conditioning {conditioning!r} needs at least one placeholder per pathway it uses, "
                         f"got num_video_tokens={num_video_tokens}, num_motion_tokens={num_motion_tokens}")

    def encode(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    placeholders = [video_id] * num_video + [motion_id] * num_motion
    if uses_chatml(tokenizer):
        start, end = _token_id(tokenizer, CHATML_START), tokenizer.eos_token_id
        prompt_ids = ([start] + encode("user\n") + placeholders + encode(f"\n{prompt.strip()}") + [end]
                      + encode("\n") + [start] + encode("assistant\n"))
        caption_text = caption.strip() if caption is not None else None
    else:
        bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        prompt_ids = bos + encode("USER:") + placeholders + encode(f" {prompt.strip()} ASSISTANT:")
        caption_text = f" {caption.strip()}" if caption is not None else None
    answer_ids: list[int] = []
    if caption_text is not None:
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no eos token to end the caption with; set tokenizer.eos_token")
        answer_ids = encode(caption_text) + [tokenizer.eos_token_id]
    input_ids = torch.tensor(prompt_ids + answer_ids, dtype=torch.long)
    labels = torch.tensor([IGNORE_INDEX] * len(prompt_ids) + answer_ids, dtype=torch.long)
    return ModelInputs(input_ids, torch.ones_like(input_ids), labels)


def pad_inputs(examples: Sequence[ModelInputs], *, pad_token_id: int, side: str = "right") -> ModelInputs:
    """Stack examples into (B, L) tensors, padding ``side`` ("right" for training, "left"
    for batched decoding) with ``pad_token_id`` (mask 0, label -100)."""
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    if not examples:
        raise ValueError("no examples to pad")
    length = max(len(e.input_ids) for e in examples)
    rows = []
    for e in examples:
        n = length - len(e.input_ids)
        pads = (torch.full((n,), pad_token_id), torch.zeros(n, dtype=torch.long), torch.full((n,), IGNORE_INDEX))
        rows.append([torch.cat((p, t) if side == "left" else (t, p)) for t, p in zip(e, pads)])
    return ModelInputs(*(torch.stack(col) for col in zip(*rows)))


def decode_caption(tokenizer: PreTrainedTokenizerBase, ids: Sequence[int] | torch.Tensor) -> str:
    """Generated ids -> caption text (special tokens dropped, stops at the first eos)."""
    ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id in ids:
        ids = ids[: ids.index(tokenizer.eos_token_id)]
    return tokenizer.decode(ids, skip_special_tokens=True).strip()
