"""The comparison statistics on synthetic predictions whose truth is known."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from avemotion import stats
from avemotion.stats import CompareConfig

REPS = 200


def test_vectorised_metrics_agree_with_sklearn():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(2, 40))
        t, p = rng.integers(0, 4, n), rng.integers(0, 4, n)
        if rng.random() < 0.3:
            t[t == 2] = 1  # a class absent from the truth
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert stats.balanced_accuracy(t, p, n_classes=4) == pytest.approx(balanced_accuracy_score(t, p))
        assert stats.macro_f1(t, p, n_classes=4) == pytest.approx(f1_score(t, p, labels=[0, 1, 2, 3], average="macro", zero_division=0))
        assert stats.accuracy(t, p) == pytest.approx(accuracy_score(t, p))


def predictions(rng, n, p_a, p_b, classes=4):
    """Truth and two classifiers, each right with its own probability, independently."""
    truth = rng.integers(0, classes, n)
    wrong = lambda: (truth + rng.integers(1, classes, n)) % classes
    a = np.where(rng.random(n) < p_a, truth, wrong())
    b = np.where(rng.random(n) < p_b, truth, wrong())
    return truth, a, b


def test_utterance_level_interval_covers_the_true_difference_and_p_is_calibrated():
    rng = np.random.default_rng(1)
    covered = false_alarms = 0
    for rep in range(REPS):
        truth, a, b = predictions(rng, 300, 0.70, 0.64)
        r = stats.paired_utterances(truth, a, b, stats.accuracy, resamples=500, seed=rep)
        covered += r["ci95"][0] <= 0.06 <= r["ci95"][1]
        truth, a, b = predictions(rng, 300, 0.67, 0.67)
        false_alarms += stats.paired_utterances(truth, a, b, stats.accuracy, resamples=500, seed=rep)["p"] < 0.05
    assert 0.90 * REPS <= covered <= 0.99 * REPS
    assert false_alarms <= 0.10 * REPS


def test_a_planted_difference_is_detected_at_both_levels():
    rng = np.random.default_rng(2)
    truth, a, b = predictions(rng, 300, 0.80, 0.60)
    r = stats.paired_utterances(truth, a, b, stats.accuracy, resamples=2000)
    assert r["p"] < 0.01 and r["ci95"][0] > 0.05
    runs = stats.paired_runs(rng.normal(0.2, 0.02, 8))
    assert runs["exact"] and runs["p"] == pytest.approx(2 / 2**8)  # all eight differences positive
    assert stats.verdict(r["diff"], r["p"], higher_is_better=True, alpha=0.05) == "better"
    assert stats.verdict(-r["diff"], r["p"], higher_is_better=True, alpha=0.05) == "worse"
    assert stats.verdict(r["diff"], r["p"], higher_is_better=False, alpha=0.05) == "worse"  # e.g. NLL went up


def test_run_level_t_interval_covers_and_the_sign_flip_test_is_calibrated():
    rng = np.random.default_rng(3)
    covered = false_alarms = 0
    for _ in range(REPS):
        d = rng.normal(0.03, 0.05, 10)
        r = stats.paired_runs(d)
        covered += r["ci95"][0] <= 0.03 <= r["ci95"][1]
        false_alarms += stats.paired_runs(rng.normal(0, 0.05, 10))["p"] < 0.05
    assert 0.90 * REPS <= covered <= 0.99 * REPS
    assert false_alarms <= 0.10 * REPS


def test_few_runs_give_no_interval_and_cannot_decide_alone():
    one = stats.describe([0.7])
    assert one["sd"] is None and one["ci95"] is None
    single = stats.paired_runs([0.02])
    assert single["diff"] == 0.02 and single["p"] is None and single["ci95"] is None
    assert stats.verdict(single["diff"], single["p"], True, 0.05) == "no detectable difference"
    assert stats.paired_runs([0.01, 0.02, 0.03, 0.04, 0.05])["p"] == pytest.approx(0.0625)
    assert stats.choose_test(5, 0.05) == "utterances" and stats.choose_test(6, 0.05) == "runs"
    assert stats.choose_test(5, 0.05, "runs") == "runs"


def test_compare_pair_reports_both_levels_and_the_chosen_verdict():
    rng = np.random.default_rng(4)
    runs_a, runs_b, pooled = {}, {}, {}
    truths, pas, pbs = [], [], []
    for k in range(5):
        truth, a, b = predictions(rng, 120, 0.85, 0.55)
        runs_a[f"r{k}"] = {"emotion_wa": stats.accuracy(truth, a)}
        runs_b[f"r{k}"] = {"emotion_wa": stats.accuracy(truth, b)}
        truths.append(truth), pas.append(a), pbs.append(b)
    pooled["emotion_wa"] = (np.concatenate(truths), np.concatenate(pas), np.concatenate(pbs))
    out = stats.compare_pair(runs_a, runs_b, pooled, {"emotion_wa": 4}, CompareConfig(resamples=1000))
    assert out["runs"] == 5 and out["decided_by"] == "utterances"
    wa = out["emotion_wa"]
    assert wa["verdict"] == "better" and wa["p"] == wa["utterances"]["p"] < 0.01
    assert wa["runs"]["p"] == pytest.approx(0.0625) and wa["runs"]["ci95"][0] > 0  # the runs agree but cannot reach 0.05
    again = stats.compare_pair(runs_a, runs_b, pooled, {"emotion_wa": 4}, CompareConfig(resamples=1000))
    assert again == out  # seeded resampling: the same inputs give the same numbers
    forced = stats.compare_pair(runs_a, runs_b, pooled, {"emotion_wa": 4}, CompareConfig(resamples=1000, test="runs"))
    assert forced["emotion_wa"]["verdict"] == "no detectable difference"
