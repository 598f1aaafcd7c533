"""Stage `train@<variant>`: train one variant of params.yaml `variants` on the shards.

Writes results/variants/<variant>/: checkpoints/ (last.pt, best.pt), curves.csv (per-epoch
joint loss, per-task NLL and task weights), predictions.csv (test set) and
metrics.json. Run several processes with `torchrun --nproc_per_node N pipeline/train.py`.
"""

import argparse
from pathlib import Path

from avemotion import cli, training
from avemotion.config import build, load_params
from avemotion.corpus import SAMPLE_RATE
from avemotion.faces import FacesConfig
from avemotion.labels import LabelsConfig
from avemotion.model import ModelConfig
from avemotion.audio import AudioConfig
from avemotion.shards import ShardDataset
from avemotion.video import VideoConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--variant", required=True)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--shards", default="data/shards", type=Path)
    ap.add_argument("--out", default="results/variants", type=Path)
    args = ap.parse_args()
    cli.setup_logging()
    with cli.user_errors("train", training.TrainError, FileNotFoundError):
        params = load_params(args.params)
        variants = training.build_variants(params)
        if args.variant not in variants:
            raise training.TrainError(f"unknown variant {args.variant!r}; params.yaml variants: {', '.join(variants)}")
        audio_cfg = build(AudioConfig, params, "audio")
        video_cfg = build(VideoConfig, params, "video")
        expected = {
            "classes": list(build(LabelsConfig, params, "labels").classes),
            "steps": round(audio_cfg.seconds * video_cfg.fps),
            "out_px": build(FacesConfig, params, "faces").out_px,
            "audio_samples": round(audio_cfg.seconds * SAMPLE_RATE),
        }
        training.check_shards(ShardDataset(args.shards, "train", ("audio",)).meta, expected, args.shards)
        result = training.fit(
            args.shards,
            args.out / args.variant,
            args.variant,
            variants[args.variant],
            build(ModelConfig, params, "model"),
            build(training.TrainConfig, params, "train"),
        )
    if result is not None:
        cli.print_summary(f"train@{args.variant}", {k: result[k] for k in ("weights", "val", "test", "n", "best_epoch")})


if __name__ == "__main__":
    main()
