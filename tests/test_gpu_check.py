"""scripts/gpu_check.py --tiny: the paper-scale check's code path, small, on the CPU."""
import importlib.util
import json
from pathlib import Path


def test_gpu_check_tiny_runs_training_steps_and_latency(capsys):
    path = Path(__file__).resolve().parent.parent / "scripts" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--tiny"])
    lines = capsys.readouterr().out.strip().splitlines()
    rows = [json.loads(line) for line in lines if line.startswith("{")]
    steps = [r for r in rows if r["check"] == "train step"]
    assert len(steps) == 2 and all(r["loss"] > 0 for r in steps)
    assert {r["decoder"] for r in rows if r["check"] == "latency"} == {"greedy_visual", "msd"}
    assert lines[-1].startswith("gpu check (tiny, CPU): ") and "MSD / greedy-visual = " in lines[-1]
