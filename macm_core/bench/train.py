"""``macm bench train``: training throughput and peak memory of a profile's model.

The profile's model (frozen encoder, projectors, decoder) trains for a fixed number of
stage-2 steps on the training split's captions and QA, with pathway dropout, through the
same ``train.trainer.train`` as ``macm train``; the features are random arrays of the
cached features' shape, so the benchmark needs no feature extraction.  One JSON object
per stage, then a summary line with samples/s and the process's peak RSS.

Stage 2 also runs with float32 products and with bfloat16 products (``precision``; the
profile's ``train.matmul_dtype`` where it sets one, else bfloat16 where the CPU has
bfloat16 instructions), the two alternated ``rounds`` times in the same process: a JSON
object per run, then a line with the ratio of their median rates.  It is one process;
the book trains ``train.parallel_runs`` runs at once, where the gain can differ (on the
2-core AMD EPYC of this project: 1.18-1.31x alone, about 1.03x two at a time).
"""
from __future__ import annotations

import json
import resource
import tempfile
from typing import Callable

import numpy as np
import torch

from ..config import load_profile
from ..determinism import set_determinism
from ..precision import bfloat16_matmul_is_native


def peak_rss_mib() -> float:
    """The process's peak resident memory so far, MiB (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_train(profile: str = "cpu", *, steps: int = 30, threads: int = 1, rounds: int = 3,
                emit: Callable[[str], None] = print) -> dict:
    from ..data.benchmark import Benchmark
    from ..runs import build_model, load_caption_tokenizer, run_threads
    from ..train.trainer import TrainConfig, train

    config = load_profile(profile)
    set_determinism(config.seed, threads=threads)
    bench = Benchmark.load(config)
    clips = bench.split("train")
    qa = bench.qa[bench.qa["clip_id"].isin(clips.index)]
    tokenizer = load_caption_tokenizer(config)
    model = build_model(config, tokenizer)
    tokens = model.tokens_per_clip(config.features.keyframes)
    width = model.vision_encoder.hidden_size
    generator = torch.Generator().manual_seed(config.seed)
    features = {name: torch.randn(len(clips), tokens, width, generator=generator) for name in ("visual", "motion")}
    rows, products = [], config.train.matmul_dtype
    compared_dtype = products or ("bfloat16" if bfloat16_matmul_is_native() else None)

    def run(stage: int, lora: bool, matmul_dtype: str | None, folder: str) -> dict:
        cfg = TrainConfig(output_dir=folder, stage=stage, steps=steps, batch_size=config.train.batch_size, lr=1e-4,
                          warmup_steps=1, save_every=steps, seed=config.seed, lora=lora,
                          length_groups=config.train.length_groups, matmul_dtype=matmul_dtype, progress=False)
        result = train(model, tokenizer, features, clips, qa, cfg)
        row = {"bench": "train", "profile": config.name, "stage": stage, "steps": steps,
               "batch_size": config.train.batch_size, "threads": threads, "matmul_dtype": matmul_dtype or "weights",
               "samples_per_s": round(result.samples_per_s, 2), "seconds": round(result.seconds, 2),
               "peak_rss_mib": round(peak_rss_mib(), 1), "features": "random, cached shape"}
        emit(json.dumps(row))
        return row

    with tempfile.TemporaryDirectory() as tmp:
        for stage, lora in ((1, False), (2, config.train.lora)):
            rows.append(run(stage, lora, products, f"{tmp}/stage{stage}"))
        if compared_dtype is not None:  # lower-precision products against float32, alternated
            compared = {compared_dtype: [], None: []}
            for r in range(rounds):
                for dtype in (None, compared_dtype):
                    compared[dtype].append(run(2, config.train.lora, dtype, f"{tmp}/compare-{r}-{dtype}"))
            rate = {dtype: float(np.median([row["samples_per_s"] for row in runs])) for dtype, runs in compared.items()}
            emit(f"train ({config.name}, stage 2, one process, {rounds} alternated runs of {steps} steps each): "
                 f"{compared_dtype} products {rate[compared_dtype]:.1f} samples/s, float32 {rate[None]:.1f}: "
                 f"{rate[compared_dtype] / rate[None]:.2f}x")
    stage2 = rows[1]
    total = config.train.stage1_steps * rows[0]["batch_size"] / rows[0]["samples_per_s"] + \
        config.train.stage2_steps * stage2["batch_size"] / stage2["samples_per_s"]
    runs = sum(len(config.train.seeds_for(v)) for v in config.train.variants)  # the book's training runs
    parallel, each = config.train.parallel_runs, run_threads(config)  # as runs.train_runs trains them
    emit(f"train ({config.name}, {threads} thread{'s' * (threads > 1)}): stage 2 {stage2['samples_per_s']:.1f} "
         f"samples/s, peak RSS {stage2['peak_rss_mib']:.0f} MiB; one variant ~{total:.0f} s, "
         f"{runs} runs ~{runs * total / 60:.1f} min one after another"
         + (f" (the profile trains {parallel} at once, each with {each} "
            f"thread{'s' * (each > 1)})" if parallel > 1 else ""))
    return {"rows": rows, "one_run_s": total}
