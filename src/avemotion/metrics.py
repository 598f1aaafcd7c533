"""Per-run metrics (sklearn.metrics), the paper's Table 1 and task weights on one scale.

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
