import json

import pytest

from macm_core.bench.pipeline import bench_pipeline
from macm_core.cli import main


def test_pipeline_bench_prints_json_lines_then_a_summary(capsys):
    assert main(["bench", "pipeline", "--profile", "smoke", "--clips", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    rows = [json.loads(line) for line in lines[:-1]]
    assert [r["stage"] for r in rows][:3] == [
        "motion generation", "motion + forward kinematics + camera", "render frames + motion view"]
    assert all(r["frames_per_s"] > 0 and r["clips"] == 3 for r in rows)
    assert lines[-1].startswith("pipeline (smoke, 1 thread, 64x64): generation + rendering ")
    # the fit stage runs all the clips in one optimisation (fit_tracks)
    fit = next(r for r in rows if r["stage"] == "SMPL-format fit on keyframes")
    assert fit["clips_per_fit"] == 3 and fit["frames"] == 3 * 8
    assert "motion pathway (pose + fit of 3 clips at once + fitted body) " in lines[-1]
    assert "frames/s target)" in lines[-1]


def test_pipeline_bench_summary_is_consistent():
    out = []
    result = bench_pipeline("smoke", clips=2, fit_batch=1, emit=out.append)
    render = next(r for r in result["rows"] if r["stage"] == "render frames + motion view")
    assert result["summary"]["render_frames_per_s"] == render["frames_per_s"]
    assert result["summary"]["generation_render_frames_per_s"] < render["frames_per_s"]
    stages = {r["stage"]: r for r in result["rows"]}
    assert stages["SMPL-format fit on keyframes"]["clips_per_fit"] == 1
    pathway = 1 / sum(1 / stages[name]["frames_per_s"] for name in (
        "pose (vitpose-tiny) on keyframes", "SMPL-format fit on keyframes",
        "fitted body over the keyframes"))
    assert result["summary"]["motion_pathway_frames_per_s"] == pytest.approx(pathway, rel=0.02)
