"""The trainer: which weights each stage changes, the loss falling, QA mixing and pathway
dropout, data order, exact resume after a kill, two-process DDP, the FSDP launch config."""
import json
import os
import re
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from macm_core.model import (CONDITIONINGS, MACMConfig, MACMForConditionalGeneration, placeholder_ids,
                             small_qwen2_config, train_caption_tokenizer)
from macm_core.train import (CONDITIONING_PRESETS, CaptionDataset, ClipTexts, MixedPathwayModel, TrainConfig,
                             batch_keys, collate, label_token_loss, latest_checkpoint, merge_lora, train)

CAPTIONS = [
    "a person raises the left arm above the head",
    "the person waves the right hand slowly",
    "someone kicks forward with the left foot",
    "a person nods the head twice",
    "the person squats down and rises quickly",
    "a person taps the right foot three times",
    "the person circles the left arm clockwise",
    "someone leans the torso to the right",
]
QUESTIONS = [("Which arm moves?", "the left arm"), ("How fast?", "slowly"), ("Which foot kicks?", "the left foot"),
             ("How many times?", "twice"), ("What does the person do?", "squats"), ("Which foot?", "the right foot"),
             ("Which direction?", "clockwise"), ("Which way?", "to the right")]
K_TOKENS, WIDTH = 8, 64  # placeholders per pathway; width of the tiny-random encoder
FSDP_YAML = Path(__file__).resolve().parents[1] / "macm_core" / "train" / "configs" / "fsdp_7b.yaml"


def tiny_problem(num_clips: int = 8, seed: int = 0):
    """tokenizer, a 2-layer Qwen2 MACM model, random features, clips and qa tables.
    Clip i has caption CAPTIONS[i % 8] and two QA pairs, except the last clip (none)."""
    tokenizer = train_caption_tokenizer([c for c in CAPTIONS for _ in range(5)]
                                        + [f"{q} {a}" for q, a in QUESTIONS], vocab_size=320)
    video_id, motion_id = placeholder_ids(tokenizer)
    text = small_qwen2_config(len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2)
    config = MACMConfig(vision_config={"name": "tiny-random", "grid": 2, "image_size": 32}, text_config=text,
                        projector_hidden_size=64, video_token_id=video_id, motion_token_id=motion_id)
    torch.manual_seed(seed)
    model = MACMForConditionalGeneration(config)
    generator = torch.Generator().manual_seed(seed)
    features = {"visual": torch.randn(num_clips, K_TOKENS, WIDTH, generator=generator).numpy(),
                "motion": torch.randn(num_clips, K_TOKENS, WIDTH, generator=generator).numpy()}
    ids = [f"train-{i:05d}" for i in range(num_clips)]
    clips = pd.DataFrame({"clip_id": ids, "split": "train", "caption": [CAPTIONS[i % 8] for i in range(num_clips)],
                          "coarse_caption": ["a person moves" if i % 2 else "a person exercises"
                                             for i in range(num_clips)]}).set_index("clip_id")
    qa = pd.DataFrame([{"clip_id": ids[i], "question": q, "answer": a}
                       for i in range(num_clips - 1) for q, a in (QUESTIONS[i % 8], QUESTIONS[(i + 1) % 8])])
    return tokenizer, model, features, clips, qa


def snapshot(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def changed(before, model) -> set[str]:
    return {name for name, p in model.named_parameters() if not torch.equal(before[name], p.detach())}


def config(tmp_path, name="run", **overrides):
    kwargs = dict(output_dir=str(tmp_path / name), steps=5, batch_size=4, lr=3e-3, warmup_steps=2, save_every=5,
                  progress=False)
    kwargs.update(overrides)
    return TrainConfig(**kwargs)


# -- which weights each stage trains --------------------------------------------------------
def test_stage1_changes_only_the_projectors(tmp_path):
    tokenizer, model, features, clips, qa = tiny_problem()
    before = snapshot(model)
    result = train(model, tokenizer, features, clips, qa, config(tmp_path, stage=1, weight_decay=0.1))
    moved = changed(before, model)
    projectors = {n for n in before if n.startswith(("visual_projector.", "motion_projector."))}
    assert moved == projectors  # every projector tensor moved; decoder and encoder bit for bit unchanged
    assert [s for s, _ in result.losses] == [1, 2, 3, 4, 5] and all(np.isfinite(v) for _, v in result.losses)
    assert not any(p.requires_grad for p in model.language_model.parameters())


def test_stage2_trains_the_decoder_and_overfits_a_tiny_set(tmp_path):
    tokenizer, model, features, clips, qa = tiny_problem(num_clips=4)
    before = snapshot(model)
    result = train(model, tokenizer, features, clips, qa,
                   config(tmp_path, stage=2, steps=30, qa_fraction=0.0, save_every=100,
                          conditioning_probs=CONDITIONING_PRESETS["joint-only"]))
    moved = changed(before, model)
    assert {n for n in before if n.startswith("language_model.")} <= moved
    assert not {n for n in moved if n.startswith("vision_encoder.")}
    losses = [v for _, v in result.losses]
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses
    assert result.samples_per_s > 0 and result.checkpoint.name == "checkpoint-0000030"
    curve = json.loads((tmp_path / "run" / "losses.json").read_text())
    assert curve["step"] == list(range(1, 31)) and curve["loss"] == losses


def test_lora_changes_only_adapters_and_projectors(tmp_path):
    tokenizer, model, features, clips, qa = tiny_problem()
    before = snapshot(model)
    train(model, tokenizer, features, clips, qa, config(tmp_path, stage=2, lora=True, lora_rank=4, lora_alpha=8))
    after = dict(model.named_parameters())
    adapters = {n for n in after if "lora_" in n}
    assert adapters and all(p.requires_grad for n, p in after.items() if n in adapters)
    assert any(after[n].abs().sum() > 0 for n in adapters if "lora_B" in n)  # lora_B starts at zero

    def original(name):  # peft names -> the plain decoder's names
        return name.replace("base_model.model.", "").replace(".base_layer", "")

    base = {original(n): p for n, p in after.items() if n not in adapters}
    assert set(base) == set(before)
    moved = {n for n, p in base.items() if not torch.equal(before[n], p.detach())}
    assert moved == {n for n in before if n.startswith(("visual_projector.", "motion_projector."))}

    merge_lora(model)  # adapters folded in: plain decoder names again, decoder weights now differ
    assert set(dict(model.named_parameters())) == set(before)
    assert changed(before, model) & {n for n in before if n.startswith("language_model.")}


# -- items: QA mixing, pathway dropout, caption field, padding, order ------------------------
def dataset_of(tokenizer, num_clips=50, caption_field="caption", **kwargs):
    _, _, features, clips, qa = tiny_problem(num_clips=num_clips)
    texts = ClipTexts.from_tables(clips, qa, caption_field=caption_field)
    return CaptionDataset(features["visual"], features["motion"], texts, tokenizer, **kwargs)


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_problem(num_clips=1)[0]


def test_qa_fraction_and_pathway_frequencies_match_the_config(tokenizer):
    probs = (0.2, 0.3, 0.5)
    dataset = dataset_of(tokenizer, qa_fraction=0.2, conditioning_probs=probs, seed=3)
    with_qa = [i for i in range(len(dataset)) if dataset.texts.qa[i]]
    choices = [dataset.choose(i, epoch) for epoch in range(100) for i in range(len(dataset))]
    qa_share = np.mean([c.qa_index is not None for c in choices])
    qa_share_with_pairs = np.mean([dataset.choose(i, e).qa_index is not None for e in range(100) for i in with_qa])
    assert abs(qa_share_with_pairs - 0.2) < 0.02  # 4900 draws: 3.5 standard deviations
    assert qa_share < qa_share_with_pairs  # the clip without QA pairs always gives its caption
    assert all(dataset.choose(len(dataset) - 1, e).qa_index is None for e in range(100))
    counts = Counter(c.conditioning for c in choices)
    for name, p in zip(CONDITIONINGS, probs):
        assert abs(counts[name] / len(choices) - p) < 0.025, counts
    assert dataset.choose(7, 4) == dataset.choose(7, 4)  # a pure function of (seed, epoch, index)
    assert [dataset.choose(i, 0) for i in range(50)] != [dataset.choose(i, 1) for i in range(50)]

    visual_only = dataset_of(tokenizer, conditioning_probs=CONDITIONING_PRESETS["visual-only"])
    assert {visual_only.choose(i, e).conditioning for e in range(20) for i in range(50)} == {"visual"}


def _target(tokenizer, example) -> str:
    return tokenizer.decode(example.inputs.labels[example.inputs.labels >= 0], skip_special_tokens=True).strip()


def test_items_hold_their_target_and_the_placeholders_of_their_conditioning(tokenizer):
    dataset = dataset_of(tokenizer, num_clips=8, qa_fraction=0.5)
    video_id, motion_id = placeholder_ids(tokenizer)
    seen = set()
    for epoch in range(6):
        for i in range(8):
            item = dataset[(epoch, i)]
            choice = dataset.choose(i, epoch)
            ids = item.inputs.input_ids
            expect_v = K_TOKENS if choice.conditioning in ("visual", "joint") else 0
            expect_m = K_TOKENS if choice.conditioning in ("motion", "joint") else 0
            assert (int((ids == video_id).sum()), int((ids == motion_id).sum())) == (expect_v, expect_m)
            assert item.video_features.shape == item.motion_features.shape == (K_TOKENS, WIDTH)
            prompt = tokenizer.decode(ids[item.inputs.labels < 0], skip_special_tokens=True)
            if item.is_qa:
                question, answer = dataset.texts.qa[i][choice.qa_index]
                assert question in prompt and _target(tokenizer, item) == answer
            else:
                assert "Describe the person's motion." in prompt and _target(tokenizer, item) == CAPTIONS[i]
            seen.add((item.is_qa, choice.conditioning))
    assert len(seen) == 6  # every (target kind, conditioning) pair occurred

    coarse = dataset_of(tokenizer, num_clips=8, caption_field="coarse_caption", qa_fraction=0.0)
    assert {_target(tokenizer, coarse[i]) for i in range(8)} == {"a person moves", "a person exercises"}


def test_items_are_tokenized_once_and_equal_a_fresh_tokenization(tokenizer):
    from macm_core.model.tokenizer import build_inputs

    dataset = dataset_of(tokenizer, qa_fraction=0.5, seed=2)
    seen = set()
    for epoch in range(3):
        for index in range(len(dataset)):
            item, choice = dataset[(epoch, index)], dataset.choose(index, epoch)
            seen.add((index, choice.qa_index, choice.conditioning))
            prompt, target = ((dataset.prompt, dataset.texts.captions[index]) if choice.qa_index is None
                              else dataset.texts.qa[index][choice.qa_index])
            fresh = build_inputs(tokenizer, prompt=prompt, caption=target, num_video_tokens=dataset.num_video_tokens,
                                 num_motion_tokens=dataset.num_motion_tokens, conditioning=choice.conditioning)
            assert all(torch.equal(a, b) for a, b in zip(item.inputs, fresh))
            item.inputs.labels.fill_(0)  # a caller editing its item leaves the next one intact
    assert len(dataset._inputs) == len(seen) < 3 * len(dataset)  # one tokenization per distinct text


def test_collate_pads_every_tensor_on_the_same_side(tokenizer):
    dataset = dataset_of(tokenizer, num_clips=8, qa_fraction=0.5)
    examples = [dataset[(0, i)] for i in range(8)]
    lengths = [len(e.inputs.input_ids) for e in examples]
    assert len(set(lengths)) > 1
    for side in ("right", "left"):
        batch = collate(examples, pad_token_id=tokenizer.pad_token_id, padding_side=side)
        assert batch["input_ids"].shape == batch["labels"].shape == (8, max(lengths))
        assert batch["video_features"].shape == batch["motion_features"].shape == (8, K_TOKENS, WIDTH)
        for row, n in enumerate(lengths):
            real = slice(0, n) if side == "right" else slice(max(lengths) - n, None)
            mask = batch["attention_mask"][row]
            assert int(mask.sum()) == n and bool(mask[real].all())
            assert torch.equal(batch["input_ids"][row][real], examples[row].inputs.input_ids)
            assert torch.equal(batch["labels"][row][real], examples[row].inputs.labels)
            assert bool((batch["labels"][row][mask == 0] == -100).all())
            assert bool((batch["input_ids"][row][mask == 0] == tokenizer.pad_token_id).all())
        assert batch["conditioning"].tolist() == [e.conditioning for e in examples]


def test_data_order_is_a_function_of_the_step_shared_out_between_processes():
    def keys(step, rank):
        return batch_keys(step, batch_size=3, num_items=12, seed=5, num_processes=2, process_index=rank)

    epoch0 = keys(0, 0) + keys(0, 1) + keys(1, 0) + keys(1, 1)  # 2 steps x 2 processes x 3 = one epoch
    assert {e for e, _ in epoch0} == {0} and sorted(i for _, i in epoch0) == list(range(12))
    assert {e for e, _ in keys(2, 0)} == {1}
    assert [i for _, i in epoch0] != list(range(12))  # shuffled
    assert keys(7, 1) == keys(7, 1)
    single = [k for s in range(4) for k in batch_keys(s, batch_size=3, num_items=12, seed=5)]
    assert single == epoch0  # two processes cover exactly what one process with both batches would


# -- resume ---------------------------------------------------------------------------------
@pytest.mark.parametrize("stage2", ["full", "lora", "full-bfloat16"])
def test_a_killed_run_resumes_to_the_same_losses(tmp_path, stage2):
    # LoRA dropout 0.1 makes the torch generator matter, so its restore is tested too
    settings = dict(stage=2, steps=12, save_every=5, lora=stage2 == "lora", lora_rank=4, lora_dropout=0.1,
                    matmul_dtype="bfloat16" if stage2.endswith("bfloat16") else None)
    tokenizer, model, features, clips, qa = tiny_problem()
    full = train(model, tokenizer, features, clips, qa, config(tmp_path, "full", **settings))
    weights_full = load_file(str(full.checkpoint / "model.safetensors"))

    tokenizer, model, features, clips, qa = tiny_problem()
    killed = train(model, tokenizer, features, clips, qa, config(tmp_path, "resumed", stop_after=8, **settings))
    assert [s for s, _ in killed.losses] == list(range(1, 9))
    assert latest_checkpoint(tmp_path / "resumed").name == "checkpoint-0000005"  # steps 6-8 are lost, as in a kill

    tokenizer, model, features, clips, qa = tiny_problem()  # a fresh process would rebuild everything
    resumed = train(model, tokenizer, features, clips, qa, config(tmp_path, "resumed", **settings))
    assert resumed.start_step == 5
    assert resumed.losses == full.losses  # exactly: same data, state, generators and op order
    assert killed.losses == full.losses[:8]
    weights_resumed = load_file(str(resumed.checkpoint / "model.safetensors"))
    assert weights_resumed.keys() == weights_full.keys()
    assert all(torch.equal(weights_full[k], weights_resumed[k]) for k in weights_full)
    names = sorted(p.name for p in (tmp_path / "resumed").iterdir())
    assert names == ["checkpoint-0000012", "losses.json"]  # older checkpoint dropped, no temporary folder

    again = train(model, tokenizer, features, clips, qa, config(tmp_path, "resumed", **settings))
    assert again.start_step == 12 and again.losses == full.losses  # a finished run does nothing


def test_bfloat16_products_follow_the_float32_run_and_leave_a_float32_model(tmp_path):
    runs = {}
    for dtype in (None, "bfloat16"):
        tokenizer, model, features, clips, qa = tiny_problem(num_clips=4)
        runs[dtype] = train(model, tokenizer, features, clips, qa,
                            config(tmp_path, f"run-{dtype}", stage=2, steps=20, save_every=100, matmul_dtype=dtype))
        assert all(p.dtype == torch.float32 for p in model.parameters())
        assert not any("forward" in m.__dict__ for m in model.modules())  # every linear layer restored
    plain, bf16 = ([v for _, v in runs[d].losses] for d in (None, "bfloat16"))
    assert plain != bf16  # the products did change
    np.testing.assert_allclose(bf16, plain, rtol=0.03)  # but the run is the same run
    assert np.mean(bf16[-5:]) < 0.7 * np.mean(bf16[:5])


def test_resume_refuses_a_different_run(tmp_path):
    tokenizer, model, features, clips, qa = tiny_problem()
    train(model, tokenizer, features, clips, qa, config(tmp_path, steps=2, save_every=1))
    with pytest.raises(ValueError, match="config.lr"):
        train(model, tokenizer, features, clips, qa, config(tmp_path, steps=2, save_every=1, lr=1e-4))
    with pytest.raises(ValueError, match="config.matmul_dtype"):
        train(model, tokenizer, features, clips, qa, config(tmp_path, steps=2, save_every=1, matmul_dtype="bfloat16"))
    other = clips.assign(caption=clips["caption"].str.upper())
    with pytest.raises(ValueError, match="texts"):
        train(model, tokenizer, features, other, qa, config(tmp_path, steps=2, save_every=1))


# -- the loss -------------------------------------------------------------------------------
def _mixed_batch(tokenizer, size=8):
    dataset = dataset_of(tokenizer, num_clips=size, qa_fraction=0.5)  # the features of tiny_problem()
    batch = collate([dataset[(0, i)] for i in range(size)], pad_token_id=tokenizer.pad_token_id)
    assert len(set(batch["attention_mask"].sum(1).tolist())) > 2  # rows of several lengths
    assert len(set(batch["conditioning"].tolist())) > 1
    return batch


@pytest.mark.parametrize("length_groups", [1, 2, 3, 8])
def test_label_token_loss_and_its_gradients_equal_the_causal_lm_loss(length_groups):
    """Two paths of one computation: the decoder's own loss over full logits of the
    padded batch, and the LM head on label positions of rows run in length groups."""
    tokenizer, model, *_ = tiny_problem()
    batch = _mixed_batch(tokenizer)
    wrapper = MixedPathwayModel(model, length_groups=length_groups)
    loss = wrapper(**batch)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()

    def full_logits_loss(input_ids, attention_mask, labels, **rest):
        embeds = torch.cat([model.prompt_embeddings(
            input_ids[i:i + 1],
            video_features=rest["video_features"][i:i + 1] if CONDITIONINGS[c] in ("visual", "joint") else None,
            motion_features=rest["motion_features"][i:i + 1] if CONDITIONINGS[c] in ("motion", "joint") else None)
            for i, c in enumerate(rest["conditioning"].tolist())])
        return model.language_model(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels).loss

    reference = full_logits_loss(**batch)
    reference.backward()
    torch.testing.assert_close(loss, reference, rtol=1e-6, atol=1e-6)
    assert set(grads) == {n for n, p in model.named_parameters() if p.grad is not None}
    for name, param in model.named_parameters():
        if param.grad is not None:
            torch.testing.assert_close(grads[name], param.grad, rtol=1e-4, atol=1e-6, msg=name)


def _decoder(kind: str):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    sizes = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=64)  # grouped-query attention, as Qwen2-7B
    lm = (Qwen2ForCausalLM(Qwen2Config(**sizes)) if kind == "qwen2"
          else LlamaForCausalLM(LlamaConfig(**sizes, attention_bias=False)))
    return lm.get_decoder()


@pytest.mark.parametrize("kind", ["qwen2", "llama"])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_last_layer_at_equals_the_decoder_at_those_positions(kind, padding_side):
    """Two paths of one computation: the whole decoder then a selection of positions, and
    the last layer's query side computed at those positions only (values and gradients)."""
    from macm_core.train.loss import last_layer_at, supports_last_layer_at

    decoder = _decoder(kind)
    assert supports_last_layer_at(decoder)
    generator = torch.Generator().manual_seed(1)
    lengths = torch.tensor([11, 7, 9, 4])
    positions = torch.arange(11)
    mask = (positions < lengths[:, None]) if padding_side == "right" else (positions >= 11 - lengths[:, None])
    embeds = torch.randn(4, 11, 32, generator=generator, requires_grad=True)
    wanted = (torch.rand(4, 11, generator=generator) < 0.4) & mask  # scattered, not a suffix
    wanted[1] = False  # a row with no wanted position
    wanted[0, 10] = True

    fast = last_layer_at(decoder, embeds, mask.long(), wanted)
    weights = torch.randn(fast.shape, generator=generator)
    (fast * weights).sum().backward()
    fast_grads = {n: p.grad.clone() for n, p in decoder.named_parameters() if p.grad is not None}
    fast_embeds = embeds.grad.clone()
    decoder.zero_grad()
    embeds.grad = None

    full = decoder(inputs_embeds=embeds, attention_mask=mask.long(), use_cache=False).last_hidden_state[wanted]
    (full * weights).sum().backward()
    assert fast.shape == (int(wanted.sum()), 32)
    torch.testing.assert_close(fast, full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast_embeds, embeds.grad, rtol=1e-4, atol=1e-5)
    assert set(fast_grads) == {n for n, p in decoder.named_parameters() if p.grad is not None}
    assert len(fast_grads) == sum(1 for n, _ in decoder.named_parameters() if not n.startswith("embed_tokens"))
    for name, grad in fast_grads.items():
        torch.testing.assert_close(grad, dict(decoder.named_parameters())[name].grad, rtol=1e-4, atol=1e-5, msg=name)
    assert not decoder.layers[-1]._forward_pre_hooks  # the stop hook is gone
    assert last_layer_at(decoder, embeds, mask.long(), torch.zeros_like(wanted)).shape == (0, 32)


def test_last_layer_at_is_used_only_where_it_knows_the_layer():
    from macm_core.train.loss import supports_last_layer_at

    decoder = _decoder("qwen2")
    decoder.layers[-1].self_attn.sliding_window = 8
    assert not supports_last_layer_at(decoder)
    decoder = _decoder("qwen2")
    decoder.config.attention_dropout = decoder.layers[-1].self_attn.attention_dropout = 0.1
    assert supports_last_layer_at(decoder.eval()) and not supports_last_layer_at(decoder.train())
    assert not supports_last_layer_at(nn.Sequential(nn.Linear(2, 2)))


def test_length_groups_need_right_padding_and_a_positive_count(tmp_path):
    tokenizer, model, *_ = tiny_problem()
    dataset = dataset_of(tokenizer, num_clips=8)
    left = collate([dataset[i] for i in range(4)], pad_token_id=tokenizer.pad_token_id, padding_side="left")
    embeds = model.embed_tokens(left["input_ids"].clamp(max=10))
    with pytest.raises(ValueError, match="padded on the right"):
        label_token_loss(model.language_model, embeds, left["attention_mask"], left["labels"], length_groups=2)
    with pytest.raises(ValueError, match="length_groups must be >= 1"):
        TrainConfig(output_dir=str(tmp_path), length_groups=0)


# -- bad input ------------------------------------------------------------------------------
def test_bad_input_is_refused_with_a_clear_message(tmp_path):
    tokenizer, model, features, clips, qa = tiny_problem()
    with pytest.raises(ValueError, match="encoder's width"):
        train(model, tokenizer, {"visual": np.zeros((8, K_TOKENS, 32)), "motion": features["motion"]}, clips, qa,
              config(tmp_path))
    with pytest.raises(ValueError, match="8 clips of features but 7"):
        train(model, tokenizer, features, clips.iloc[:7], qa, config(tmp_path))
    with pytest.raises(ValueError, match="lack"):
        train(model, tokenizer, {"visual": features["visual"]}, clips, qa, config(tmp_path))
    with pytest.raises(ValueError, match="stage=2"):
        TrainConfig(output_dir=str(tmp_path), stage=1, lora=True)
    with pytest.raises(ValueError, match="summing to 1"):
        TrainConfig(output_dir=str(tmp_path), conditioning_probs=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="matmul_dtype must be one of bfloat16, float16 or None"):
        TrainConfig(output_dir=str(tmp_path), matmul_dtype="int8")
    with pytest.raises(ValueError, match="clip_id"):
        ClipTexts.from_tables(clips.reset_index(drop=True), qa)
    with pytest.raises(ValueError, match="coarse_caption"):
        ClipTexts.from_tables(clips.drop(columns="coarse_caption"), qa, caption_field="coarse_caption")


# -- distributed ----------------------------------------------------------------------------
DDP_SCRIPT = """
import json, os, sys
import torch
torch.set_num_threads(1)
sys.path.insert(0, {tests!r})
from safetensors.torch import save_file
from test_trainer import tiny_problem
from macm_core.train import TrainConfig, train

tokenizer, model, features, clips, qa = tiny_problem()
result = train(model, tokenizer, features, clips, qa, TrainConfig(
    output_dir={out!r}, stage=2, steps=4, batch_size=2, lr=3e-3, warmup_steps=1, save_every=2, length_groups=2,
    progress=False))
rank = int(os.environ["RANK"])
save_file({{n: p.detach().contiguous() for n, p in model.named_parameters()}}, f"{out}/params_{{rank}}.safetensors")
json.dump(result.losses, open(f"{out}/losses_{{rank}}.json", "w"))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_ddp_ends_with_identical_parameters(tmp_path):
    # length_groups=2: each process runs its decoder twice per step, DDP still syncs once
    out = tmp_path / "ddp"
    out.mkdir()
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT.format(tests=str(Path(__file__).parent), out=str(out)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(script)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    params = [load_file(str(out / f"params_{r}.safetensors")) for r in (0, 1)]
    assert all(torch.equal(params[0][k], params[1][k]) for k in params[0])
    losses = [json.loads((out / f"losses_{r}.json").read_text()) for r in (0, 1)]
    assert losses[0] == losses[1] and len(losses[0]) == 4 and all(np.isfinite(v) for _, v in losses[0])
    checkpoint = latest_checkpoint(out)
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert state["num_processes"] == 2 and state["step"] == 4 and state["losses"] == losses[0]
    assert (checkpoint / "rng_state_0.pt").is_file() and (checkpoint / "rng_state_1.pt").is_file()
    _, model, *_ = tiny_problem()  # the same initial weights: training moved them
    assert any(not torch.equal(p.detach(), params[0][n]) for n, p in model.named_parameters())


# -- the FSDP launch config -----------------------------------------------------------------
def test_fsdp_config_parses_as_accelerate_launch_would(tokenizer, monkeypatch):
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_multi_gpu_env

    from macm_core.train import MixedPathwayModel

    args = launch_command_parser().parse_args(["--config_file", str(FSDP_YAML), "train.py"])
    args, defaults, _ = _validate_launch_command(args)  # unknown top-level keys raise here
    assert defaults.distributed_type == DistributedType.FSDP and args.use_fsdp
    assert args.mixed_precision == "bf16" and args.num_processes == 8
    env = prepare_multi_gpu_env(args)
    for key, value in env.items():
        if key.startswith("FSDP_"):
            monkeypatch.setenv(key, value)
    plugin = FullyShardedDataParallelPlugin()  # validates the values
    assert plugin.fsdp_version == 2 and plugin.activation_checkpointing
    assert str(plugin.state_dict_type).endswith("SHARDED_STATE_DICT")

    wrapper = MixedPathwayModel(tiny_problem(num_clips=1)[1])
    plugin.set_auto_wrap_policy(wrapper)  # raises if the model has no such layer class
    assert plugin.transformer_cls_names_to_wrap == ["Qwen2DecoderLayer"]
    ignored = [name for name, _ in wrapper.named_modules() if re.fullmatch(plugin.ignored_modules, name)]
    assert ignored == ["macm.vision_encoder"]
