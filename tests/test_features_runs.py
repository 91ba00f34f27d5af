"""The feature cache, trained variants, captioning and result tables, on the smoke profile.

These share the default artifact cache (the smoke benchmark and vitpose-tiny are built
once); every stage is keyed, so the tests reuse what an earlier test or notebook made.
"""
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from macm_core.config import ConfigError, load_profile
from macm_core.features import crop_body_layer, load_features, noised
from macm_core.variants import VARIANTS, get_variant


@pytest.fixture(scope="module")
def smoke():
    return load_profile("smoke")


@pytest.fixture(scope="module")
def test_features(smoke):
    return {mode: load_features(smoke, "test", keyframes=mode, progress=False) for mode in ("uniform", "pose-aware")}


def test_features_have_the_shapes_of_both_pathways(smoke, test_features):
    f = smoke.features
    tokens = f.keyframes * f.grid ** 2
    for mode, feats in test_features.items():
        n = smoke.data.num_test
        assert len(feats) == n and feats.info["keyframes"] == mode
        assert feats.visual.shape == feats.motion.shape == feats.visual_noised.shape == (n, tokens, 64)
        assert feats.visual.dtype == np.float16 and np.isfinite(feats.visual).all()
        assert feats.keyframes.shape == (n, f.keyframes)
        assert (np.diff(feats.keyframes, axis=1) > 0).all()  # increasing frame indices
        assert ((feats.pose_confidence >= 0) & (feats.pose_confidence <= 1)).all()
        assert (feats.fit_mpjpe_mm > 0).all() and (feats.fit_pa_mpjpe_mm <= feats.fit_mpjpe_mm + 1e-6).all()
        assert not np.array_equal(feats.visual, feats.motion)  # the body view is another image
        assert not np.array_equal(feats.visual, feats.visual_noised)


def test_uniform_keyframes_are_evenly_spread_and_the_modes_differ(smoke, test_features):
    uniform = test_features["uniform"].keyframes
    assert (uniform == uniform[0]).all()  # the same indices for every clip
    assert not np.array_equal(uniform, test_features["pose-aware"].keyframes)


def test_features_are_reused_from_the_cache(smoke, test_features):
    again = load_features(smoke, "test", keyframes="uniform", progress=False)
    assert np.array_equal(again.visual, test_features["uniform"].visual)
    assert again.clip_ids == test_features["uniform"].clip_ids


def test_the_first_clips_without_occlusion_are_rows_of_the_whole_split(smoke, test_features):
    """The occlusion sweep's severity 0 is the evaluation's own input: its features are the
    first rows of the split's features, not a second computation (nothing new is cached)."""
    from macm_core.cache import cache_root

    before = set((cache_root() / "features").iterdir())
    whole = test_features["pose-aware"]
    first = load_features(smoke, "test", keyframes="pose-aware", num_clips=2, progress=False)
    assert first.clip_ids == whole.clip_ids[:2] and first.info["clips"] == 2
    for name in ("visual", "motion", "visual_noised", "keyframes", "pose_confidence", "body_pose"):
        assert np.array_equal(getattr(first, name), getattr(whole, name)[:2]), name
    assert load_features(smoke, "test", keyframes="pose-aware", num_clips=10_000, progress=False).clip_ids == \
        whole.clip_ids
    assert set((cache_root() / "features").iterdir()) == before
    with pytest.raises(ValueError, match="num_clips must be >= 1"):
        load_features(smoke, "test", num_clips=0)


def test_training_splits_have_no_vcd_features_and_bad_arguments_are_refused(smoke):
    with pytest.raises(ValueError, match="keyframes must be one of"):
        load_features(smoke, "test", keyframes="random")
    with pytest.raises(ValueError, match="occlusion must lie in"):
        load_features(smoke, "test", occlusion=1.5)
    with pytest.raises(KeyError, match="no split 'heldout'"):
        load_features(smoke, "heldout")


def test_rows_reorders_features(test_features):
    feats = test_features["uniform"]
    picked = feats.rows([feats.clip_ids[2], feats.clip_ids[0]])
    assert np.array_equal(picked.visual[0], feats.visual[2]) and np.array_equal(picked.visual[1], feats.visual[0])
    with pytest.raises(KeyError, match="no features for clips"):
        feats.rows(["nope"])


def test_crop_body_layer_matches_a_direct_draw_without_crop_and_follows_a_zoom():
    frames = torch.zeros(1, 32, 32, 3, dtype=torch.uint8)
    view = torch.zeros_like(frames)
    view[0, 8:12, 8:12] = 200
    mask = view[..., 0] > 0
    same = crop_body_layer(view, mask, frames, 1.0, np.zeros(2))
    assert torch.equal(same, view)
    zoomed = crop_body_layer(view, mask, frames, 2.0, np.array([-16.0, -16.0]))  # after = 2 * before - 16
    ys, xs = np.nonzero(zoomed[0, ..., 0].numpy() > 100)
    assert ys.min() >= 0 and 0 <= xs.min() <= 2 and 6 <= xs.max() <= 8


def test_noised_stays_in_range_and_is_seeded():
    images = torch.rand(2, 3, 3, 8, 8)
    a = noised(images, 0.5, torch.Generator().manual_seed(0))
    b = noised(images, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.min() >= 0 and a.max() <= 1 and not torch.equal(a, images)


def test_variants_are_data_and_profiles_validate_their_values(tmp_path):
    assert set(VARIANTS) >= {"baseline-coarse", "baseline-fine", "macm-uniform", "macm-coarse", "macm"}
    assert not get_variant("baseline-fine").uses_motion and get_variant("macm").keyframes == "pose-aware"
    # macm-coarse differs from macm-uniform in its captions only (MSD without fine-grained data)
    coarse, uniform = vars(get_variant("macm-coarse")), vars(get_variant("macm-uniform"))
    assert {k for k in coarse if coarse[k] != uniform[k]} == {"name", "description", "captions"}
    assert coarse["captions"] == get_variant("baseline-coarse").captions
    with pytest.raises(ValueError, match="unknown variant"):
        get_variant("macm-xl")
    base = open(load_profile("smoke").source).read()
    for old, new, message in (("encoder: tiny-random", "encoder: resnet", "features.encoder"),
                              ("decoder: scratch-qwen2", "decoder: gpt5", "model.decoder"),
                              ("variants: [baseline-coarse", "variants: [bogus", "train.variants"),
                              ("keyframes: 4", "keyframes: 99", "features.keyframes"),
                              ("decoders: [greedy_visual", "decoders: [beam", "eval.decoders"),
                              ("length_groups: 3", "length_groups: 0", "train.length_groups"),
                              ("qa_fraction: 0.2\n", "qa_fraction: 0.2\n  parallel_runs: 0\n", "train.parallel_runs"),
                              ("max_new_tokens:", "decode_batch: 0\n  max_new_tokens:", "eval.decode_batch"),
                              ("keyframes: 4", "keyframes: 4\n  workers: 0", "features.workers")):
        path = tmp_path / "p.yaml"
        path.write_text(base.replace(old, new, 1))
        with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
            load_profile(path)


@pytest.fixture(scope="module")
def trained(smoke):
    from macm_core.runs import load_variant, train_variant

    folder = train_variant(smoke, "macm", progress=False)
    return folder, load_variant(smoke, "macm", progress=False)


@pytest.mark.slow
def test_runs_trained_in_parallel_processes_equal_runs_trained_one_by_one(smoke):
    import shutil

    from safetensors.torch import load_file

    from macm_core.runs import run_dir, train_runs

    # short runs of their own (other run folders than the smoke profile's)
    profile = replace(smoke, threads=2, train=replace(smoke.train, stage1_steps=2, stage2_steps=8, parallel_runs=2))
    runs = [("macm", 0), ("baseline-fine", 1)]

    def trained_weights(jobs):
        for variant, seed in runs:
            shutil.rmtree(run_dir(profile, get_variant(variant), seed), ignore_errors=True)
        folders = train_runs(profile, runs, jobs=jobs)
        assert list(folders) == runs
        return {run: load_file(str(folder / "model.safetensors")) for run, folder in folders.items()}

    one_by_one, in_parallel = trained_weights(1), trained_weights(2)
    for run in runs:
        assert one_by_one[run].keys() == in_parallel[run].keys()
        assert all(torch.equal(one_by_one[run][k], in_parallel[run][k]) for k in one_by_one[run]), run
    assert not torch.equal(one_by_one[runs[0]]["language_model.model.norm.weight"],
                           one_by_one[runs[1]]["language_model.model.norm.weight"])
    with pytest.raises(ValueError, match="jobs must be >= 1"):
        train_runs(profile, runs, jobs=0)


@pytest.mark.slow
def test_features_do_not_depend_on_how_many_worker_processes_compute_them_or_what_else_they_compute(
        smoke, tmp_path):
    """Two workers computing two sets in one pool (their batches interleaved over the
    workers) write the same numbers as one worker computing each set in a pool of its own."""
    from macm_core.features import KEYFRAME_MODES, _compute, _FeatureSet, feature_threads

    # the same thread count per batch (1): two workers, or one
    two = replace(smoke, threads=2, features=replace(smoke.features, workers=2, batch_clips=4))
    one = replace(smoke, threads=1, features=replace(smoke.features, workers=1, batch_clips=4))
    assert feature_threads(two) == feature_threads(one) == 1
    requests = [("test", 0.3, 10), ("test_heldout", 0.6, 5)]  # batches of 4, 4, 2, then 4, 1

    def feature_set(name, split, occlusion, num_clips):
        folder = tmp_path / name / f"{split}-{occlusion}"
        return _FeatureSet(split, occlusion, num_clips, {mode: folder / mode / "features.npz" for mode in KEYFRAME_MODES})

    together = [feature_set("two", *request) for request in requests]
    _compute(two, together, progress=False)
    alone = [feature_set("one", *request) for request in requests]
    for one_set in alone:
        _compute(one, [one_set], progress=False)
    for a_set, b_set, (split, occlusion, num_clips) in zip(together, alone, requests):
        for mode in KEYFRAME_MODES:
            a, b = dict(np.load(a_set.paths[mode])), dict(np.load(b_set.paths[mode]))
            a_info, b_info = json.loads(str(a["info"])), json.loads(str(b["info"]))
            assert a_info["workers"] == 2 and b_info["workers"] == 1
            assert a_info["split"] == split and a_info["occlusion"] == occlusion and a_info["clips"] == num_clips
            assert len(a_info["computed_with"]) == 1 and "computed_with" not in b_info
            assert len(a["clip_ids"]) == num_clips and a["visual_noised"].shape[0] == num_clips
            for name in a:
                if name != "info":
                    assert np.array_equal(a[name], b[name]), (split, mode, name)


def test_compute_features_computes_only_the_missing_sets_and_checks_requests(smoke, test_features):
    from macm_core.features import book_feature_sets, compute_features

    assert compute_features(smoke, [("test", 0.0, None), ("test", 0.0, 3)], progress=False) == []  # cached
    with pytest.raises(ValueError, match="occlusion must lie in"):
        compute_features(smoke, [("test", 1.0, None)])
    with pytest.raises(KeyError, match="no split 'heldout'"):
        compute_features(smoke, [("heldout", 0.0, None)], force=True)
    f = smoke.features
    assert book_feature_sets(smoke) == [("train", 0.0, None), ("test", 0.0, None), ("test_heldout", 0.0, None)] + [
        ("test", float(s), f.occlusion_clips) for s in f.occlusion_severities if s > 0]


def test_a_run_is_keyed_by_its_thread_count_not_by_how_many_runs_train_at_once(smoke):
    from macm_core.runs import run_dir, run_threads

    one_each = replace(smoke, threads=2, train=replace(smoke.train, parallel_runs=2))
    alone_one = replace(smoke, threads=1, train=replace(smoke.train, parallel_runs=1))
    alone_two = replace(smoke, threads=2, train=replace(smoke.train, parallel_runs=1))
    assert run_threads(one_each) == run_threads(alone_one) == 1 and run_threads(alone_two) == 2
    macm = get_variant("macm")
    assert run_dir(one_each, macm, 0) == run_dir(alone_one, macm, 0)  # the same weights (the test above)
    assert run_dir(one_each, macm, 0) != run_dir(alone_two, macm, 0)


def test_a_trained_variant_is_saved_whole_and_loads_back(smoke, trained):
    folder, (model, tokenizer, info) = trained
    assert (folder / "config.json").is_file() and (folder / "run.json").is_file()
    assert info["variant"] == "macm" and info["seed"] == smoke.train.seeds[0]
    stage2 = info["stages"]["stage2"]["losses"]
    assert len(stage2) == smoke.train.stage2_steps
    assert stage2[-1][1] < info["stages"]["stage1"]["losses"][0][1]  # it learned something
    assert info["parameters"]["vision_encoder (frozen)"] > 0
    assert all(not p.requires_grad for p in model.vision_encoder.parameters())


def test_an_untrained_variant_is_a_clear_error_when_training_is_not_allowed(smoke):
    from macm_core.runs import load_variant

    with pytest.raises(FileNotFoundError, match="macm train --profile smoke --variant baseline-fine --seed 77"):
        load_variant(smoke, "baseline-fine", seed=77, train=False)


def test_every_decoder_captions_the_test_split_in_one_batch_loop(smoke, trained, test_features):
    from macm_core.captioning import generate

    _, (model, tokenizer, _) = trained
    feats = test_features["pose-aware"]
    rows = [0, 1, 2]
    for decoder in ("greedy_visual", "greedy_joint", "poe", "vcd", "msd"):
        texts, logs = generate(model, tokenizer, feats, decoder=decoder, max_new_tokens=6, rows=rows,
                               log_tokens=decoder == "msd", batch_size=2)
        assert len(texts) == 3 and all(isinstance(t, str) for t in texts)
        if decoder == "msd":
            assert len(logs) == 3 and all("changed" in entry and "text" in entry for entry in logs[0])
    # batching does not change a caption
    one, _ = generate(model, tokenizer, feats, decoder="msd", max_new_tokens=6, rows=[2], batch_size=1)
    assert one[0] == texts[2]


def test_batched_prompts_equal_each_clip_embedded_alone(trained, test_features):
    from macm_core.captioning import PATHWAY_CONDITIONING, pathway_prompts
    from macm_core.model.tokenizer import DEFAULT_INSTRUCTION, build_inputs

    _, (model, tokenizer, _) = trained
    feats = test_features["pose-aware"]
    rows = [0, 1, 2, 3]
    questions = ["Does the person use the left hand?", DEFAULT_INSTRUCTION, "Does the person use the left hand?",
                 "Is the right foot moving three times?"]  # two lengths, a repeated question
    batched = pathway_prompts(model, tokenizer, visual=feats.visual[rows], motion=feats.motion[rows],
                              visual_noised=feats.visual_noised[rows], prompts=questions)
    sources = {"visual": (feats.visual, None), "motion": (None, feats.motion),
               "joint": (feats.visual, feats.motion), "visual_noised": (feats.visual_noised, None)}
    with torch.inference_mode():
        for name, (video, motion) in sources.items():
            for b, (row, question) in enumerate(zip(rows, questions)):
                ids = build_inputs(tokenizer, prompt=question, num_video_tokens=feats.visual.shape[1],
                                   num_motion_tokens=feats.motion.shape[1],
                                   conditioning=PATHWAY_CONDITIONING[name]).input_ids
                alone = model.prompt_embeddings(
                    ids[None], video_features=None if video is None else torch.from_numpy(video[row:row + 1]).float(),
                    motion_features=None if motion is None else torch.from_numpy(motion[row:row + 1]).float())[0]
                got = getattr(batched, name)[b]
                assert got.shape == alone.shape, (name, b)
                torch.testing.assert_close(got, alone, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="3 prompts for 4 clips"):
        pathway_prompts(model, tokenizer, visual=feats.visual[rows], motion=feats.motion[rows],
                        prompts=questions[:3])


def test_vcd_needs_the_noised_features_of_an_evaluation_split(smoke, trained):
    from macm_core.captioning import generate

    _, (model, tokenizer, _) = trained
    train_feats = load_features(smoke, "train", keyframes="pose-aware", progress=False)
    assert train_feats.visual_noised is None
    with pytest.raises(ValueError, match="VCD needs the noised-video features"):
        generate(model, tokenizer, train_feats, decoder="vcd", max_new_tokens=2, rows=[0])


def test_caption_split_caches_captions_and_answers(smoke, trained):
    from macm_core.captioning import caption_split

    first = caption_split(smoke, "macm", decoder="msd", progress=False)
    again = caption_split(smoke, "macm", decoder="msd", progress=False)
    assert list(first["clip_id"]) == list(again["clip_id"]) and list(first["caption"]) == list(again["caption"])
    answers = caption_split(smoke, "macm", decoder="greedy_visual", qa=True, progress=False)
    assert set(answers.columns) == {"clip_id", "question", "answer", "gold"}
    assert set(answers["gold"]) <= {"true", "false"} and len(answers) > 0


def test_caption_sets_score_visual_only_models_greedily(smoke):
    from macm_core.results import caption_sets

    sets = caption_sets(smoke, seeds=[0])
    assert ("baseline-fine", 0, "msd") not in sets and ("baseline-fine", 0, "greedy_visual") in sets
    assert {d for v, _, d in sets if v == "macm"} == set(smoke.eval.decoders)


def test_msd_term_sets_are_cumulative():
    from macm_core.captioning import msd_term_sets

    sets = msd_term_sets()
    assert list(sets) == ["L2", "L2+L1", "L2+L1+L3", "L2+L1+L3+L4", "L2+L1+L3+L4+L5"]
    assert sets["L2"].enabled == ("L2",) and len(sets["L2+L1+L3+L4+L5"].enabled) == 5


def test_macm_train_and_caption_commands(smoke, trained, capsys):
    from macm_core.assets import asset_path
    from macm_core.cli import main

    folder, _ = trained
    assert main(["train", "--profile", "smoke", "--variant", "macm"]) == 0
    assert str(folder) in capsys.readouterr().out
    assert main(["caption", "no-such-video.mp4", "--checkpoint", str(folder)]) == 1
    assert "no-such-video.mp4" in capsys.readouterr().err
    assert main(["caption", str(asset_path("sports2d-demo", "demo.mp4")), "--checkpoint", str(folder.parent)]) == 1
    assert "not a trained model folder" in capsys.readouterr().err
    video = asset_path("sports2d-demo", "demo.mp4")
    assert main(["caption", str(video), "--checkpoint", str(folder), "--decoder", "msd", "--max-frames", "12"]) == 0
    assert isinstance(capsys.readouterr().out, str)


def test_run_profile_finds_a_packaged_or_custom_profile_and_says_when_it_is_missing(tmp_path):
    from macm_core.config import load_profile
    from macm_core.video_caption import run_profile

    assert run_profile({"profile": "smoke"}).name == "smoke"
    custom = tmp_path / "mine.yaml"
    custom.write_text(open(load_profile("smoke").source).read().replace("name: smoke", "name: mine"))
    assert run_profile({"profile": "mine", "profile_source": str(custom)}).name == "mine"
    with pytest.raises(FileNotFoundError, match="custom profile 'mine'.*--profile FILE"):
        run_profile({"profile": "mine", "profile_source": str(tmp_path / "gone.yaml")})
    with pytest.raises(FileNotFoundError, match="file not recorded"):
        run_profile({"profile": "mine"})


def test_initial_weights_do_not_depend_on_random_numbers_drawn_while_loading_the_features(smoke, monkeypatch):
    # computing uncached features draws random numbers; a run must start from the same
    # weights either way, or a run killed after that could never resume (frozen weights differ)
    import safetensors.torch
    import torch

    import macm_core.runs as runs

    def weights():
        folder = runs.train_variant(smoke, "baseline-fine", seed=5, force=True, progress=False)
        return safetensors.torch.load_file(folder / "model.safetensors")

    plain = weights()
    original = runs.split_inputs

    def drawing(*args, **kwargs):
        out = original(*args, **kwargs)
        torch.rand(1000), np.random.rand(10)
        return out

    monkeypatch.setattr(runs, "split_inputs", drawing)
    drawn = weights()
    assert plain.keys() == drawn.keys() and all(torch.equal(plain[k], drawn[k]) for k in plain)


def test_lanes_of_runs_are_balanced_by_their_estimated_cost(smoke):
    """Parallel training splits the runs into lanes of about equal estimated cost (the
    best split for two lanes); coarse captions and visual-only prompts are cheaper."""
    from itertools import product

    from macm_core.runs import balanced_lanes, load_caption_tokenizer, run_costs

    costs = [141, 141, 141, 136, 129, 129, 129, 105, 92, 92, 92]  # the cpu profile's run times (s)
    lanes = balanced_lanes(costs, 2)
    assert sorted(i for lane in lanes for i in lane) == list(range(len(costs)))
    best = min(max(sum(c for c, a in zip(costs, mask) if a), sum(c for c, a in zip(costs, mask) if not a))
               for mask in product((0, 1), repeat=len(costs)))
    assert max(sum(costs[i] for i in lane) for lane in lanes) == best == 664
    assert all(lane == sorted(lane, key=lambda i: -costs[i]) for lane in lanes)   # costly runs first
    three = balanced_lanes([5, 4, 3, 3, 1], 3)                                     # longest first, least loaded
    assert three == [[0], [1, 4], [2, 3]]
    assert balanced_lanes([2.0], 4) == [[0]]
    with pytest.raises(ValueError, match="lanes must be >= 1"):
        balanced_lanes([1.0], 0)
    tokenizer = load_caption_tokenizer(smoke, progress=False)
    cost = run_costs(smoke, ["baseline-coarse", "baseline-fine", "macm-coarse", "macm"], tokenizer)
    assert cost["baseline-coarse"] < cost["baseline-fine"] < cost["macm"]
    assert cost["baseline-coarse"] < cost["macm-coarse"] < cost["macm"]
