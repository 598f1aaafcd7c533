"""Stage `train@<variant>-<fold>-<seed>` (or `train-first@...`): one variant in one run.

A run is one (fold, seed) of params.yaml `runs`; its split is computed here from the
shards' index and params `split` (nothing about it is stored in the shards). Writes
results/runs/<variant>/fold<F>-seed<S>/: checkpoints/ (last.pt, best.pt), curves.csv
(per-epoch losses, per-task NLLs and task weights), predictions.csv (test set) and
metrics.json. With params `train.nproc` N > 1 the script starts itself again under
torchrun in N processes (DistributedDataParallel, one per GPU); on several nodes, start
it with torchrun on each node yourself (README, "Several GPUs and nodes").
"""

import argparse
import dataclasses
import logging
import os
import sys
from pathlib import Path

from avemotion import cli, sections, splits, training
from avemotion.audio import AudioConfig
from avemotion.config import load_params
from avemotion.corpus import SAMPLE_RATE
from avemotion.shards import ShardDataset, read_index
from avemotion.video import VideoConfig

log = logging.getLogger("train")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--variant", required=True)
    ap.add_argument("--fold", required=True, type=int, help="under split.method session: the test session")
    ap.add_argument("--seed", required=True, type=int, help="the run's training seed (and random split)")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--shards", default="data/shards", type=Path)
    ap.add_argument("--out", default="results/runs", type=Path)
    args = ap.parse_args()
    cli.setup_logging()
    with cli.user_errors("train", training.TrainError, FileNotFoundError, ValueError):
        params = load_params(args.params)
        cfg = sections.build_all(params)
        variants = cfg["variants"]
        if args.variant not in variants:
            raise training.TrainError(f"unknown variant {args.variant!r}; params.yaml variants: {', '.join(variants)}")
        run = splits.Run(args.fold, args.seed)
        if run not in cfg["runs"].runs_of(args.variant):
            log.warning("run %s of %s is not one of its runs in params.yaml `runs`; the compare stage will not use it",
                        run.id, args.variant)
        audio_cfg: AudioConfig = cfg["audio"]
        video_cfg: VideoConfig = cfg["video"]
        expected = {
            "classes": list(cfg["labels"].classes),
            "steps": round(audio_cfg.seconds * video_cfg.fps),
            "out_px": cfg["faces"].out_px,
            "audio_samples": round(audio_cfg.seconds * SAMPLE_RATE),
        }
        shard_set = ShardDataset(args.shards, [], ("audio",), index=())  # the manifest and meta only
        training.check_shards(shard_set.meta, expected, args.shards)
        training.check_manifest_params(shard_set.manifest, params, args.shards)
        launch = training.torchrun_command(cfg["train"].nproc, sys.argv, os.environ)
        if launch is not None:  # this same command in train.nproc processes, replacing this one
            log.info("train.nproc %d: %s", cfg["train"].nproc, " ".join(launch))
            sys.stdout.flush()
            sys.stderr.flush()
            os.execv(launch[0], launch)
        index = read_index(args.shards)  # once, after any relaunch: the split and fit's readers share it
        result = training.fit(
            args.shards,
            args.out / args.variant / run.id,
            args.variant,
            variants[args.variant],
            cfg["model"],
            dataclasses.replace(cfg["train"], seed=run.seed),
            split=splits.assign(index, cfg["split"], run),
            index=index,
        )
    if result is not None:
        cli.print_summary(f"train@{args.variant} {run.id}", {k: result[k] for k in ("weights", "val", "test", "n", "best_epoch")})


if __name__ == "__main__":
    main()
