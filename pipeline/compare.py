"""Stage `compare`: the paper's Table 1 side by side with honest columns.

Reads results/variants/<variant>/metrics.json and predictions.csv for every variant in
params.yaml, recomputes the test metrics from the saved predictions, and writes
results/metrics.json (DVC metrics) and results/report.md.
"""

import argparse
import json
from pathlib import Path

from avemotion import cli, files, metrics, training
from avemotion.config import load_params


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--variants", default="results/variants", type=Path)
    ap.add_argument("--out", default="results", type=Path)
    ap.add_argument("--shards", default="data/shards", type=Path)
    args = ap.parse_args()
    cli.setup_logging()
    with cli.user_errors("compare", training.TrainError, FileNotFoundError):
        variants = training.build_variants(load_params(args.params))
        manifest = json.loads((args.shards / "manifest.json").read_text())
        classes = manifest["meta"]["classes"]
        table = {}
        for name in variants:
            m = json.loads((args.variants / name / "metrics.json").read_text())
            preds = training.read_predictions(args.variants / name / "predictions.csv")
            m["test"] = training.metrics_from_predictions(preds, classes)
            table[name] = {k: m[k] for k in ("modalities", "weighting", "weights", "val", "test", "n")}
    split = {"method": manifest["split"]["method"], "n": {s: c["utterances"] for s, c in manifest["counts"].items()}}
    files.write_json(table, args.out / "metrics.json")
    files.write_text(metrics.report(table, split), args.out / "report.md")
    print((args.out / "report.md").read_text())


if __name__ == "__main__":
    main()
