"""Stage `extract`: parse the corpus' EmoEvaluation files and check the utterance wavs.

Writes one row per kept utterance of the selected dialogs to utterances.parquet and
every other utterance, with its reason, to rejects-extract.parquet.
"""

import argparse
from pathlib import Path

from tqdm import tqdm

from avemotion import cli, corpus, files, sections
from avemotion.config import build


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--corpus", default="data/corpus", type=Path, help="the corpus (a link, `make corpus`)")
    ap.add_argument("--out", default="data/interim", type=Path)
    args = ap.parse_args()
    cli.setup_logging()
    with cli.user_errors("extract", corpus.CorpusError):
        cfg = build(corpus.CorpusConfig, sections.load_checked(args.params), "corpus")
        result = corpus.extract(args.corpus, cfg, progress=lambda xs: tqdm(xs, desc="extract", unit="file"))
        files.write_parquet(result.table, args.out / "utterances.parquet")
        files.write_rejects(result.rejects, args.out / "rejects-extract.parquet")
        summary = result.summary()
        files.write_json(summary, args.out / "extract-summary.json")
    cli.print_summary("extract", summary)


if __name__ == "__main__":
    main()
