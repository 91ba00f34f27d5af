"""GPU check: the paper-scale M-ACM architecture with random weights, a few bf16 training
steps, and the decoders' latency, on one CUDA device.

    python scripts/gpu_check.py            # paper size: Qwen2-7B-sized decoder, SigLIP-so400m-sized encoder
    python scripts/gpu_check.py --tiny     # the same code path, small sizes, on the CPU

Random weights: the point is memory, step time and decoding latency, not captions. The
decoder trains with LoRA (peft) so that the optimizer fits beside a 7B model in bf16.
The latency is ``macm bench latency``'s measurement (``macm_core.bench.latency``): every
decoder and MSD with cumulative term sets (L2, +L1, +L3, +L4, +L5: the paper's Figure 2),
per caption of a fixed length (eos off), median over 20 clips after one warm-up clip, on
random encoder features of the paper's shape (8 keyframes x 6 x 6 SigLIP tokens per
pathway), with the LoRA adapters merged into the decoder.  The whole check took 159 s
on one H100 and 158-204 s on one H200 (build, 4 training steps, latency; peak 32 GiB);
its last run (H200, 2026-11-27): train step 0.19 s, MSD-all / greedy-visual 1.04.
Prints one JSON object per measurement and a summary line.  Needs torch, transformers,
peft, accelerate, einops, pyyaml, numpy (what ``macm_core.model`` and
``macm_core.decoding`` import), nothing else.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from macm_core.bench.latency import bench_latency, random_clip_prompts  # noqa: E402
from macm_core.model.configuration_macm import MACMConfig  # noqa: E402
from macm_core.model.modeling_macm import MACMForConditionalGeneration  # noqa: E402

PAPER = dict(
    decoder=dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                 num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=32768,
                 rope_theta=1000000.0, tie_word_embeddings=False),
    siglip=dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                image_size=384, patch_size=14),
    frames=8, grid=6, batch=2, caption_tokens=64, steps=4, captions=20, new_tokens=32)
TINY = dict(
    decoder=dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                 tie_word_embeddings=False),
    siglip=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                image_size=56, patch_size=14),
    frames=4, grid=2, batch=2, caption_tokens=16, steps=2, captions=4, new_tokens=8)


def emit(**row) -> None:
    print(json.dumps(row), flush=True)


def build(sizes: dict, device: torch.device, folder: Path) -> MACMForConditionalGeneration:
    from transformers import Qwen2Config, SiglipVisionConfig, SiglipVisionModel

    SiglipVisionModel(SiglipVisionConfig(**sizes["siglip"])).save_pretrained(folder / "siglip")
    text = Qwen2Config(**sizes["decoder"], bos_token_id=1, eos_token_id=2, pad_token_id=0)
    config = MACMConfig(vision_config={"name": "siglip", "path": str(folder / "siglip"), "grid": sizes["grid"],
                                       "image_size": sizes["siglip"]["image_size"]},
                        text_config=text, video_token_id=3, motion_token_id=4)
    with torch.device(device):
        model = MACMForConditionalGeneration(config)
    return model.to(device=device, dtype=torch.bfloat16 if device.type == "cuda" else torch.float32)


def prompt_ids(model, sizes: dict, *, video: bool, motion: bool, caption: int) -> torch.Tensor:
    n = model.tokens_per_clip(sizes["frames"])
    ids = [1] + [3] * (n if video else 0) + [4] * (n if motion else 0) + list(range(10, 10 + caption))
    return torch.tensor([ids])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tiny", action="store_true", help="small sizes on the CPU (checks the code path)")
    args = parser.parse_args(argv)
    sizes = TINY if args.tiny else PAPER
    if not args.tiny and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --tiny on a CPU, or on a GPU node")
    device = torch.device("cpu" if args.tiny else "cuda")
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        model = build(sizes, device, Path(tmp))
    params = sum(p.numel() for p in model.parameters())
    emit(check="build", device=str(device), parameters=params, dtype=str(next(model.language_model.parameters()).dtype))

    from peft import LoraConfig, get_peft_model

    model.language_model = get_peft_model(model.language_model, LoraConfig(
        r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    trainable = [p for n, p in model.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    size = sizes["siglip"]["image_size"]
    b, t = sizes["batch"], sizes["frames"]
    ids = prompt_ids(model, sizes, video=True, motion=True, caption=sizes["caption_tokens"]).repeat(b, 1).to(device)
    pixels = torch.rand(b, t, 3, size, size, device=device)
    step_times = []
    for step in range(sizes["steps"]):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out = model(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pixels,
                        motion_pixel_values=pixels, labels=ids)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        step_times.append(time.perf_counter() - start)
        emit(check="train step", step=step, loss=out.loss.item(), seconds=round(step_times[-1], 3),
             sequence=ids.shape[1], batch=b,
             peak_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None)

    # latency: the plain decoder (adapters merged), no autocast: the weights are bf16 on the GPU
    model.language_model = model.language_model.merge_and_unload()
    model.eval()
    optimizer = out = None  # free the training state before timing
    if device.type == "cuda":
        torch.cuda.empty_cache()
    clips = random_clip_prompts(model, sizes["captions"] + 1, keyframes=t, seed=0)
    report = bench_latency(model, clips, max_new_tokens=sizes["new_tokens"], warmup=1,
                           threads=1 if args.tiny else torch.get_num_threads(),
                           info={"check": "latency", "weights": "random",
                                 "prompt_tokens": int(clips[0].visual[0].shape[0])},
                           emit=lambda line: print(line, flush=True))
    print(f"gpu check ({'tiny, CPU' if args.tiny else 'paper size, ' + torch.cuda.get_device_name()}): "
          f"{params / 1e9:.2f} B parameters, train step {statistics.median(step_times):.2f} s, "
          f"MSD / greedy-visual = {report.msd_all_ratio:.2f}"
          + (f", peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if device.type == "cuda" else ""))


if __name__ == "__main__":
    main()
