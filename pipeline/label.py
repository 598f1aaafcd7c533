"""Stage `label`: majority vote of the external annotators, seeded tie-breaks, class map.

Writes labels.parquet (one row per extracted utterance; `emotion` is null when the
utterance is dropped, `reason` says why) and rejects-label.parquet.
"""

import argparse
from pathlib import Path

import pyarrow.parquet as pq

from avemotion import cli, files, labels, sections
from avemotion.config import build


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--utterances", default="data/interim/utterances.parquet", type=Path)
    ap.add_argument("--out", default="data/interim", type=Path)
    args = ap.parse_args()
    cli.setup_logging()
    with cli.user_errors("label"):
        cfg = build(labels.LabelsConfig, sections.load_checked(args.params), "labels")
        result = labels.label_utterances(pq.read_table(args.utterances), cfg)
        files.write_parquet(result.table, args.out / "labels.parquet")
        files.write_rejects(result.rejects, args.out / "rejects-label.parquet")
        summary = result.summary()
        files.write_json(summary, args.out / "label-summary.json")
    cli.print_summary("label", summary)


if __name__ == "__main__":
    main()
