"""HMI-Synth: splits, determinism, labels vs captions, frames on demand."""
import numpy as np
import pandas as pd
import pytest
import torch

from macm_core.config import load_profile
from macm_core.data.benchmark import Benchmark, benchmark_dir, build_benchmark, clip_seed, split_specs
from macm_core.data.captions import caption_mentions
from macm_core.data.synth_clip import make_clip, render_clip


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    import os

    old = os.environ.get("MACM_CACHE")
    os.environ["MACM_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    try:
        yield Benchmark(build_benchmark("smoke", progress=False))
    finally:
        if old is None:
            os.environ.pop("MACM_CACHE")
        else:
            os.environ["MACM_CACHE"] = old


def test_split_sizes_and_disjoint_seeds(smoke):
    data = load_profile("smoke").data
    counts = smoke.clips["split"].value_counts().to_dict()
    assert counts == {"train": data.num_train, "val": data.num_val, "test": data.num_test,
                      "test_heldout": data.num_heldout}
    assert smoke.clips["seed"].is_unique
    specs = split_specs(data)
    seeds = {s.name: {clip_seed(0, s, i) for i in range(10_000)} for s in specs}
    names = list(seeds)
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            assert not seeds[names[a]] & seeds[names[b]]


def test_held_out_pairs_only_in_the_held_out_split(smoke):
    held = {tuple(p) for p in load_profile("smoke").data.held_out_pairs}
    segments = smoke.segments.merge(smoke.clips[["split"]], left_on="clip_id", right_index=True)
    is_held = segments.apply(lambda s: (s.part, s.action) in held, axis=1)
    assert not is_held[segments["split"] != "test_heldout"].any()
    per_clip = is_held[segments["split"] == "test_heldout"].groupby(segments["clip_id"]).any()
    assert per_clip.all() and len(per_clip) == load_profile("smoke").data.num_heldout


def test_every_caption_names_exactly_its_labelled_parts(smoke):
    for clip_id, row in smoke.clips.iterrows():
        labels = smoke.labels(clip_id)
        expected = {(s if isinstance(s, str) else None, p) for s, p in zip(labels["side"], labels["part"])}
        expected.discard((None, "body"))  # whole-body actions name no part
        mentioned = set(caption_mentions(row["caption"]))
        assert mentioned == expected, (clip_id, row["caption"], labels[["side", "part", "action"]])


def test_rebuild_is_reused_and_identical(smoke, tmp_path, monkeypatch):
    monkeypatch.setenv("MACM_CACHE", str(tmp_path))
    folder = build_benchmark("smoke", progress=False)
    manifest = (folder / "manifest.json").stat().st_mtime_ns
    assert build_benchmark("smoke", progress=False) == folder
    assert (folder / "manifest.json").stat().st_mtime_ns == manifest
    again = Benchmark(folder)
    pd.testing.assert_frame_equal(again.clips, smoke.clips)
    pd.testing.assert_frame_equal(again.qa, smoke.qa)
    np.testing.assert_array_equal(again.arrays["body_pose"], smoke.arrays["body_pose"])


def test_clips_made_by_worker_processes_are_the_clips_made_in_order(smoke, tmp_path, monkeypatch):
    """The build hands the clips out to spawned processes in tasks; smaller tasks than the
    default make the two workers share the smoke benchmark's 48 clips."""
    from macm_core.data import benchmark

    monkeypatch.setattr(benchmark, "CLIPS_PER_TASK", 7)
    benchmark._build(load_profile("smoke"), tmp_path, progress=False, workers=2)
    built = Benchmark(tmp_path)
    for name in ("clips", "segments", "qa"):
        pd.testing.assert_frame_equal(getattr(built, name), getattr(smoke, name))
    for name, values in smoke.arrays.items():
        np.testing.assert_array_equal(built.arrays[name], values, err_msg=name)


def test_render_on_demand_matches_a_fresh_clip(smoke):
    data = load_profile("smoke").data
    clip_id = smoke.split("test").index[0]
    seed = int(smoke.clips.loc[clip_id, "seed"])
    fresh = make_clip(seed, num_frames=data.num_frames, fps=data.fps, image_size=data.image_size,
                      held_out_pairs=data.held_out_pairs, held_out="exclude")
    stored = smoke.render(clip_id)
    direct = render_clip(seed=seed, joints=fresh.joints, radii=fresh.radii, camera=fresh.camera,
                         ball_centres=fresh.ball_centres)
    assert torch.equal(stored.frames, direct.frames)
    assert torch.equal(stored.motion_view, direct.motion_view)
    assert stored.frames.shape == (data.num_frames, data.image_size, data.image_size, 3)
    np.testing.assert_allclose(smoke.joints_2d(clip_id), stored.joints_2d.numpy(), atol=1e-4)
    occluded = smoke.render(clip_id, occlusion=1.0)
    assert occluded.joint_occluded.any() and not torch.equal(occluded.frames, stored.frames)


def test_ball_clips_have_a_ball_in_the_frames(smoke):
    ball_clips = [c for c in smoke.clips.index if smoke.clips.loc[c, "has_ball"]]
    if not ball_clips:
        pytest.skip("no ball clip in the smoke split")
    clip_id = ball_clips[0]
    assert (smoke.render(clip_id).part_mask >= 24).any()


def test_unbuilt_folder_and_unknown_names_are_clear_errors(smoke, tmp_path):
    with pytest.raises(FileNotFoundError, match="run `macm data build"):
        Benchmark(tmp_path)
    with pytest.raises(KeyError, match="no split 'tset'"):
        smoke.split("tset")
    with pytest.raises(KeyError, match="no clip 'nope'"):
        smoke.render("nope")
