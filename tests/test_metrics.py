"""Metrics and the report: weights on one scale, test NLL beside validation NLL."""

import pytest

from avemotion import metrics


def test_weights_are_normalised_to_sum_to_one():
    # uncertainty's exp(-s) and GradNorm's / DWA's weights (summing to 2) read on the paper's scale
    assert metrics.normalised_weights({"emotion": 1.5, "gender": 0.5}) == pytest.approx({"emotion": 0.75, "gender": 0.25})
    assert metrics.normalised_weights({"emotion": 0.3623, "gender": 0.6377}) == pytest.approx({"emotion": 0.3623, "gender": 0.6377})
    with pytest.raises(ValueError, match="positive sum"):
        metrics.normalised_weights({"emotion": 0.0, "gender": 0.0})
