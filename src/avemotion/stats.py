"""Statistics of repeated runs: spreads, intervals and paired tests, all on scipy.stats.

Two units of evidence, both reported:

- **runs** (folds x seeds): each run is one independent training and test. Per variant,
  a metric's mean over runs, its standard deviation and a Student-t 95% interval. Paired
  comparisons use the per-run differences (the same fold and seed for both variants): a
  t interval and an exact sign-flip permutation test (every sign pattern, `scipy.stats.
  permutation_test`). With n runs the smallest two-sided p-value the sign-flip test can
  give is 2 / 2**n (0.0625 at five runs), so fewer than six runs can never reach 0.05.
- **utterances**: the runs' test predictions pooled (under leave-one-session-out with one
  seed every utterance is predicted exactly once). Per variant, a bootstrap 95% interval
  over utterances (`scipy.stats.bootstrap`); paired comparisons resample (run, utterance)
  pairs predicted by both variants for the interval, and a paired permutation test
  (swapping the two variants' predictions of an utterance) gives the p-value. This treats
  the trained models as fixed, so it ignores the training noise that the run level sees.

`compare.test: auto` decides each verdict by the run-level test when the runs are enough
to reach the level, and by the utterance-level test otherwise; the report says which.

The metric functions below are vectorised over resamples (axis -1 is the utterance axis)
and agree with sklearn.metrics (tested).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Literal, Mapping, Sequence

import numpy as np
from scipy import stats as st

#: metric -> (needs class labels, higher is better)
METRICS: dict[str, tuple[bool, bool]] = {
    "emotion_ua": (True, True),
    "emotion_wa": (True, True),
    "emotion_f1": (True, True),
    "gender_acc": (True, True),
    "nll_emotion": (False, False),
    "nll_gender": (False, False),
    "nll_sum": (False, False),
}
VERDICTS = ("better", "worse", "no detectable difference")


@dataclasses.dataclass(frozen=True)
class CompareConfig:
    """params.yaml `compare`: the paired comparisons and their statistics."""

    pairs: tuple[tuple[str, str], ...] = (("MM-dynamic", "MM-static"), ("MM-uncertainty", "MM-static"))
    confidence: float = 0.95
    test: Literal["auto", "runs", "utterances"] = "auto"
    resamples: int = 4000  # bootstrap and permutation resamples (utterance level)
    seed: int = 0  # of the resampling, so that equal results give equal bytes

    def validate(self, where: str = "compare") -> None:
        from .config import ParamsError

        if not 0.5 < self.confidence < 1:
            raise ParamsError(f"params: '{where}.confidence' must be between 0.5 and 1, got {self.confidence}")
        if self.resamples < 100:
            raise ParamsError(f"params: '{where}.resamples' must be at least 100, got {self.resamples}")
        for a, b in self.pairs:
            if a == b:
                raise ParamsError(f"params: '{where}.pairs' compares {a} with itself")

    def check_variants(self, variants: Sequence[str], where: str = "compare") -> None:
        from .config import ParamsError

        for a, b in self.pairs:
            for v in (a, b):
                if v not in variants:
                    raise ParamsError(
                        f"params: '{where}.pairs' names variant {v!r}, which is not in 'variants' "
                        f"({', '.join(variants)})"
                    )


# ----------------------------------------------------------------------------- metrics


def accuracy(y_true: np.ndarray, y_pred: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(y_true == y_pred, axis=axis)


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, axis: int = -1, n_classes: int | None = None) -> np.ndarray:
    """Mean recall over the classes present in y_true (sklearn's balanced_accuracy_score)."""
    y_true, y_pred = np.moveaxis(y_true, axis, -1), np.moveaxis(y_pred, axis, -1)
    k = n_classes or int(max(y_true.max(), y_pred.max())) + 1
    recalls = []
    for c in range(k):
        is_c = y_true == c
        n = is_c.sum(-1)
        hit = (is_c & (y_pred == c)).sum(-1)
        recalls.append(np.where(n > 0, hit / np.maximum(n, 1), np.nan))
    return np.nanmean(np.stack(recalls), axis=0)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, axis: int = -1, n_classes: int | None = None) -> np.ndarray:
    """Macro-averaged F1 over all classes, 0 where undefined (sklearn, zero_division=0)."""
    y_true, y_pred = np.moveaxis(y_true, axis, -1), np.moveaxis(y_pred, axis, -1)
    k = n_classes or int(max(y_true.max(), y_pred.max())) + 1
    scores = []
    for c in range(k):
        t, p = y_true == c, y_pred == c
        tp = (t & p).sum(-1)
        denom = t.sum(-1) + p.sum(-1)
        scores.append(np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0))
    return np.mean(np.stack(scores), axis=0)


def mean_value(_: np.ndarray, values: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(values, axis=axis)


def metric_function(metric: str, n_classes: int) -> Callable[[np.ndarray, np.ndarray, int], np.ndarray]:
    """f(truth, prediction, axis) for a METRICS name; NLL metrics take per-utterance NLLs as predictions."""
    if metric == "emotion_ua":
        return lambda t, p, axis=-1: balanced_accuracy(t, p, axis, n_classes)
    if metric == "emotion_f1":
        return lambda t, p, axis=-1: macro_f1(t, p, axis, n_classes)
    if metric in ("emotion_wa", "gender_acc"):
        return accuracy
    if metric in METRICS:
        return mean_value
    raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")


# ----------------------------------------------------------------------------- runs


def describe(values: Sequence[float], confidence: float = 0.95) -> dict:
    """Mean, sample standard deviation and a Student-t interval of the mean.

    With fewer than two values there is no spread: ``sd`` and ``ci95`` are None (the report
    says so rather than printing a zero-width interval).
    """
    x = np.asarray(values, dtype=float)
    n = len(x)
    out = {"n": n, "mean": float(x.mean()) if n else math.nan, "sd": None, "ci95": None}
    if n >= 2:
        sd = float(x.std(ddof=1))
        out["sd"] = sd
        if sd == 0:
            out["ci95"] = [out["mean"], out["mean"]]
        else:
            lo, hi = st.t.interval(confidence, df=n - 1, loc=x.mean(), scale=st.sem(x))
            out["ci95"] = [float(lo), float(hi)]
    return out


def sign_flip_p_min(n: int) -> float:
    """Smallest two-sided p-value an exact sign-flip test over n pairs can give."""
    return min(1.0, 2.0 / 2**n) if n else 1.0


def paired_runs(diffs: Sequence[float], confidence: float = 0.95, resamples: int = 100_000, seed: int = 0) -> dict:
    """Per-run differences A - B: mean, sd, t interval, exact sign-flip permutation p."""
    d = np.asarray(diffs, dtype=float)
    out = describe(d, confidence)
    out = {"n": out["n"], "diff": out["mean"], "sd": out["sd"], "ci95": out["ci95"], "p": None, "p_min": sign_flip_p_min(len(d))}
    if len(d) >= 2:  # one difference has no distribution to test against
        if np.all(d == 0):
            out["p"] = 1.0
        else:
            exact = 2 ** len(d) <= resamples
            res = st.permutation_test(
                (d,), lambda x, axis=-1: np.mean(x, axis=axis), permutation_type="samples",
                n_resamples=np.inf if exact else resamples, alternative="two-sided", vectorized=True,
                rng=np.random.default_rng(seed),
            )
            out["p"] = float(res.pvalue)
            out["exact"] = exact
    return out


# ----------------------------------------------------------------------------- utterances


def bootstrap_metric(
    truth: np.ndarray, pred: np.ndarray, metric: Callable, confidence: float = 0.95, resamples: int = 4000, seed: int = 0,
) -> dict:
    """A metric on pooled predictions with a percentile bootstrap interval over utterances."""
    truth, pred = np.asarray(truth), np.asarray(pred)
    value = float(metric(truth, pred))
    if len(truth) < 2:
        return {"n": len(truth), "value": value, "ci95": None}
    res = st.bootstrap(
        (truth, pred), lambda t, p, axis=-1: metric(t, p, axis), paired=True, vectorized=True,
        n_resamples=resamples, confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed),
    )
    return {"n": len(truth), "value": value, "ci95": _interval(res.confidence_interval, value)}


def paired_utterances(
    truth: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, metric: Callable,
    confidence: float = 0.95, resamples: int = 4000, seed: int = 0,
) -> dict:
    """metric(A) - metric(B) on the same utterances: bootstrap interval, permutation p.

    The interval resamples utterances (pairs kept together); the p-value comes from a
    paired permutation test that swaps A's and B's prediction of each utterance at random,
    which is exact in distribution under "the two variants are exchangeable".
    """
    truth, pred_a, pred_b = np.asarray(truth), np.asarray(pred_a), np.asarray(pred_b)
    a, b = float(metric(truth, pred_a)), float(metric(truth, pred_b))
    diff = a - b
    out = {"n": len(truth), "a": a, "b": b, "diff": diff, "ci95": None, "p": None}
    if len(truth) < 2:
        return out
    rng = np.random.default_rng(seed)
    boot = st.bootstrap(
        (truth, pred_a, pred_b), lambda t, a, b, axis=-1: metric(t, a, axis) - metric(t, b, axis),
        paired=True, vectorized=True, n_resamples=resamples, confidence_level=confidence, method="percentile", rng=rng,
    )
    out["ci95"] = _interval(boot.confidence_interval, diff)
    if np.array_equal(pred_a, pred_b):
        out["p"] = 1.0
        return out
    perm = st.permutation_test(
        (pred_a, pred_b), lambda a, b, axis=-1: metric(truth, a, axis) - metric(truth, b, axis),
        permutation_type="samples", n_resamples=resamples, alternative="two-sided", vectorized=True, rng=rng,
    )
    out["p"] = float(perm.pvalue)
    return out


def _interval(ci, value: float) -> list[float]:
    lo, hi = float(ci.low), float(ci.high)
    if math.isnan(lo) or math.isnan(hi):  # a degenerate bootstrap distribution (all resamples equal)
        lo = hi = value
    return [lo, hi]


# ----------------------------------------------------------------------------- verdicts


def verdict(diff: float | None, p: float | None, higher_is_better: bool, alpha: float) -> str:
    if diff is None or p is None or p >= alpha or diff == 0:
        return VERDICTS[2]
    return VERDICTS[0] if (diff > 0) == higher_is_better else VERDICTS[1]


def choose_test(n_runs: int, alpha: float, test: str = "auto") -> str:
    """Which level decides the verdict: the runs where they can reach the level, else utterances."""
    if test != "auto":
        return test
    return "runs" if sign_flip_p_min(n_runs) < alpha else "utterances"


def compare_pair(
    runs_a: Mapping[str, Mapping[str, float]],
    runs_b: Mapping[str, Mapping[str, float]],
    pooled: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    n_classes: Mapping[str, int],
    cfg: CompareConfig,
) -> dict:
    """A vs B over their common runs and pooled common utterances, metric by metric.

    `runs_a`/`runs_b`: run id -> test metrics. `pooled`: metric -> (truth, pred_a, pred_b)
    over the (run, utterance) pairs both predicted. Returns the comparison.json entry.
    """
    common = sorted(set(runs_a) & set(runs_b))
    alpha = 1 - cfg.confidence
    decided_by = choose_test(len(common), alpha, cfg.test)
    out: dict = {"runs": len(common), "decided_by": decided_by}
    for metric, (_, higher) in METRICS.items():
        if not all(metric in runs_a[r] and metric in runs_b[r] for r in common) or metric not in pooled:
            continue
        by_runs = paired_runs([runs_a[r][metric] - runs_b[r][metric] for r in common], cfg.confidence, seed=cfg.seed)
        by_runs["a"] = float(np.mean([runs_a[r][metric] for r in common])) if common else None
        by_runs["b"] = float(np.mean([runs_b[r][metric] for r in common])) if common else None
        truth, pa, pb = pooled[metric]
        fn = metric_function(metric, n_classes.get(metric, 2))
        by_utts = paired_utterances(truth, pa, pb, fn, cfg.confidence, cfg.resamples, cfg.seed)
        chosen = by_runs if decided_by == "runs" else by_utts
        out[metric] = {
            "diff": chosen["diff"], "ci95": chosen["ci95"], "p": chosen["p"],
            "verdict": verdict(chosen["diff"], chosen["p"], higher, alpha),
            "runs": by_runs, "utterances": by_utts,
        }
    return out
