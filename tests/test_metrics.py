"""Metrics and the report: weights on one scale, test NLL beside validation NLL."""

import pytest

from avemotion import metrics


def test_weights_are_normalised_to_sum_to_one():
    # uncertainty's exp(-s) and GradNorm's / DWA's weights (summing to 2) read on the paper's scale
    assert metrics.normalised_weights({"emotion": 1.5, "gender": 0.5}) == pytest.approx({"emotion": 0.75, "gender": 0.25})
    assert metrics.normalised_weights({"emotion": 0.3623, "gender": 0.6377}) == pytest.approx({"emotion": 0.3623, "gender": 0.6377})
    with pytest.raises(ValueError, match="positive sum"):
        metrics.normalised_weights({"emotion": 0.0, "gender": 0.0})


def _variant(weighting, weights):
    return {
        "modalities": ["audio", "video"], "weighting": weighting, "weights": weights,
        "val": {"nll_emotion": 1.1, "nll_gender": 0.2, "nll_sum": 1.3, "weighted": 0.9},
        "test": {"nll_emotion": 1.234, "nll_gender": 0.345, "emotion_wa": 0.5, "emotion_ua": 0.5, "emotion_f1": 0.5, "gender_acc": 0.9},
        "n": {"train": 6, "val": 2, "test": 2},
    }


def test_report_shows_normalised_weights_and_the_test_nll():
    table = {"MM-uncertainty": _variant("uncertainty", {"emotion": 3.0, "gender": 1.0})}
    text = metrics.report(table, {"method": "random", "n": {"train": 6}})
    row = next(line for line in text.splitlines() if line.startswith("| MM-uncertainty | audio+video"))
    assert "| 0.7500 | 0.2500 |" in row and "3.0000" not in row
    test_row = next(line for line in text.splitlines() if line.startswith("| MM-uncertainty | 1.234 | 0.345 |"))
    assert test_row
    assert "copy error" in text
