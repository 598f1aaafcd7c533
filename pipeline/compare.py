"""Stage `compare`: every variant over every run, with intervals, paired tests and verdicts.

Reads results/runs/<variant>/<run>/metrics.json and predictions.csv for every variant and
run of params.yaml (`variants` x `runs`), recomputes the test metrics from the saved
predictions, and writes results/metrics.json (per variant: means over runs, spread,
pooled metrics), results/comparison.json (per pair of `compare.pairs`: differences,
intervals, p-values, verdicts), results/report.md (the conclusion in words first),
results/runs.csv (the per-run plot), results/curves/<variant>.csv (mean curves) and
results/predictions/<variant>.csv (all runs' test predictions).
"""

import argparse
import json
from pathlib import Path

from tqdm import tqdm

from avemotion import cli, files, results, sections, training
from avemotion.config import load_params


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--runs", default="results/runs", type=Path)
    ap.add_argument("--out", default="results", type=Path)
    ap.add_argument("--shards", default="data/shards", type=Path)
    args = ap.parse_args()
    cli.setup_logging()
    with cli.user_errors("compare", training.TrainError, FileNotFoundError):
        cfg = sections.build_all(load_params(args.params))
        manifest = json.loads((args.shards / "manifest.json").read_text())
        classes = manifest["meta"]["classes"]
        runs = cfg["runs"].runs()
        loaded = results.load_runs(args.runs, list(cfg["variants"]), cfg["runs"], classes)
        summary = {
            name: results.summarise_variant(loaded[name], classes, cfg["compare"])
            for name in tqdm(cfg["variants"], desc="compare: variants", unit="variant")
        }
        comparison = results.compare_pairs(loaded, classes, cfg["compare"])
        curves = {name: results.mean_curves([args.runs / name / r.id / "curves.csv" for r in cfg["runs"].runs_of(name)]) for name in cfg["variants"]}
        files.write_json(summary, args.out / "metrics.json")
        files.write_json(comparison, args.out / "comparison.json")
        files.write_text(results.runs_table(loaded, summary), args.out / "runs.csv")
        for name, text in curves.items():
            files.write_text(text, args.out / "curves" / f"{name}.csv")
            files.write_text(results.pooled_predictions(loaded[name]), args.out / "predictions" / f"{name}.csv")
        text = results.report(summary, comparison, loaded, runs, cfg["split"].method, cfg["compare"], cfg["runs"].first_run)
        files.write_text(text, args.out / "report.md")
    print(text)


if __name__ == "__main__":
    main()
