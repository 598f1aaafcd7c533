"""Metrics and the comparison report (the paper's Table 1 with more honest columns).

Accuracies come from sklearn.metrics: WA (weighted accuracy) is plain accuracy, UA
(unweighted accuracy) the mean per-class recall (``balanced_accuracy_score``), F1 the
macro average. Validation NLLs are per-utterance means of each task's cross-entropy,
reported separately, as their unweighted sum, and as the weighted joint loss that the
run optimised. Joint losses of different weightings are not comparable with each other:
a learned weighting can lower its own joint loss by moving weight to the easier task.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score

#: The paper's Table 1 (validation NLL; its normalisation is not stated).
#: Note: the paper lists identical weights, 0.3623 / 0.6377, for UM-dynamic-V and
#: MM-dynamic. Two different runs ending on the same four digits is unlikely; it looks
#: like a copy error in the paper. Quoted as printed.
PAPER_TABLE = {
    "UM-dynamic-A": {"weights": (0.3232, 0.6768), "nll": 158.38},
    "UM-dynamic-V": {"weights": (0.3623, 0.6377), "nll": 136.08},
    "MM-static": {"weights": (0.5, 0.5), "nll": 167.10},
    "MM-dynamic": {"weights": (0.3623, 0.6377), "nll": 112.89},
}


def normalised_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """Task weights rescaled to sum to 1, so that every weighting reads on one scale.

    The paper's softmax weights already sum to 1; uncertainty weighting's exp(-s_k) and
    GradNorm's and DWA's weights (summing to the number of tasks) do not. Only the
    ratio between tasks is comparable; metrics.json keeps the raw values.
    """
    total = sum(weights.values())
    if not total > 0:
        raise ValueError(f"task weights must have a positive sum to be normalised, got {dict(weights)}")
    return {t: float(w) / total for t, w in weights.items()}


def emotion_metrics(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> dict:
    labels = list(range(n_classes))
    return {
        "emotion_wa": float(accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        "emotion_ua": float(balanced_accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        "emotion_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)) if len(y_true) else 0.0,
    }


def gender_metrics(y_true: Sequence[int], y_pred: Sequence[int]) -> dict:
    return {"gender_acc": float(accuracy_score(y_true, y_pred)) if len(y_true) else 0.0}


def confusion(y_true: Sequence[int], y_pred: Sequence[int], names: Sequence[str]) -> dict:
    """Confusion matrix as {"labels": names, "matrix": rows = true, columns = predicted}."""
    m = confusion_matrix(y_true, y_pred, labels=list(range(len(names)))) if len(y_true) else np.zeros((len(names),) * 2, int)
    return {"labels": list(names), "matrix": m.astype(int).tolist()}


def _f(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def report(metrics: Mapping[str, dict], split_info: Mapping) -> str:
    """Markdown report: Table 1 beside the unweighted per-task numbers."""
    lines = [
        "# Results",
        "",
        f"Split: **{split_info.get('method', '?')}**; utterances: "
        + ", ".join(f"{k} {v}" for k, v in split_info.get("n", {}).items())
        + ".",
        "",
        "## Table 1, side by side",
        "",
        "| variant | modalities | weighting | w_emotion | w_gender | val NLL emotion | val NLL gender "
        "| val NLL sum | val weighted | paper w_e / w_g | paper NLL |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in metrics.items():
        paper = PAPER_TABLE.get(name)
        w = normalised_weights(m["weights"])
        lines.append(
            f"| {name} | {'+'.join(m['modalities'])} | {m['weighting']} | {_f(w['emotion'], 4)} "
            f"| {_f(w['gender'], 4)} | {_f(m['val']['nll_emotion'])} | {_f(m['val']['nll_gender'])} "
            f"| {_f(m['val']['nll_sum'])} | {_f(m['val']['weighted'])} "
            f"| {'%.4f / %.4f' % paper['weights'] if paper else '-'} | {_f(paper['nll'], 2) if paper else '-'} |"
        )
    lines += [
        "",
        "## Test accuracy",
        "",
        "| variant | test NLL emotion | test NLL gender | emotion WA | emotion UA | emotion macro-F1 | gender accuracy |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in metrics.items():
        t = m["test"]
        lines.append(
            f"| {name} | {_f(t.get('nll_emotion'))} | {_f(t.get('nll_gender'))} | {_f(t['emotion_wa'])} "
            f"| {_f(t['emotion_ua'])} | {_f(t['emotion_f1'])} | {_f(t['gender_acc'])} |"
        )
    lines += [
        "",
        "## How to read this",
        "",
        "- *val NLL emotion / gender* are per-utterance means of each task's cross-entropy on the "
        "validation split; *val NLL sum* is their unweighted sum and is comparable across variants.",
        "- *w_emotion / w_gender* are each run's final weights **normalised to sum to 1** (the "
        "paper's softmax weights already do; uncertainty weighting's exp(-s), GradNorm's and DWA's "
        "weights do not); metrics.json keeps the raw values. The paper's Table 1 gives UM-dynamic-V "
        "and MM-dynamic the same weights, 0.3623 / 0.6377, which looks like a copy error in the paper.",
        "- *val weighted* is w_e * NLL_e + w_g * NLL_g with each run's own final raw weights (without "
        "a weighting's extra terms). **Weighted losses of different weightings are not comparable with "
        "each other**: under `dynamic`, dL/dl_e = w_e * w_g * (L_e - L_g), so the learned weights "
        "drift toward whichever task has the smaller loss, which lowers the weighted loss without "
        "any task getting better.",
        "- The validation NLLs are those of the epoch chosen by the smallest validation NLL sum, so "
        "they are biased low; the *test NLL* columns are the unbiased figures.",
        "- The paper's NLL column is quoted from its Table 1; the paper does not state how it was "
        "normalised (sum or mean, over what), so it is not on the same scale as ours.",
        "- UA is the mean per-class recall (chance 1 / number of classes); WA is plain accuracy.",
        "",
    ]
    return "\n".join(lines)
