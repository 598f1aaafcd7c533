"""Stage `demo`: generate the IEMOCAP-format demo corpus (data/demo/IEMOCAP_full_release).

The tree has IEMOCAP's exact layout and file formats, with synthetic voices, real faces
from scikit-image's LFW subset and drawn ratings, so that the pipeline runs end to end
where the licensed corpus is absent. See avemotion.demo for what it contains.
"""

import argparse
from pathlib import Path

from tqdm import tqdm

from avemotion import cli, demo, sections
from avemotion.config import build


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", default="data/demo/IEMOCAP_full_release", type=Path)
    args = ap.parse_args()
    cli.setup_logging()
    with cli.user_errors("demo"):
        cfg = build(demo.DemoConfig, sections.load_checked(args.params), "demo")
    # OSError: a full disk or a file-size limit while writing the corpus (the error names the file)
    with cli.user_errors("demo", OSError), tqdm(total=len(demo.dialog_names(cfg)), desc="demo", unit="dialog") as bar:
        summary = demo.write_demo_corpus(args.out, cfg, progress=lambda name: bar.update())
    cli.print_summary("demo", summary)


if __name__ == "__main__":
    main()
