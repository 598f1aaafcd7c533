"""Check an IEMOCAP tree before a long run (`make check-corpus`); not a DVC stage.

Counts per session and dialog type, label counts under the current `labels` params,
missing or unreadable files, and differences from the full release's numbers, in
seconds (no video decoding). Exits 1 if any file is missing or unreadable.

    python pipeline/check_corpus.py                       # the corpus data/corpus links to
    python pipeline/check_corpus.py --root /data/IEMOCAP_full_release --json report.json
"""

import argparse
import json
import sys
from pathlib import Path

from avemotion import check, cli
from avemotion.config import build, load_params
from avemotion.corpus import CorpusConfig
from avemotion.labels import LabelsConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--root", default="data/corpus", help="the IEMOCAP_full_release folder (default: data/corpus, set by `make corpus`)")
    ap.add_argument("--json", default=None, type=Path, help="also write the full report as JSON")
    args = ap.parse_args()
    with cli.user_errors("check-corpus"):
        params = load_params(args.params)
        corpus_cfg = build(CorpusConfig, params, "corpus")
        labels_cfg = build(LabelsConfig, params, "labels")
    report = check.check_corpus(args.root, labels_cfg, sessions=corpus_cfg.sessions)
    print(check.format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
    sys.exit(1 if report["problems"] else 0)


if __name__ == "__main__":
    main()
