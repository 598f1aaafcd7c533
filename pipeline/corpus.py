"""Stage `corpus`: the manifest of the corpus files the later stages read.

Reads the corpus through the link data/corpus (`make corpus ROOT=...`) and writes
data/interim/corpus-files.json: path, size and MD5 of every label file, utterance wav
and dialog video of the selected sessions and dialogs, and what was skipped. `extract`,
`faces` and `shard` depend on this file instead of the corpus tree, so where the corpus
lives, macOS sidecars and files of unselected sessions never rerun them.
"""

import argparse
from pathlib import Path

from tqdm import tqdm

from avemotion import cli, files, manifest
from avemotion.config import build, load_params
from avemotion.corpus import CorpusConfig, CorpusError


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--corpus", default=manifest.CORPUS_LINK, type=Path)
    ap.add_argument("--out", default="data/interim/corpus-files.json", type=Path)
    args = ap.parse_args()
    cli.setup_logging()
    with cli.user_errors("corpus", CorpusError):
        cfg = build(CorpusConfig, load_params(args.params), "corpus")

        def progress(paths, total):
            with tqdm(total=total, desc="corpus: hashing", unit="B", unit_scale=True) as bar:
                for p in paths:
                    yield p
                    bar.update((args.corpus / p).stat().st_size)

        result = manifest.build_manifest(args.corpus, cfg, progress=progress)
    files.write_json(result, args.out)
    cli.print_summary("corpus", {k: result[k] for k in ("selection", "counts", "ignored", "rejected_files")})


if __name__ == "__main__":
    main()
