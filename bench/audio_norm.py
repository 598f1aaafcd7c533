"""`model.audio_norm`: per-utterance standardisation vs the authors' fixed gain, over several runs.

    python bench/audio_norm.py --shards data/shards                  # after `make repro`
    python bench/audio_norm.py --shards data/shards --seeds 1 2 3 4 5 --epochs 10

Trains UM-dynamic-A (audio only, where the normalisation matters) with the demo params
of params.yaml once per seed and normalisation, on the same random split per seed (so
the two normalisations are paired by run), and prints each run's test metrics, the
means with t intervals, and the paired comparison of the compare stage
(`avemotion.stats`: run-level sign-flip test, utterance-level permutation test).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
import warnings
from pathlib import Path

from avemotion import sections, splits, stats, training
from avemotion.config import load_params
from avemotion.results import paired_pooled
from avemotion.shards import read_index

NORMS = ("standardize", "paper_code")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", type=Path, default=Path("data/shards"))
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[2018, 2019, 2020, 2021, 2022])
    ap.add_argument("--epochs", type=int, default=10)
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message="no CUDA device")
    cfg = sections.build_all(load_params(args.params))
    variant = training.VariantConfig(modalities=("audio",), weighting="dynamic")
    train_cfg = dataclasses.replace(cfg["train"], epochs=args.epochs)
    index = read_index(args.shards)
    loaded: dict[str, dict[str, dict]] = {n: {} for n in NORMS}
    print("| audio_norm | seed | best epoch | emotion UA | gender accuracy | test NLL emotion | test NLL gender | s |\n|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            run = splits.Run(1, seed)
            split = splits.assign(index, splits.SplitConfig(), run)
            for norm in NORMS:
                t = time.perf_counter()
                out = Path(tmp) / norm / run.id
                m = training.fit(args.shards, out, "UM-dynamic-A", variant, dataclasses.replace(cfg["model"], audio_norm=norm),
                                 dataclasses.replace(train_cfg, seed=seed), progress=False, split=split)
                loaded[norm][run.id] = {"metrics": m, "preds": training.read_predictions(out / "predictions.csv"), "run": run}
                te = m["test"]
                print(f"| {norm} | {seed} | {m['best_epoch']} | {te['emotion_ua']:.3f} | {te['gender_acc']:.3f} "
                      f"| {te['nll_emotion']:.3f} | {te['nll_gender']:.3f} | {time.perf_counter() - t:.0f} |", flush=True)
    names = list(cfg["labels"].classes)
    print("\n| audio_norm | runs | emotion UA [95% CI] | gender accuracy [95% CI] |\n|---|---|---|---|")
    for norm in NORMS:
        ua = stats.describe([r["metrics"]["test"]["emotion_ua"] for r in loaded[norm].values()])
        ga = stats.describe([r["metrics"]["test"]["gender_acc"] for r in loaded[norm].values()])
        fmt = lambda d: f"{d['mean']:.3f} " + (f"[{d['ci95'][0]:.3f}, {d['ci95'][1]:.3f}]" if d["ci95"] else "(one run)")
        print(f"| {norm} | {ua['n']} | {fmt(ua)} | {fmt(ga)} |")
    compare = stats.CompareConfig(pairs=())
    runs_a = {k: v["metrics"]["test"] for k, v in loaded["standardize"].items()}
    runs_b = {k: v["metrics"]["test"] for k, v in loaded["paper_code"].items()}
    pooled = {m: paired_pooled(loaded["standardize"], loaded["paper_code"], m, names) for m in stats.METRICS}
    result = stats.compare_pair(runs_a, runs_b, pooled, {m: len(names) if m.startswith("emotion") else 2 for m in stats.METRICS}, compare)
    print(f"\nstandardize vs paper_code, {result['runs']} paired runs (decided by: {result['decided_by']}):")
    for metric in ("emotion_ua", "gender_acc", "nll_sum"):
        c = result[metric]
        r = c["runs"]
        print(f"- {metric}: difference {c['diff']:+.3f} [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}], p = {c['p']:.3f}: {c['verdict']} "
              f"(runs: mean difference {r['diff']:+.3f}, sign-flip p = {r['p'] if r['p'] is None else round(r['p'], 4)})")


if __name__ == "__main__":
    main()
