"""One training step (forward + backward + Adam) of the full network, paper and demo sizes.

    python bench/model_step.py                 # both sizes, all three modality variants
    python bench/model_step.py --size demo     # demo only (seconds)
    python bench/model_step.py --device cuda --size paper --batch 8

Paper size: 6 s at 16 kHz, 25 fps (150 steps), 96 x 96 faces, ResNet-50; the
paper's batch size is 1, which is also what 2 CPU cores can afford. Demo size:
3 s, 5 fps (15 steps), 48 x 48 faces, MobileNetV3-small, batch 8; the demo also
compares ResNet-18 (the other small backbone) and the cost of GradNorm's extra
backward passes against a static weighting. Timings: median of --repeats steps
after one warm-up step; every utterance is full length (the worst case).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch
import torch.nn.functional as F

from avemotion.model import ModelConfig, build_model
from avemotion.weighting import build_weighting

PAPER = ModelConfig()
DEMO = dataclasses.replace(PAPER, seconds=3.0, fps=5.0, visual_backbone="mobilenet_v3_small")
SIZES = {"paper": (PAPER, 96, 1), "demo": (DEMO, 48, 8)}
VARIANTS = [("audio", "video"), ("audio",), ("video",)]


def step_time(cfg: ModelConfig, px: int, batch: int, device: torch.device, repeats: int,
              weighting: str = "static") -> float:
    torch.manual_seed(0)
    model = build_model(cfg).to(device).train()
    mix = build_weighting(weighting).to(device)
    opt = torch.optim.Adam([*model.parameters(), *mix.parameters()], lr=1e-4)
    audio = (torch.randn(batch, cfg.n_samples) * 3000).to(torch.int16).to(device)
    faces = torch.randint(0, 256, (batch, cfg.n_steps, px, px, 3), dtype=torch.uint8).to(device)
    steps = torch.full((batch,), cfg.n_steps, device=device)
    y_e = torch.arange(batch, device=device) % cfg.n_emotions
    y_g = torch.arange(batch, device=device) % 2

    def step():
        out = model(audio, faces, steps)
        losses = {"emotion": F.cross_entropy(out["emotion"], y_e), "gender": F.cross_entropy(out["gender"], y_g)}
        loss = mix(losses, shared=model.last_shared_parameters()).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        mix.after_step()

    step()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=["both", "paper", "demo"], default="both")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=None, help="override the batch size of both sizes")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    device = torch.device(args.device)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    sizes = ["paper", "demo"] if args.size == "both" else [args.size]
    print(f"{'size':6} {'backbone':19} {'modalities':12} {'weighting':9} {'batch':>5} {'step s':>8} {'per utt s':>9}")
    for size in sizes:
        cfg, px, batch = SIZES[size]
        batch = args.batch or batch
        runs = [(dataclasses.replace(cfg, modalities=m), "static") for m in VARIANTS]
        if size == "demo":
            runs.append((dataclasses.replace(cfg, visual_backbone="resnet18"), "static"))
            runs.append((cfg, "gradnorm"))
        for run_cfg, weighting in runs:
            t = step_time(run_cfg, px, batch, device, args.repeats, weighting)
            backbone = run_cfg.visual_backbone if "video" in run_cfg.modalities else "-"
            print(f"{size:6} {backbone:19} {'+'.join(run_cfg.modalities):12} {weighting:9} "
                  f"{batch:5d} {t:8.3f} {t / batch:9.3f}", flush=True)


if __name__ == "__main__":
    main()
