"""Training throughput with the real shard reader vs the same batches already in memory.

    python bench/train_reader.py                       # data/shards and params.yaml (run `dvc repro shard` first)
    python bench/train_reader.py --shards /path/to/shards --epochs 2

Both runs do the same training steps (same model, weighting, optimizer, batches in the
same order) on the CPU; the only difference is where batches come from: a DataLoader
over `ShardDataset`, or a list of the batches collected beforehand. The reader's cost
is the difference.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from avemotion import training
from avemotion.config import build, load_params
from avemotion.model import ModelConfig, build_model
from avemotion.shards import ShardDataset, read_index
from avemotion.splits import RunsConfig, SplitConfig, assign, ids_by_split
from avemotion.weighting import build_weighting


def steps(model, weighting, opt, batches, modalities) -> tuple[int, float]:
    model.train()
    n, t = 0, time.perf_counter()
    for batch in batches:
        b = training.to_device(batch, torch.device("cpu"), modalities)
        losses, _ = training.task_losses(model, b, contextlib.nullcontext)
        opt.zero_grad(set_to_none=True)
        weighting(losses).loss.backward()
        opt.step()
        n += len(batch["steps"])
    return n, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", type=Path, default=Path("data/shards"))
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--workers", type=int, default=0)
    args = ap.parse_args()
    params = load_params(args.params)
    tcfg = build(training.TrainConfig, params, "train")
    modalities = ("audio", "video")
    runs = build(RunsConfig, params, "runs")
    run = runs.runs()[0]  # the first run's training split
    split = ids_by_split(assign(read_index(args.shards), build(SplitConfig, params, "split"), run))
    ds = ShardDataset(args.shards, split["train"], modalities, shuffle=True, seed=run.seed)
    meta = ds.meta
    seconds = meta["audio_samples"] / 16000
    mcfg = build(ModelConfig, params, "model")
    mcfg = type(mcfg)(**{**mcfg.__dict__, "modalities": modalities, "n_emotions": len(meta["classes"]),
                         "seconds": seconds, "fps": meta["steps"] / seconds})
    results = {}
    for mode in ("reader", "memory"):
        torch.manual_seed(0)
        model = build_model(mcfg)
        weighting = build_weighting("dynamic")
        opt = torch.optim.Adam(list(model.parameters()) + list(weighting.parameters()), lr=tcfg.lr)
        loader = DataLoader(ds, batch_size=tcfg.batch, num_workers=args.workers)
        total_n, total_s = 0, 0.0
        for epoch in range(args.epochs):
            ds.set_epoch(epoch)
            batches = loader if mode == "reader" else list(loader)
            n, s = steps(model, weighting, opt, batches, modalities)
            total_n, total_s = total_n + n, total_s + s
        results[mode] = total_n / total_s
    overhead = results["memory"] / results["reader"] - 1
    print(f"train split: {len(ds)} utterances, batch {tcfg.batch}, {args.epochs} epochs, workers {args.workers}, "
          f"{torch.get_num_threads()} torch threads")
    print(f"| batches from | samples/s |\n|---|---|\n| ShardDataset + DataLoader | {results['reader']:.1f} |\n"
          f"| tensors already in memory | {results['memory']:.1f} |")
    print(f"reader overhead: {100 * overhead:.1f}%")


if __name__ == "__main__":
    main()
