"""Stage `faces`: crop the speaking actor's face from the dialog video, one crop per time step.

Reads the kept utterances (utterances.parquet joined with labels.parquet, emotion not
null) and writes data/interim/faces/Session<N>.parquet (uint8 RGB crops per utterance),
rejects.parquet, summary.json, and a contact sheet per session to data/interim/contact/
to check by eye that the crops are right before training.
"""

import argparse
from pathlib import Path

import pyarrow.parquet as pq
from tqdm import tqdm

from avemotion import cli, faces, sections
from avemotion.audio import AudioConfig
from avemotion.config import build
from avemotion.video import VideoConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--corpus", default="data/corpus", type=Path, help="the corpus (a link, `make corpus`)")
    ap.add_argument("--utterances", default="data/interim/utterances.parquet", type=Path)
    ap.add_argument("--labels", default="data/interim/labels.parquet", type=Path)
    ap.add_argument("--out", default="data/interim/faces", type=Path)
    ap.add_argument("--contact", default="data/interim/contact", type=Path)
    args = ap.parse_args()
    cli.setup_logging()
    with cli.user_errors("faces", faces.DetectorUnavailable, FileNotFoundError):
        params = sections.load_checked(args.params)
        cfg = build(faces.FacesConfig, params, "faces")
        audio_cfg = build(AudioConfig, params, "audio")
        video_cfg = build(VideoConfig, params, "video")
        for path in (args.utterances, args.labels):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: not found; run `dvc repro label` first")
        result = faces.run(
            pq.read_table(args.utterances),
            pq.read_table(args.labels),
            corpus_root=args.corpus,
            out_dir=args.out,
            contact_dir=args.contact,
            cfg=cfg,
            audio=audio_cfg,
            video=video_cfg,
            progress=lambda results, total: tqdm(results, total=total, desc="faces", unit="utt", smoothing=0.1),
        )
    s = result.summary
    cli.print_summary(
        "faces",
        {k: s[k] for k in ("utterances", "cropped", "face_found", "no_face", "rejected", "frames", "utterances_clipped_at_video_end", "files")},
    )


if __name__ == "__main__":
    main()
