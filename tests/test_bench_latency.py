"""macm bench latency: every decoder and MSD's cumulative term sets, timed on the same clips."""
import json
import statistics
import types

import pytest
import torch

from macm_core.bench import latency as L
from macm_core.decoding import DECODERS, DecodeOutput, decode
from macm_core.model import MACMConfig, MACMForConditionalGeneration, small_qwen2_config


def tiny_profile(**model):
    """A profile-like object: the smoke sizes (tiny-random encoder, 2 keyframes)."""
    sizes = dict(decoder="scratch-qwen2", vocab_size=64, hidden_size=32, num_layers=1, num_heads=2,
                 intermediate_size=64, decoder_path=None)
    sizes.update(model)
    return types.SimpleNamespace(
        name="tiny", seed=0, threads=1, data=types.SimpleNamespace(image_size=32),
        features=types.SimpleNamespace(keyframes=2, encoder="tiny-random", grid=2, encoder_path=None,
                                       vcd_noise=0.5),
        model=types.SimpleNamespace(**sizes))


def test_variants_are_every_decoder_and_the_cumulative_term_sets():
    labels = [v.label for v in L.variants()]
    assert labels == ["greedy_visual", "greedy_joint", "poe", "vcd", "msd[L2]", "msd[L2+L1]", "msd[L2+L1+L3]",
                      "msd[L2+L1+L3+L4]", "msd[L2+L1+L3+L4+L5]"]
    assert L.CUMULATIVE_TERMS[0] == ("L2",) and set(L.CUMULATIVE_TERMS[-1]) == {"L1", "L2", "L3", "L4", "L5"}
    assert [v.label for v in L.variants(["msd"], [("L1", "L4")])] == ["msd[L1+L4]"]
    for bad in (dict(decoders=["beam"]), dict(decoders=["msd"], term_sets=[("L9",)]),
                dict(decoders=["poe", "poe"])):
        with pytest.raises(ValueError):
            L.variants(**bad)


def test_bench_latency_rows_and_summary():
    model, tokenizer, weights = L.build_bench_model(tiny_profile())
    assert tokenizer is None and weights == "random"
    clips = L.random_clip_prompts(model, 3, keyframes=2)
    threads = torch.get_num_threads()
    lines = []
    report = L.bench_latency(model, clips, max_new_tokens=5, threads=1, warmup=1, emit=lines.append,
                             info={"weights": weights, "profile": "tiny"})
    assert torch.get_num_threads() == threads  # restored
    rows = [json.loads(line) for line in lines[:-1]]
    assert rows == report.rows and len(rows) == len(L.variants())
    assert [r["label"] for r in rows] == [v.label for v in L.variants()]
    for row in rows:
        assert row["captions"] == 2 and row["tokens"] == 5 and row["weights"] == "random"
        assert row["p10_s"] <= row["median_s"] <= row["p90_s"]
        assert row["ms_per_token"] == pytest.approx(1000 * row["median_s"] / 5, rel=1e-2)
        assert row["ratio"] > 0 and row["paired_ratio"] > 0 and row["threads"] == 1
    assert rows[0]["ratio"] == 1.0 and rows[0]["decoder"] == "greedy_visual"
    assert rows[-1]["terms"] == list(L.CUMULATIVE_TERMS[-1])
    assert lines[-1] == report.summary and "MSD-all / greedy-visual = " in report.summary
    # the rows round their medians to 5 decimals (too coarse for ms-long captions): compare
    # with the medians of the raw per-caption times the report keeps
    medians = {label: statistics.median(times) for label, times in report.seconds.items()}
    assert report.msd_all_ratio == pytest.approx(medians[rows[-1]["label"]] / medians[rows[0]["label"]], rel=1e-3)
    assert all(len(t) == 2 for t in report.seconds.values())


def test_bench_latency_fixes_the_caption_length_and_checks_it():
    model, _, _ = L.build_bench_model(tiny_profile())
    clips = L.random_clip_prompts(model, 2, keyframes=2)
    seen = []

    def spy(lm, prompts, *, embed_tokens, cfg):
        seen.append(cfg)
        return decode(lm, prompts, embed_tokens=embed_tokens, cfg=cfg)

    L.bench_latency(model, clips, decoders=["greedy_visual", "msd"], term_sets=[("L2",), L.TERM_ORDER],
                    max_new_tokens=3, emit=lambda _: None, decode_fn=spy)
    assert len(seen) == 2 * 3  # 2 clips (1 warm-up) x 3 variants
    assert all(cfg.eos_token_id is None and cfg.max_new_tokens == 3 for cfg in seen)
    assert {cfg.msd.enabled for cfg in seen if cfg.decoder == "msd"} == {("L2",), tuple(sorted(L.TERM_ORDER))}

    def short(lm, prompts, *, embed_tokens, cfg):
        return DecodeOutput(tokens=[[1, 2]])

    with pytest.raises(RuntimeError, match="generated"):
        L.bench_latency(model, clips, max_new_tokens=3, emit=lambda _: None, decode_fn=short)
    with pytest.raises(ValueError):
        L.bench_latency(model, clips[:1], warmup=1, emit=lambda _: None)


def test_random_clip_prompts_have_the_four_pathways():
    model, _, _ = L.build_bench_model(tiny_profile())
    clip = L.random_clip_prompts(model, 1, keyframes=2)[0]
    n = model.tokens_per_clip(2)
    lengths = {name: getattr(clip, name)[0].shape[0] for name in ("visual", "motion", "joint", "visual_noised")}
    assert lengths["visual"] == lengths["motion"] == lengths["visual_noised"] == lengths["joint"] - n
    assert not torch.equal(clip.visual[0], clip.visual_noised[0])
    again = L.random_clip_prompts(model, 1, keyframes=2)[0]
    assert torch.equal(again.motion[0], clip.motion[0])  # seeded


def test_text_config_follows_the_profile():
    assert L.bench_text_config(tiny_profile()).hidden_size == 32
    assert L.keyframes_of(tiny_profile()) == 2
    smollm2 = L.bench_text_config(tiny_profile(decoder="smollm2"))
    assert smollm2.model_type == "llama" and smollm2.vocab_size == 49152
    local = L.bench_text_config(tiny_profile(decoder="local", decoder_path="/nonexistent/qwen2"))
    assert local.model_type == "qwen2" and local.hidden_size == 3584


def test_latency_main_random_and_checkpoint(tmp_path, capsys):
    report = L.latency_main("smoke", captions=2, max_new_tokens=3, threads=1, decoders=["greedy_visual", "msd"])
    assert report.rows[0]["weights"] == "random" and report.rows[0]["profile"] == "smoke"
    assert report.msd_all_ratio is not None
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 + len(L.CUMULATIVE_TERMS) + 1 and out[-1] == report.summary

    # a trained model's folder: model and tokenizer saved side by side
    from macm_core.model.tokenizer import placeholder_ids, train_caption_tokenizer

    tokenizer = train_caption_tokenizer(["the person raises their left hand", "a man taps his right foot"] * 4,
                                        vocab_size=300, min_frequency=1)
    video_id, motion_id = placeholder_ids(tokenizer)
    config = MACMConfig(vision_config={"name": "tiny-random", "grid": 2, "image_size": 32},
                        text_config=small_qwen2_config(len(tokenizer), hidden_size=32, num_hidden_layers=1,
                                                       num_attention_heads=2, num_key_value_heads=2,
                                                       intermediate_size=64),
                        video_token_id=video_id, motion_token_id=motion_id)
    MACMForConditionalGeneration(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    report = L.latency_main("smoke", checkpoint=tmp_path, captions=2, max_new_tokens=3, threads=1,
                            decoders=["greedy_visual", "msd"])
    assert report.rows[0]["weights"] == str(tmp_path)
    assert report.rows[0]["vocab"] == len(tokenizer)


def test_decoders_default_to_all():
    assert {v.decoder for v in L.variants()} == set(DECODERS)


def test_a_missing_local_folder_is_named_in_the_weights_label_not_substituted_silently():
    assert L.substituted_parts(tiny_profile()) == []
    _, _, weights = L.build_bench_model(tiny_profile())
    assert weights == "random"
    profile = tiny_profile(decoder="local", decoder_path="/nonexistent/qwen2")
    profile.features.encoder, profile.features.encoder_path = "siglip", "/nonexistent/siglip"
    parts = L.substituted_parts(profile)
    assert len(parts) == 2
    assert "SigLIP-so400m-sized" in parts[0] and "/nonexistent/siglip" in parts[0]
    assert "Qwen2-7B-sized" in parts[1] and "/nonexistent/qwen2" in parts[1]
