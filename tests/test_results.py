"""The compare stage's library on hand-made runs: means, spread, pairs, report, missing runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avemotion import results, training
from avemotion.splits import Run, RunsConfig
from avemotion.stats import CompareConfig

CLASSES = ["ang", "hap", "neu", "sad"]


def write_run(folder: Path, rng, p_right: float, weighting: str, weights: dict, n: int = 60) -> None:
    """A finished run's metrics.json and predictions.csv, as training.fit writes them."""
    truth = rng.integers(0, 4, n)
    pred = np.where(rng.random(n) < p_right, truth, (truth + 1) % 4)
    gender = rng.integers(0, 2, n)
    preds = {
        "utterance_id": [f"Ses01F_impro01_{'FM'[g]}{i:03d}" for i, g in enumerate(gender)],
        "emotion_true": truth.tolist(), "emotion_pred": pred.tolist(),
        "gender_true": gender.tolist(), "gender_pred": gender.tolist(),
        "emotion_prob": [[0.25] * 4] * n, "gender_prob": [[0.5, 0.5]] * n,
        "emotion_nll": rng.uniform(0.5, 1.5, n).tolist(), "gender_nll": rng.uniform(0, 0.2, n).tolist(),
    }
    folder.mkdir(parents=True)
    training.write_predictions(preds, CLASSES, folder / "predictions.csv")
    m = training.variant_metrics("v", training.VariantConfig(modalities=("audio", "video"), weighting=weighting),
                                 weights, {"nll_emotion": 1.0, "nll_gender": 0.1, "nll_sum": 1.1, "weighted": 0.5},
                                 preds, CLASSES, n={"train": 100, "val": 30, "test": n})
    (folder / "metrics.json").write_text(json.dumps(m))


@pytest.fixture
def runs_dir(tmp_path):
    rng = np.random.default_rng(0)
    cfg = RunsConfig(folds=(1,), seeds=(1, 2, 3), every_run=("MM-static", "MM-dynamic"), first_run=("MM-uncertainty",))
    for run in cfg.runs():
        write_run(tmp_path / "MM-static" / run.id, rng, 0.5, "static", {"emotion": 0.5, "gender": 0.5})
        write_run(tmp_path / "MM-dynamic" / run.id, rng, 0.9, "dynamic", {"emotion": 0.4, "gender": 0.6})
    write_run(tmp_path / "MM-uncertainty" / "fold1-seed1", rng, 0.6, "uncertainty", {"emotion": 1.5, "gender": 0.5})
    return tmp_path, cfg


def test_summary_comparison_and_report(runs_dir):
    path, cfg = runs_dir
    compare = CompareConfig(pairs=(("MM-dynamic", "MM-static"), ("MM-uncertainty", "MM-static")), resamples=500)
    loaded = results.load_runs(path, ["MM-static", "MM-dynamic", "MM-uncertainty"], cfg, CLASSES)
    summary = {name: results.summarise_variant(runs, CLASSES, compare) for name, runs in loaded.items()}
    per_run = [loaded["MM-dynamic"][r.id]["metrics"]["test"]["emotion_ua"] for r in cfg.runs()]
    assert summary["MM-dynamic"]["test"]["emotion_ua"] == pytest.approx(np.mean(per_run))
    assert summary["MM-dynamic"]["spread"]["emotion_ua"]["sd"] == pytest.approx(np.std(per_run, ddof=1))
    assert summary["MM-dynamic"]["runs"] == 3 and summary["MM-dynamic"]["pooled"]["emotion_ua"]["n"] == 180
    assert summary["MM-uncertainty"]["runs"] == 1 and summary["MM-uncertainty"]["spread"]["emotion_ua"]["ci95"] is None
    comparison = results.compare_pairs(loaded, CLASSES, compare)
    dyn = comparison["MM-dynamic vs MM-static"]
    assert dyn["runs"] == 3 and dyn["decided_by"] == "utterances"
    assert dyn["emotion_ua"]["verdict"] == "better" and dyn["gender_acc"]["verdict"] == "no detectable difference"
    assert comparison["MM-uncertainty vs MM-static"]["runs"] == 1
    text = results.report(summary, comparison, loaded, cfg.runs(), "random", compare, cfg.first_run)
    assert text.index("## Conclusion") < text.index("## Table 1")
    assert "**MM-dynamic is better**" in text and "n/a (one run)" in text
    assert "Trained in the first run only" in text and "MM-uncertainty" in text
    # every weighting's weights on one scale: uncertainty's raw 1.5 / 0.5 shows as 0.75 / 0.25
    row = next(line for line in text.splitlines() if line.startswith("| MM-uncertainty | audio+video"))
    assert "| 0.7500 | 0.2500 |" in row
    curves = results.runs_table(loaded, summary).splitlines()
    assert curves[0].startswith("variant_run,") and len(curves) == 1 + 3 + 3 + 1


def test_a_missing_run_names_its_stage(runs_dir):
    path, cfg = runs_dir
    (path / "MM-dynamic" / "fold1-seed2" / "metrics.json").unlink()
    (path / "MM-uncertainty" / "fold1-seed1" / "predictions.csv").unlink()
    with pytest.raises(results.MissingRunError) as err:
        results.load_runs(path, ["MM-static", "MM-dynamic", "MM-uncertainty"], cfg, CLASSES)
    assert "2 run(s) have no results" in str(err.value)
    assert "dvc repro train@MM-dynamic-1-2" in str(err.value) and "dvc repro train-first@MM-uncertainty-1-1" in str(err.value)
    assert Run(1, 2).id == "fold1-seed2"
