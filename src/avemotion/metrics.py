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
PAPER_TABLE = {
    "UM-dynamic-A": {"weights": (0.3232, 0.6768), "nll": 158.38},
    "UM-dynamic-V": {"weights": (0.3623, 0.6377), "nll": 136.08},
    "MM-static": {"weights": (0.5, 0.5), "nll": 167.10},
    "MM-dynamic": {"weights": (0.3623, 0.6377), "nll": 112.89},
}


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
        "| val NLL sum | val joint (weighted) | paper w_e / w_g | paper NLL |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in metrics.items():
        paper = PAPER_TABLE.get(name)
        lines.append(
            f"| {name} | {'+'.join(m['modalities'])} | {m['weighting']} | {_f(m['weights']['emotion'], 4)} "
            f"| {_f(m['weights']['gender'], 4)} | {_f(m['val']['nll_emotion'])} | {_f(m['val']['nll_gender'])} "
            f"| {_f(m['val']['nll_sum'])} | {_f(m['val']['joint'])} "
            f"| {'%.4f / %.4f' % paper['weights'] if paper else '-'} | {_f(paper['nll'], 2) if paper else '-'} |"
        )
    lines += [
        "",
        "## Test accuracy",
        "",
        "| variant | emotion WA | emotion UA | emotion macro-F1 | gender accuracy |",
        "|---|---|---|---|---|",
    ]
    for name, m in metrics.items():
        t = m["test"]
        lines.append(
            f"| {name} | {_f(t['emotion_wa'])} | {_f(t['emotion_ua'])} | {_f(t['emotion_f1'])} | {_f(t['gender_acc'])} |"
        )
    lines += [
        "",
        "## How to read this",
        "",
        "- *val NLL emotion / gender* are per-utterance means of each task's cross-entropy on the "
        "validation split; *val NLL sum* is their unweighted sum and is comparable across variants.",
        "- *val joint (weighted)* is the loss each run optimised, w_e * NLL_e + w_g * NLL_g with its "
        "own final weights. **Weighted joint losses of different weightings are not comparable with "
        "each other**: under `dynamic`, dL/dl_e = w_e * w_g * (L_e - L_g), so the learned weights "
        "drift toward whichever task has the smaller loss, which lowers the joint loss without "
        "any task getting better.",
        "- The paper's NLL column is quoted from its Table 1; the paper does not state how it was "
        "normalised (sum or mean, over what), so it is not on the same scale as ours.",
        "- UA is the mean per-class recall (chance 1 / number of classes); WA is plain accuracy.",
        "",
    ]
    return "\n".join(lines)
