"""Stage `shard`: join labels, fixed-length audio and face crops into Parquet shards.

Writes data/shards/shard-00000.parquet, ... and data/shards/manifest.json (counts by
session, class and gender; tensor shapes; the params used; and the
reconciliation selected = sharded + rejected, which must hold), plus
data/shards/rejects.parquet with every utterance that did not make it, by stage.
The shards hold no split: runs (params `split`, `runs`) choose their rows at training time.
"""

import argparse
import functools
import json
from pathlib import Path

import pyarrow.parquet as pq
from tqdm import tqdm

from avemotion import audio, cli, files, sections, shards
from avemotion.config import as_dict, build
from avemotion.corpus import SAMPLE_RATE, CorpusConfig
from avemotion.faces import FacesConfig
from avemotion.labels import LabelsConfig
from avemotion.video import VideoConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--corpus", default="data/corpus", type=Path, help="the corpus (a link, `make corpus`)")
    ap.add_argument("--interim", default="data/interim", type=Path)
    ap.add_argument("--faces", default="data/interim/faces", type=Path)
    ap.add_argument("--out", default="data/shards", type=Path)
    args = ap.parse_args()
    cli.setup_logging()
    # the manifest is written last and marks the directory complete; drop an old one first
    (args.out / "manifest.json").unlink(missing_ok=True)
    with cli.user_errors("shard", ValueError):
        params = sections.load_checked(args.params)
        corpus_cfg = build(CorpusConfig, params, "corpus")
        labels_cfg = build(LabelsConfig, params, "labels")
        audio_cfg = build(audio.AudioConfig, params, "audio")
        video_cfg = build(VideoConfig, params, "video")
        faces_cfg = build(FacesConfig, params, "faces")
        shards_cfg = build(shards.ShardsConfig, params, "shards")
        rejects = []
        for path in (args.interim / "rejects-extract.parquet", args.interim / "rejects-label.parquet", args.faces / "rejects.parquet"):
            rejects += pq.read_table(path).to_pylist()
        inputs = shards.ShardInputs(
            utterances=pq.read_table(args.interim / "utterances.parquet"),
            labels=pq.read_table(args.interim / "labels.parquet"),
            faces_dir=args.faces,
            rejects=rejects,
            n_selected=json.loads((args.interim / "extract-summary.json").read_text())["selected"],
        )
        samples = round(audio_cfg.seconds * SAMPLE_RATE)
        manifest, all_rejects = shards.build_shards(
            inputs,
            args.out,
            corpus_root=args.corpus,
            load_audio=functools.partial(audio.load_fixed, seconds=audio_cfg.seconds, sample_rate=SAMPLE_RATE),
            classes=labels_cfg.classes,
            steps=round(audio_cfg.seconds * video_cfg.fps),
            out_px=faces_cfg.out_px,
            audio_samples=samples,
            shards_cfg=shards_cfg,
            params={k: as_dict(v) for k, v in dict(corpus=corpus_cfg, labels=labels_cfg, audio=audio_cfg, video=video_cfg, faces=faces_cfg, shards=shards_cfg).items()},
            progress=lambda xs: tqdm(xs, desc="shard", unit="session"),
        )
        files.write_rejects(all_rejects, args.out / "rejects.parquet")
        files.write_json(manifest, args.out / "manifest.json")
    cli.print_summary("shard", {"files": manifest["files"], "counts": {k: manifest["counts"][k] for k in ("utterances", "session", "emotion")}, "reconciliation": manifest["reconciliation"]})


if __name__ == "__main__":
    main()
