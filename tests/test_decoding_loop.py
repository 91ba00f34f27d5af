"""The decoding loop on a tiny random Qwen2: batching, padding, caching, stopping,
sampling, the per-token log, and agreement with ``model.generate``."""
import functools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import (GPT2Config, GPT2LMHeadModel, LogitsProcessorList, Qwen2Config,
                          Qwen2ForCausalLM)

from macm_core.decoding import DECODERS, DecodeConfig, MSDConfig, PathwayPrompts, decode
from macm_core.decoding.loop import PATHWAYS, CachedRows, left_pad, step_scores
from macm_core.decoding.processor import MSDLogitsProcessor

torch.set_num_threads(1)
HIDDEN, VOCAB = 64, 100


@functools.lru_cache(maxsize=None)
def tiny_model(arch="qwen2", dtype=torch.float64):
    """2 layers, hidden 64, vocabulary 100, random weights (large enough to give peaked
    next-token distributions).  ``qwen2`` has rotary positions, ``gpt2`` learned
    absolute ones, where a wrong position id changes the logits.  float64 keeps batched
    and unbatched logits equal far below float32 rounding, so the token comparisons
    cannot flip on a near-tie."""
    torch.manual_seed(0)
    if arch == "qwen2":
        config = Qwen2Config(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=128,
                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                             max_position_embeddings=128, initializer_range=0.5)
        model = Qwen2ForCausalLM(config)
    else:
        config = GPT2Config(vocab_size=VOCAB, n_embd=HIDDEN, n_layer=2, n_head=4, n_positions=128,
                            initializer_range=0.3, bos_token_id=0, eos_token_id=0)
        model = GPT2LMHeadModel(config)
    return model.to(dtype).eval()


ARCHS = ("qwen2", "gpt2")


def embed(model):
    return model.get_input_embeddings()


def make_prompts(lengths, *, seed, dtype=torch.float64):
    """PathwayPrompts with random embeddings; ``lengths`` maps a pathway to one prompt
    length per caption; joint = visual then motion."""
    g = torch.Generator().manual_seed(seed)
    seqs = {name: [torch.randn(n, HIDDEN, generator=g, dtype=dtype) for n in ns]
            for name, ns in lengths.items()}
    joint = [torch.cat([v, m]) for v, m in zip(seqs["visual"], seqs["motion"])]
    return PathwayPrompts(visual=seqs["visual"], motion=seqs["motion"], joint=joint,
                          visual_noised=seqs["visual_noised"])


LENGTHS = {"visual": [5, 9, 2], "motion": [7, 1, 4], "visual_noised": [5, 9, 2]}


def reference_decode(model, prompts, cfg):
    """Each caption alone, each pathway alone, no padding, no cache: the full sequence
    (prompt + generated tokens) is run again at every step."""
    eos = () if cfg.eos_token_id is None else torch.tensor(cfg.eos_token_id).reshape(-1).tolist()
    tokens = []
    for b in range(len(prompts.visual)):
        seqs = [getattr(prompts, name)[b] for name in PATHWAYS[cfg.decoder]]
        out: list[int] = []
        for _ in range(cfg.max_new_tokens):
            logits = []
            for seq in seqs:
                generated = embed(model)(torch.tensor(out, dtype=torch.long))
                full = torch.cat([seq, generated])[None]
                logits.append(model(inputs_embeds=full, use_cache=False).logits[0, -1])
            scores, _ = step_scores(cfg.decoder, torch.stack(logits), cfg)
            out.append(scores.argmax(-1).item())
            if out[-1] in eos:
                break
        tokens.append(out)
    return tokens


def with_eos_from(tokens, *, caption=0, step=2):
    """An eos id that makes ``caption`` stop at ``step`` (or earlier)."""
    return tokens[caption][step]


# --------------------------------------------------------------------------- padding


@pytest.mark.parametrize("arch", ARCHS)
@torch.no_grad()
def test_left_padding_gives_each_row_its_own_logits(arch):
    model = tiny_model(arch)
    prompts = make_prompts(LENGTHS, seed=1)
    rows = prompts.visual + prompts.motion
    batched = CachedRows(model, rows).start()
    for row, seq in enumerate(rows):
        alone = model(inputs_embeds=seq[None], use_cache=False).logits[0, -1]
        torch.testing.assert_close(batched[row], alone, rtol=0, atol=1e-10)
    # negative controls on the shortest row: without the mask it attends to the padding;
    # without position ids its positions are shifted (visible with absolute positions;
    # rotary attention only sees relative positions)
    short = min(range(len(rows)), key=lambda r: len(rows[r]))
    alone = model(inputs_embeds=rows[short][None], use_cache=False).logits[0, -1]
    embeds, mask = left_pad(rows)
    unmasked = model(inputs_embeds=embeds, use_cache=False).logits[short, -1]
    assert not torch.allclose(unmasked, alone, atol=1e-3)
    unpositioned = model(inputs_embeds=embeds, attention_mask=mask, use_cache=False).logits[short, -1]
    assert torch.allclose(unpositioned, alone, atol=1e-3) == (arch == "qwen2")


@pytest.mark.parametrize("arch", ARCHS)
@torch.no_grad()
def test_preallocated_cache_gives_the_concatenating_caches_logits_bit_for_bit(arch):
    model = tiny_model(arch)
    prompts = make_prompts(LENGTHS, seed=3)
    rows = prompts.visual + prompts.motion
    growing, preallocated = CachedRows(model, rows), CachedRows(model, rows, max_new_tokens=4)
    assert torch.equal(growing.start(), preallocated.start())
    generator = torch.Generator().manual_seed(0)
    for _ in range(4):
        step = torch.randn(len(rows), 1, rows[0].shape[-1], generator=generator)
        assert torch.equal(growing.advance(step), preallocated.advance(step))
    with pytest.raises(RuntimeError, match="holds .* positions"):
        preallocated.advance(step)


# --------------------------------------------------------------------------- batched == unbatched


@settings(max_examples=16, deadline=None)
@given(arch=st.sampled_from(ARCHS), decoder=st.sampled_from(DECODERS), seed=st.integers(0, 10_000),
       lengths=st.lists(st.tuples(st.integers(1, 9), st.integers(1, 9)), min_size=1, max_size=3),
       eos_step=st.integers(0, 4))
def test_batched_equals_unbatched_step_by_step(arch, decoder, seed, lengths, eos_step):
    model = tiny_model(arch)
    visual, motion = [v for v, _ in lengths], [m for _, m in lengths]
    prompts = make_prompts({"visual": visual, "motion": motion, "visual_noised": visual}, seed=seed)
    cfg = DecodeConfig(decoder=decoder, max_new_tokens=5)
    free = decode(model, prompts, embed_tokens=embed(model), cfg=cfg)
    assert free.tokens == reference_decode(model, prompts, cfg)
    # stop caption 0 early: its rows are then padded while the others go on
    cfg = DecodeConfig(decoder=decoder, max_new_tokens=5,
                       eos_token_id=with_eos_from(free.tokens, step=eos_step))
    stopped = decode(model, prompts, embed_tokens=embed(model), cfg=cfg)
    assert stopped.tokens == reference_decode(model, prompts, cfg)
    assert len(stopped.tokens[0]) == eos_step + 1 or stopped.tokens[0][-1] == cfg.eos_token_id


@pytest.mark.parametrize("decoder", DECODERS)
def test_batch_of_captions_equals_each_caption_alone(decoder):
    model = tiny_model()
    prompts = make_prompts(LENGTHS, seed=2)
    free = decode(model, prompts, embed_tokens=embed(model),
                  cfg=DecodeConfig(decoder=decoder, max_new_tokens=8))
    cfg = DecodeConfig(decoder=decoder, max_new_tokens=8, log_tokens=True,
                       eos_token_id=with_eos_from(free.tokens, caption=1, step=3))
    together = decode(model, prompts, embed_tokens=embed(model), cfg=cfg)
    assert len(together.tokens[1]) <= 4 and together.tokens[1][-1] == cfg.eos_token_id
    for b in range(len(prompts.visual)):
        one = PathwayPrompts(**{name: None if seqs is None else seqs[b:b + 1]
                                for name, seqs in vars(prompts).items()})
        alone = decode(model, one, embed_tokens=embed(model), cfg=cfg)
        assert alone.tokens[0] == together.tokens[b]
        for log_alone, log_together in zip(alone.token_logs[0], together.token_logs[b], strict=True):
            assert log_alone.keys() == log_together.keys()
            assert log_alone == pytest.approx(log_together, rel=1e-5, abs=1e-7)


def test_decoders_differ_on_this_model():
    """The comparisons above are not vacuous: the pairwise decoders change tokens."""
    model = tiny_model()
    prompts = make_prompts(LENGTHS, seed=2)
    outputs = {d: decode(model, prompts, embed_tokens=embed(model),
                         cfg=DecodeConfig(decoder=d, max_new_tokens=12)).tokens for d in DECODERS}
    for decoder in ("greedy_joint", "poe", "vcd", "msd"):
        assert outputs[decoder] != outputs["greedy_visual"], decoder


# --------------------------------------------------------------------------- MSD properties in the loop


def test_msd_with_every_term_disabled_or_equal_pathways_is_greedy_visual():
    model = tiny_model()
    prompts = make_prompts(LENGTHS, seed=3)
    greedy = decode(model, prompts, embed_tokens=embed(model),
                    cfg=DecodeConfig(decoder="greedy_visual", max_new_tokens=12)).tokens
    pruned = decode(model, prompts, embed_tokens=embed(model),
                    cfg=DecodeConfig(decoder="msd", max_new_tokens=12, msd=MSDConfig().only()))
    assert pruned.tokens == greedy
    same = PathwayPrompts(visual=prompts.visual, motion=prompts.visual)
    mirrored = decode(model, same, embed_tokens=embed(model),
                      cfg=DecodeConfig(decoder="msd", max_new_tokens=12))
    assert mirrored.tokens == greedy


def test_token_log_of_msd():
    model = tiny_model()
    prompts = make_prompts(LENGTHS, seed=4)
    out = decode(model, prompts, embed_tokens=embed(model),
                 cfg=DecodeConfig(decoder="msd", max_new_tokens=16, log_tokens=True))
    spec = {"token", "visual_top", "changed", "v_head", "c", "p_v_chosen", "p_m_chosen",
            "p_v_top", "p_m_top", "S_chosen", "S_top"}
    spec |= {f"L{i}_{at}" for i in range(1, 6) for at in ("chosen", "top")}
    changed = 0
    for tokens, logs in zip(out.tokens, out.token_logs, strict=True):
        assert [log["token"] for log in logs] == tokens
        for log in logs:
            assert set(log) == spec
            assert log["changed"] == (log["token"] != log["visual_top"])
            assert log["v_head"] >= 1 and 0 <= log["c"] <= 1
            assert log["p_v_chosen"] >= log["c"] * log["p_v_top"] * (1 - 1e-6)
            assert log["p_v_chosen"] <= log["p_v_top"]
            changed += log["changed"]
    assert changed > 0  # MSD did change some visual choices on this model
    plain = decode(model, prompts, embed_tokens=embed(model),
                   cfg=DecodeConfig(decoder="greedy_visual", max_new_tokens=4, log_tokens=True))
    assert all(not log["changed"] for logs in plain.token_logs for log in logs)


# --------------------------------------------------------------------------- the fast path


@settings(max_examples=12, deadline=None)
@given(decoder=st.sampled_from(DECODERS), seed=st.integers(0, 10_000), sample=st.booleans(),
       candidates=st.booleans())
def test_the_loop_without_logs_gives_the_logged_tokens(decoder, seed, sample, candidates):
    """Without ``log_tokens`` the loop scores each step on the fast path (no per-token
    details; for MSD the synergy on candidate tokens when forced here, as on a large
    vocabulary): the same tokens as the logging path, which computes everything."""
    import macm_core.decoding.msd as msd

    model = tiny_model()
    prompts = make_prompts(LENGTHS, seed=seed)
    kw = dict(decoder=decoder, max_new_tokens=8, do_sample=sample, temperature=2.0, seed=seed)
    logged = decode(model, prompts, embed_tokens=embed(model), cfg=DecodeConfig(log_tokens=True, **kw))
    before = msd.CANDIDATE_MIN_VOCAB
    msd.CANDIDATE_MIN_VOCAB = 0 if candidates else 10**9
    try:
        fast = decode(model, prompts, embed_tokens=embed(model), cfg=DecodeConfig(**kw))
    finally:
        msd.CANDIDATE_MIN_VOCAB = before
    assert fast.tokens == logged.tokens and fast.token_logs is None


# --------------------------------------------------------------------------- sampling


def test_seeded_sampling():
    model = tiny_model()
    prompts = make_prompts(LENGTHS, seed=5)

    def run(**kw):
        cfg = DecodeConfig(decoder="msd", max_new_tokens=10, do_sample=True, log_tokens=True, **kw)
        return decode(model, prompts, embed_tokens=embed(model), cfg=cfg)

    hot = run(temperature=3.0, seed=7)
    assert hot.tokens == run(temperature=3.0, seed=7).tokens
    assert any(run(temperature=3.0, seed=s).tokens != hot.tokens for s in range(8, 12))
    # sampled tokens never leave V_head, and some are not MSD's argmax
    logs = [log for caption in hot.token_logs for log in caption]
    assert all(log["p_v_chosen"] >= log["c"] * log["p_v_top"] * (1 - 1e-6) for log in logs)
    greedy = decode(model, prompts, embed_tokens=embed(model),
                    cfg=DecodeConfig(decoder="msd", max_new_tokens=10)).tokens
    assert hot.tokens != greedy
    # a vanishing top-p keeps only the best token: sampling then is greedy
    assert run(top_p=1e-9, seed=3).tokens == greedy


# --------------------------------------------------------------------------- generate


def generate_tokens(model, seqs, eos, **kw):
    embeds, mask = left_pad(seqs)
    out = model.generate(inputs_embeds=embeds, attention_mask=mask, do_sample=False,
                         max_new_tokens=10, eos_token_id=eos, pad_token_id=0, **kw)
    tokens = []
    for row in out.tolist():  # generate returns only new tokens for inputs_embeds
        tokens.append(row[:row.index(eos) + 1] if eos in row else row)
    return tokens


@pytest.mark.parametrize("arch,dtype", [("qwen2", torch.float32), ("qwen2", torch.float64),
                                        ("gpt2", torch.float32)])
def test_greedy_visual_equals_generate(arch, dtype):
    model = tiny_model(arch, dtype)
    prompts = make_prompts(LENGTHS, seed=6, dtype=dtype)
    free = decode(model, prompts, embed_tokens=embed(model),
                  cfg=DecodeConfig(decoder="greedy_visual", max_new_tokens=10))
    eos = with_eos_from(free.tokens, caption=2, step=4)
    ours = decode(model, prompts, embed_tokens=embed(model),
                  cfg=DecodeConfig(decoder="greedy_visual", max_new_tokens=10, eos_token_id=eos))
    assert ours.tokens == generate_tokens(model, prompts.visual, eos)
    assert len(ours.tokens[2]) <= 5


@pytest.mark.parametrize("candidate_min_vocab", [8192, 0])
def test_msd_logits_processor_equals_the_batched_loop(candidate_min_vocab, monkeypatch):
    import macm_core.decoding.msd as msd

    monkeypatch.setattr(msd, "CANDIDATE_MIN_VOCAB", candidate_min_vocab)
    model = tiny_model()
    prompts = make_prompts(LENGTHS, seed=19)
    cfg = DecodeConfig(decoder="msd", max_new_tokens=10, msd=MSDConfig(alpha4=2.0))
    free = decode(model, prompts, embed_tokens=embed(model), cfg=cfg)
    eos = with_eos_from(free.tokens, caption=0, step=3)
    ours = decode(model, prompts, embed_tokens=embed(model),
                  cfg=DecodeConfig(decoder="msd", max_new_tokens=10, eos_token_id=eos, msd=cfg.msd))
    processor = MSDLogitsProcessor(model=model, motion=prompts.motion, embed_tokens=embed(model),
                                   cfg=cfg.msd)
    generated = generate_tokens(model, prompts.visual, eos,
                                logits_processor=LogitsProcessorList([processor]))
    assert generated == ours.tokens
    plain = generate_tokens(model, prompts.visual, eos)
    assert generated != plain  # the processor did change the visual pathway's tokens


def test_processor_rejects_a_batch_of_another_size():
    model = tiny_model()
    prompts = make_prompts(LENGTHS, seed=8)
    processor = MSDLogitsProcessor(model=model, motion=prompts.motion[:2], embed_tokens=embed(model))
    with pytest.raises(ValueError):
        processor(torch.zeros(3, 0, dtype=torch.long), torch.zeros(3, VOCAB))


# --------------------------------------------------------------------------- configuration


def test_missing_pathways_and_bad_configs_are_refused():
    model = tiny_model()
    visual_only = PathwayPrompts(visual=make_prompts(LENGTHS, seed=9).visual)
    for decoder in ("greedy_joint", "poe", "vcd", "msd"):
        with pytest.raises(ValueError):
            decode(model, visual_only, embed_tokens=embed(model), cfg=DecodeConfig(decoder=decoder))
    with pytest.raises(ValueError):
        DecodeConfig(decoder="beam")
    with pytest.raises(ValueError):
        DecodeConfig(max_new_tokens=0)
    with pytest.raises(ValueError):
        DecodeConfig(do_sample=True, top_p=0.0)
    with pytest.raises(ValueError):
        PathwayPrompts(visual=visual_only.visual, motion=visual_only.visual[:1])
    with pytest.raises(ValueError):
        PathwayPrompts(visual=[torch.zeros(0, HIDDEN)])
