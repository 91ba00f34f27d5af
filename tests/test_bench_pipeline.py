import json

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


def test_pipeline_bench_summary_is_consistent():
    out = []
    result = bench_pipeline("smoke", clips=2, emit=out.append)
    render = next(r for r in result["rows"] if r["stage"] == "render frames + motion view")
    assert result["summary"]["render_frames_per_s"] == render["frames_per_s"]
    assert result["summary"]["generation_render_frames_per_s"] < render["frames_per_s"]
