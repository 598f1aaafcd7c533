"""Point data/corpus at this machine's IEMOCAP_full_release (`make corpus ROOT=...`).

The link is per machine and ignored by git; the pipeline depends on the corpus' content
through it, so teammates with identical copies at different paths share one cache.

    python pipeline/link_corpus.py /data/IEMOCAP_full_release
    python pipeline/link_corpus.py data/demo/IEMOCAP_full_release     # back to the demo
"""

import argparse
import os

from avemotion import cli, manifest
from avemotion.corpus import CorpusError


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", nargs="?", default=manifest.DEMO_CORPUS, help="the IEMOCAP_full_release folder")
    ap.add_argument("--link", default=manifest.CORPUS_LINK)
    args = ap.parse_args()
    with cli.user_errors("corpus", CorpusError):
        link = manifest.link_corpus(args.root, args.link)
    print(f"{link} -> {os.readlink(link)}")


if __name__ == "__main__":
    main()
