"""scripts/gpu_check.py --tiny: the paper-scale check's code path, small, on the CPU."""
import importlib.util
import json
from pathlib import Path

from macm_core.bench.latency import CUMULATIVE_TERMS, variants
from macm_core.decoding import DECODERS


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
    latency = [r for r in rows if r["check"] == "latency"]
    # every decoder, and MSD once per cumulative term set (L2, +L1, +L3, +L4, +L5)
    assert [r["label"] for r in latency] == [v.label for v in variants()]
    assert {r["decoder"] for r in latency} == set(DECODERS)
    assert [r["terms"] for r in latency if r["decoder"] == "msd"] == [list(t) for t in CUMULATIVE_TERMS]
    assert all(r["tokens"] == 8 and r["captions"] == 4 and r["weights"] == "random" for r in latency)
    assert lines[-2].startswith("latency (") and "MSD-all / greedy-visual = " in lines[-2]
    assert lines[-1].startswith("gpu check (tiny, CPU): ") and "MSD / greedy-visual = " in lines[-1]
