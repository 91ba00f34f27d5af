"""The M-ACM model: frozen encoders, placeholder replacement, conditionings, loss masking,
checkpoints, the prompt-embedding path a decoding loop uses, and the caption tokenizer."""
import pytest
import torch
import torch.nn.functional as F

from macm_core.model import (
    MACMConfig,
    MACMForConditionalGeneration,
    VisionEncoderConfig,
    add_placeholder_tokens,
    build_inputs,
    build_vision_encoder,
    decode_caption,
    load_tokenizer,
    pad_inputs,
    placeholder_ids,
    small_qwen2_config,
    train_caption_tokenizer,
)
from macm_core.model.efficientnet_lite import efficientnet_lite0_weights_path

CAPTIONS = [
    "a person raises the left arm above the head",
    "the person waves the right hand slowly",
    "someone bends the right knee and lifts the leg",
    "a person turns the head to the left",
    "the person taps the left foot twice",
] * 8
T = 2  # frames per clip in these tests


def needs_efficientnet():
    try:
        efficientnet_lite0_weights_path()
    except FileNotFoundError as err:
        pytest.skip(f"efficientnet-lite0 asset missing (run `macm data fetch`): {err}")


@pytest.fixture(scope="module")
def tokenizer():
    return train_caption_tokenizer(CAPTIONS, vocab_size=320)


def tiny_config(tokenizer, encoder="tiny-random", image_size=32):
    video_id, motion_id = placeholder_ids(tokenizer)
    text = small_qwen2_config(len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2)
    return MACMConfig(vision_config={"name": encoder, "grid": 2, "image_size": image_size}, text_config=text,
                      projector_hidden_size=96, video_token_id=video_id, motion_token_id=motion_id)


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    return MACMForConditionalGeneration(tiny_config(tokenizer)).eval()


def clip(seed, batch=1, size=32):
    return torch.rand(batch, T, 3, size, size, generator=torch.Generator().manual_seed(seed))


def example(tokenizer, model, conditioning, caption="the person waves the right hand"):
    n = model.tokens_per_clip(T)
    return build_inputs(tokenizer, caption=caption, num_video_tokens=n, num_motion_tokens=n,
                        conditioning=conditioning)


def batch_of(*examples, pad_token_id=0):
    return pad_inputs(list(examples), pad_token_id=pad_token_id)


# -- vision encoders ------------------------------------------------------------------------
@pytest.mark.parametrize("name,size,dim", [("tiny-random", 32, 64), ("efficientnet-lite0", 64, 1280)])
def test_encoder_is_frozen_and_gives_grid_tokens(name, size, dim):
    if name == "efficientnet-lite0":
        needs_efficientnet()
    encoder = build_vision_encoder(VisionEncoderConfig(name=name, grid=2, image_size=size))
    encoder.train()  # must not unfreeze BatchNorm statistics
    assert not any(m.training for m in encoder.modules())
    assert not any(p.requires_grad for p in encoder.parameters())
    frames = torch.rand(3, 4, 3, 50, 70, requires_grad=True)  # resized to size x size inside
    tokens = encoder(frames)
    assert tokens.shape == (3, 4 * 4, dim) and encoder.hidden_size == dim
    assert not tokens.requires_grad
    # token order: frame-major; frame 2 of clip 1 alone gives tokens 8..11 of clip 1
    alone = encoder(frames[1:2, 2:3].detach())
    # batched convolutions round differently (~1e-5 on values up to 6); a wrong order is off by O(1)
    torch.testing.assert_close(alone[0], tokens[1, 8:12], atol=1e-4, rtol=1e-4)


def test_efficientnet_encoder_in_small_channels_last_calls_equals_one_plain_call():
    needs_efficientnet()
    encoder = build_vision_encoder(VisionEncoderConfig(name="efficientnet-lite0", grid=2, image_size=64))
    frames = torch.rand(5, 8, 3, 64, 64, generator=torch.Generator().manual_seed(3))  # 40 frames: 3 calls
    assert encoder.frames_per_call < 40
    tokens = encoder(frames)
    with torch.no_grad():
        fmap = encoder.backbone.features(frames.flatten(0, 1) * 2 - 1)  # one call, contiguous
        plain = torch.nn.functional.adaptive_avg_pool2d(fmap, 2).flatten(2).transpose(1, 2).reshape(5, 32, 1280)
    assert tokens.is_contiguous()
    torch.testing.assert_close(tokens, plain, atol=1e-4, rtol=1e-4)


def test_encoder_rejects_bad_frames():
    encoder = build_vision_encoder(VisionEncoderConfig(name="tiny-random", grid=2, image_size=32))
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        encoder(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="uint8"):
        encoder(torch.zeros(1, 1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="1/255"):
        encoder(torch.full((1, 1, 3, 32, 32), 255.0))
    small = build_vision_encoder(VisionEncoderConfig(name="tiny-random", grid=3, image_size=8))
    with pytest.raises(ValueError, match="smaller than grid=3"):
        small(torch.rand(1, 1, 3, 8, 8))
    with pytest.raises(ValueError, match="unknown vision encoder"):
        VisionEncoderConfig(name="clip")


def test_siglip_missing_folder_says_what_to_put_where(tmp_path):
    with pytest.raises(FileNotFoundError,
                       match="SigLIP folder .* has no config.json.*set the vision encoder's `path`"):
        build_vision_encoder(VisionEncoderConfig(name="siglip", path=str(tmp_path / "siglip")))
    with pytest.raises(FileNotFoundError, match="no SigLIP folder given"):
        build_vision_encoder(VisionEncoderConfig(name="siglip"))


def test_siglip_from_a_local_folder(tmp_path):
    from transformers import SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(0)
    reference = SiglipVisionModel(SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                                     num_attention_heads=2, image_size=32, patch_size=8))
    reference.save_pretrained(tmp_path)
    encoder = build_vision_encoder(VisionEncoderConfig(name="siglip", path=str(tmp_path), grid=2, image_size=32))
    assert torch.equal(encoder.model.embeddings.patch_embedding.weight,
                       reference.embeddings.patch_embedding.weight)
    assert encoder(torch.rand(2, 3, 3, 32, 32)).shape == (2, 3 * 4, 32)


# -- placeholder replacement ------------------------------------------------------------------
def test_placeholders_get_their_features_in_order(model, tokenizer):
    video_id, motion_id = placeholder_ids(tokenizer)
    n = model.tokens_per_clip(T)  # 8
    # placeholders scattered between text tokens, differently in the two rows
    row0 = [1] + [video_id, 40] * n + [motion_id] * n + [41]
    row1 = [1, 42] + [video_id] * n + [motion_id, 43] * n
    input_ids = torch.tensor([row0, row1])
    video_features = torch.randn(2, n, model.vision_encoder.hidden_size)
    motion_features = torch.randn(2, n, model.vision_encoder.hidden_size)
    seen = {}
    hook = model.language_model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.update(embeds=kwargs["inputs_embeds"]), with_kwargs=True)
    try:
        with torch.no_grad():
            model(input_ids, video_features=video_features, motion_features=motion_features)
            expected_video = model.visual_projector(video_features)
            expected_motion = model.motion_projector(motion_features)
            plain = model.embed_tokens(input_ids)
    finally:
        hook.remove()
    embeds = seen["embeds"]
    for b in range(2):
        video_pos = (input_ids[b] == video_id).nonzero().flatten()
        motion_pos = (input_ids[b] == motion_id).nonzero().flatten()
        for i in range(n):
            assert torch.equal(embeds[b, video_pos[i]], expected_video[b, i])
            assert torch.equal(embeds[b, motion_pos[i]], expected_motion[b, i])
        text = (input_ids[b] != video_id) & (input_ids[b] != motion_id)
        assert torch.equal(embeds[b, text], plain[b, text])


def test_placeholder_feature_count_mismatch_is_a_clear_error(model, tokenizer):
    n = model.tokens_per_clip(T)
    ids = example(tokenizer, model, "visual").input_ids[None]
    with pytest.raises(ValueError, match=rf"tokens per row \[{n}\], features per clip {n + 4}"):
        model(ids, video_features=torch.randn(1, n + 4, 64))
    with pytest.raises(ValueError, match=r"<video> placeholders \(per row: \[8\]\) but neither pixel_values"):
        model(ids)
    with pytest.raises(ValueError, match=rf"<motion> placeholder tokens and motion features do not match: "
                                         rf"tokens per row \[0\], features per clip {n}"):
        model(ids, pixel_values=clip(0), motion_pixel_values=clip(1))
    with pytest.raises(ValueError, match="not both"):
        model(ids, pixel_values=clip(0), video_features=torch.randn(1, n, 64))
    with pytest.raises(ValueError, match=r"\(B, T \* N, 64\)"):
        model(ids, video_features=torch.randn(1, n, 65))


# -- conditionings, loss -----------------------------------------------------------------------
def test_three_conditionings_give_different_logits(model, tokenizer):
    video, motion = clip(0), clip(1)
    last = {}
    with torch.no_grad():
        for conditioning in ("visual", "motion", "joint"):
            ids = example(tokenizer, model, conditioning).input_ids[None]
            kwargs = {"pixel_values": video if conditioning != "motion" else None,
                      "motion_pixel_values": motion if conditioning != "visual" else None}
            # same caption tokens at the end: compare the scores for the caption
            last[conditioning] = model(ids, **kwargs).logits[0, -6:]
    assert not torch.allclose(last["visual"], last["motion"], atol=1e-4)
    assert not torch.allclose(last["visual"], last["joint"], atol=1e-4)
    assert not torch.allclose(last["motion"], last["joint"], atol=1e-4)


def test_motion_only_prompt_uses_the_motion_projector(tokenizer):
    torch.manual_seed(0)
    model = MACMForConditionalGeneration(tiny_config(tokenizer)).eval()
    ids = example(tokenizer, model, "motion").input_ids[None]
    with torch.no_grad():
        before = model(ids, motion_pixel_values=clip(1)).logits
        model.visual_projector.linear_2.weight.add_(1.0)
        assert torch.equal(model(ids, motion_pixel_values=clip(1)).logits, before)
        model.motion_projector.linear_2.weight.add_(1.0)
        assert not torch.allclose(model(ids, motion_pixel_values=clip(1)).logits, before)


def test_loss_covers_the_caption_only(model, tokenizer):
    inputs = batch_of(example(tokenizer, model, "joint"),
                      example(tokenizer, model, "joint", caption="a person turns the head to the left"))
    pixels = {"pixel_values": clip(0, batch=2), "motion_pixel_values": clip(1, batch=2)}
    with torch.no_grad():
        out = model(inputs.input_ids, inputs.attention_mask, labels=inputs.labels, **pixels)
        targets = inputs.labels[:, 1:]
        keep = targets != -100
        manual = F.cross_entropy(out.logits[:, :-1][keep], targets[keep])
        unmasked = model(inputs.input_ids, inputs.attention_mask, labels=inputs.input_ids, **pixels).loss
    assert out.logits.shape == (*inputs.input_ids.shape, model.config.text_config.vocab_size)
    torch.testing.assert_close(out.loss, manual)
    assert keep.sum() < inputs.attention_mask.sum() / 2  # the prompt is most of the sequence
    assert not torch.allclose(out.loss, unmasked)


def test_gradients_reach_projectors_and_decoder_but_not_the_encoder(tokenizer):
    torch.manual_seed(0)
    model = MACMForConditionalGeneration(tiny_config(tokenizer)).train()
    assert not model.vision_encoder.training
    inputs = batch_of(example(tokenizer, model, "joint"))
    model(inputs.input_ids, inputs.attention_mask, clip(0), clip(1), labels=inputs.labels).loss.backward()
    assert all(p.grad is None for p in model.vision_encoder.parameters())
    for module in (model.visual_projector, model.motion_projector, model.language_model):
        assert all(p.grad is not None for p in module.parameters() if p.requires_grad)


def test_cached_encoder_features_equal_pixels(model, tokenizer):
    ids = example(tokenizer, model, "joint").input_ids[None]
    with torch.no_grad():
        from_pixels = model(ids, pixel_values=clip(0), motion_pixel_values=clip(1)).logits
        cached = model(ids, video_features=model.encode_frames(clip(0)),
                       motion_features=model.encode_frames(clip(1))).logits
    assert torch.equal(from_pixels, cached)


# -- decoding path -------------------------------------------------------------------------------
def test_prompt_embeddings_then_decoder_equals_forward(model, tokenizer):
    inputs = batch_of(example(tokenizer, model, "joint"), example(tokenizer, model, "joint", caption="a person"))
    video, motion = clip(0, batch=2), clip(1, batch=2)
    with torch.no_grad():
        full = model(inputs.input_ids, inputs.attention_mask, video, motion).logits
        embeds = model.prompt_embeddings(inputs.input_ids, video, motion)
        assert embeds.shape == (*inputs.input_ids.shape, model.config.text_config.hidden_size)
        assert torch.equal(model.language_model(inputs_embeds=embeds, attention_mask=inputs.attention_mask).logits,
                           full)
        # what a decoding loop does: the prompt once, then one token at a time with the KV cache
        prompt = build_inputs(tokenizer, num_video_tokens=model.tokens_per_clip(T),
                              num_motion_tokens=model.tokens_per_clip(T)).input_ids[None]
        out = model.language_model(inputs_embeds=model.prompt_embeddings(prompt, video[:1], motion[:1]),
                                   use_cache=True)
        next_id = out.logits[:, -1].argmax(-1, keepdim=True)
        step = model.language_model(inputs_embeds=model.embed_tokens(next_id), cache=out.cache, use_cache=True)
        whole = model(torch.cat([prompt, next_id], 1), pixel_values=video[:1], motion_pixel_values=motion[:1])
    torch.testing.assert_close(step.logits[:, -1], whole.logits[:, -1], atol=1e-5, rtol=1e-5)


# -- checkpoints -------------------------------------------------------------------------------------
@pytest.mark.parametrize("encoder,size", [("tiny-random", 32), ("efficientnet-lite0", 64)])
def test_save_and_load_give_identical_logits(tokenizer, tmp_path, monkeypatch, encoder, size):
    if encoder == "efficientnet-lite0":
        needs_efficientnet()
    torch.manual_seed(1)
    model = MACMForConditionalGeneration(tiny_config(tokenizer, encoder, size)).eval()
    model.save_pretrained(tmp_path / "ckpt")
    # the checkpoint carries the frozen encoder: an empty asset cache must not matter
    monkeypatch.setenv("MACM_CACHE", str(tmp_path / "empty-cache"))
    loaded = MACMForConditionalGeneration.from_pretrained(tmp_path / "ckpt")
    assert not loaded.training and not any(p.requires_grad for p in loaded.vision_encoder.parameters())
    assert sum(p.numel() for p in loaded.parameters() if p.requires_grad) == sum(
        p.numel() for p in model.parameters() if p.requires_grad)
    inputs = batch_of(example(tokenizer, model, "joint"))
    video, motion = clip(0, size=size), clip(1, size=size)
    with torch.no_grad():
        assert torch.equal(loaded(inputs.input_ids, pixel_values=video, motion_pixel_values=motion).logits,
                           model(inputs.input_ids, pixel_values=video, motion_pixel_values=motion).logits)


def test_fresh_model_takes_the_pretrained_encoder(tokenizer):
    needs_efficientnet()
    from macm_core.model.efficientnet_lite import load_efficientnet_lite0

    model = MACMForConditionalGeneration(tiny_config(tokenizer, "efficientnet-lite0", 64))
    reference = load_efficientnet_lite0().state_dict()
    got = model.vision_encoder.backbone.state_dict()
    assert all(torch.equal(reference[k], got[k]) for k in reference)


def test_config_rejects_bad_values(tokenizer):
    text = small_qwen2_config(len(tokenizer))
    with pytest.raises(ValueError, match="outside the decoder vocabulary"):
        MACMConfig(text_config=text, video_token_id=len(tokenizer))
    with pytest.raises(ValueError, match="must differ"):
        MACMConfig(text_config=text, video_token_id=3, motion_token_id=3)
    with pytest.raises(ValueError, match="reserved for a dedicated SMPL-sequence motion encoder"):
        MACMConfig(text_config=text, motion_encoder_config={"layers": 2})
    with pytest.raises(ValueError, match="unknown vision encoder config keys"):
        MACMConfig(text_config=text, vision_config={"name": "tiny-random", "grids": 2})


# -- tokenizer -------------------------------------------------------------------------------------------
def test_tokenizer_train_save_load_round_trip(tokenizer, tmp_path):
    assert tokenizer.convert_tokens_to_ids(["<pad>", "<s>", "</s>", "<video>", "<motion>"]) == [0, 1, 2, 3, 4]
    assert len(tokenizer) <= 320
    tokenizer.save_pretrained(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert len(loaded) == len(tokenizer) and placeholder_ids(loaded) == (3, 4)
    text = "a person waves the LEFT hand, twice! 👋"
    ids = loaded(text, add_special_tokens=False)["input_ids"]
    assert ids == tokenizer(text, add_special_tokens=False)["input_ids"]
    assert loaded.decode(ids) == text  # byte-level: nothing is lost
    seen = "a person raises the left arm"
    assert len(tokenizer(seen, add_special_tokens=False)["input_ids"]) < len(seen) / 2  # merges were learned
    with pytest.raises(FileNotFoundError, match="holds no saved tokenizer"):
        load_tokenizer(tmp_path / "nothing")


def test_build_inputs_masks_the_prompt(tokenizer):
    caption = "the person waves the right hand slowly"
    for conditioning, (nv, nm) in {"visual": (6, 0), "motion": (0, 5), "joint": (6, 5)}.items():
        inputs = build_inputs(tokenizer, caption=caption, num_video_tokens=6, num_motion_tokens=5,
                              conditioning=conditioning)
        ids, labels = inputs.input_ids, inputs.labels
        assert (ids == 3).sum() == nv and (ids == 4).sum() == nm
        answer = labels != -100
        first = int(answer.nonzero()[0])
        assert not answer[:first].any() and answer[first:].all()  # prompt masked, caption + eos labelled
        assert torch.equal(labels[answer], ids[answer]) and ids[-1] == tokenizer.eos_token_id
        assert decode_caption(tokenizer, ids[first:]) == caption
        assert tokenizer.decode(ids[:first]).endswith("ASSISTANT:")
        assert inputs.attention_mask.all()
    prompt_only = build_inputs(tokenizer, num_video_tokens=6, num_motion_tokens=5)
    assert (prompt_only.labels == -100).all() and tokenizer.decode(prompt_only.input_ids).endswith("ASSISTANT:")
    with pytest.raises(ValueError, match="conditioning must be one of"):
        build_inputs(tokenizer, num_video_tokens=6, num_motion_tokens=5, conditioning="audio")
    with pytest.raises(ValueError, match="needs at least one placeholder"):
        build_inputs(tokenizer, num_video_tokens=6, num_motion_tokens=0, conditioning="joint")


def test_pad_inputs_left_and_right(tokenizer):
    a = build_inputs(tokenizer, caption="a person", num_video_tokens=2, num_motion_tokens=2)
    b = build_inputs(tokenizer, caption="the person taps the left foot twice", num_video_tokens=2,
                     num_motion_tokens=2)
    right, left = pad_inputs([a, b], pad_token_id=0), pad_inputs([a, b], pad_token_id=0, side="left")
    n = len(b.input_ids) - len(a.input_ids)
    assert torch.equal(right.input_ids[0, : len(a.input_ids)], a.input_ids)
    assert torch.equal(left.input_ids[0, n:], a.input_ids)
    assert (right.labels[0, -n:] == -100).all() and (right.attention_mask[0, -n:] == 0).all()
    assert (left.input_ids[0, :n] == 0).all() and torch.equal(left.input_ids[1], b.input_ids)


def test_any_tokenizer_can_get_the_placeholders():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer, raw.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    raw.train_from_iterator(CAPTIONS, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                                          initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    other = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|endoftext|>",
                                    extra_special_tokens=["<|im_start|>"])
    with pytest.raises(ValueError, match="add_placeholder_tokens"):
        placeholder_ids(other)
    before = len(other)
    assert add_placeholder_tokens(other) == 3 and len(other) == before + 3  # <video>, <motion>, <pad>
    assert "<|im_start|>" in other.all_special_tokens
    inputs = build_inputs(other, caption="a person", num_video_tokens=2, num_motion_tokens=3)
    video_id, motion_id = placeholder_ids(other)
    assert (inputs.input_ids == video_id).sum() == 2 and (inputs.input_ids == motion_id).sum() == 3
    assert add_placeholder_tokens(other) == 0
