"""A run's records: ``curves.csv``, ``predictions.csv`` (written and read back), and the
metrics computed from the predictions."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Mapping

from .. import metrics as M
from ..files import write_text
from .config import TASKS, TrainError


#: Columns of curves.csv, one meaning each. `*_weighted` is sum_k w_k L_k on its split
#: (training: each step's weights; validation: the weights at the end of the epoch);
#: `train_extra` is the weighting's own terms on top (uncertainty's log-variances,
#: GradNorm's gradient loss), so train_weighted + train_extra is what was minimised.
CURVE_FIELDS = (
    "epoch", "lr",
    "train_weighted", "train_extra", "train_nll_emotion", "train_nll_gender",
    "val_weighted", "val_nll_emotion", "val_nll_gender", "val_nll_sum",
    "w_emotion", "w_gender",
)



def _write_curves(curves: list[dict], path: Path) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CURVE_FIELDS, lineterminator="\n")
    w.writeheader()
    for row in curves:
        w.writerow({k: (f"{row[k]:.6g}" if isinstance(row[k], float) else row[k]) for k in CURVE_FIELDS})
    write_text(buf.getvalue(), path)


#: predictions.csv: one row per test utterance; `*_nll` is that utterance's cross-entropy
#: (the compare stage's per-utterance paired tests of the NLL use it).
PREDICTION_FIELDS = (
    "utterance_id", "emotion_true", "emotion_pred", "gender_true", "gender_pred",
    "emotion_prob", "gender_prob", "emotion_nll", "gender_nll",
)


def write_predictions(preds: Mapping[str, list], classes: list[str], path: Path) -> None:
    """One row per test utterance, class names (for DVC's confusion plots) and probabilities."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(PREDICTION_FIELDS)
    order = sorted(range(len(preds["utterance_id"])), key=lambda i: preds["utterance_id"][i])
    for i in order:
        w.writerow([
            preds["utterance_id"][i], classes[preds["emotion_true"][i]], classes[preds["emotion_pred"][i]],
            "FM"[preds["gender_true"][i]], "FM"[preds["gender_pred"][i]],
            " ".join(f"{p:.6f}" for p in preds["emotion_prob"][i]), " ".join(f"{p:.6f}" for p in preds["gender_prob"][i]),
            f"{preds['emotion_nll'][i]:.6g}", f"{preds['gender_nll'][i]:.6g}",
        ])
    write_text(buf.getvalue(), path)


def read_predictions(path: Path) -> dict[str, list]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    missing = [k for k in PREDICTION_FIELDS if rows and k not in rows[0]]
    if missing:
        raise TrainError(f"{path}: no column(s) {', '.join(missing)}; written by an older version, retrain that run")
    out = {k: [r[k] for r in rows] for k in ("utterance_id", "emotion_true", "emotion_pred", "gender_true", "gender_pred")}
    out.update({k: [float(r[k]) for r in rows] for k in ("emotion_nll", "gender_nll")})
    return out


def metrics_from_predictions(preds: Mapping[str, list], classes: list[str]) -> dict:
    """Test metrics computed from saved predictions (class names), as the compare stage does."""
    idx = {c: i for i, c in enumerate(classes)}
    e_true = [idx[c] for c in preds["emotion_true"]]
    e_pred = [idx[c] for c in preds["emotion_pred"]]
    out = M.emotion_metrics(e_true, e_pred, len(classes))
    out.update(M.gender_metrics(preds["gender_true"], preds["gender_pred"]))
    for task in TASKS:  # test NLL per task: the mean of the per-utterance cross-entropies
        if f"{task}_nll" in preds:
            values = [float(x) for x in preds[f"{task}_nll"]]
            out[f"nll_{task}"] = sum(values) / len(values) if values else 0.0
    if "nll_emotion" in out and "nll_gender" in out:
        out["nll_sum"] = out["nll_emotion"] + out["nll_gender"]
    return out


def variant_metrics(name, variant, weights, val, preds, classes, n) -> dict:
    named = {
        "utterance_id": preds["utterance_id"],
        "emotion_true": [classes[i] for i in preds["emotion_true"]],
        "emotion_pred": [classes[i] for i in preds["emotion_pred"]],
        "gender_true": ["FM"[i] for i in preds["gender_true"]],
        "gender_pred": ["FM"[i] for i in preds["gender_pred"]],
        "emotion_nll": [float(f"{x:.6g}") for x in preds["emotion_nll"]],
        "gender_nll": [float(f"{x:.6g}") for x in preds["gender_nll"]],
    }
    return {
        "modalities": list(variant.modalities),
        "weighting": variant.weighting,
        "weights": {t: float(weights[t]) for t in TASKS},
        "val": {k: float(v) for k, v in val.items()},
        "test": metrics_from_predictions(named, classes),
        "confusion": {
            "emotion": M.confusion([classes.index(c) for c in named["emotion_true"]], [classes.index(c) for c in named["emotion_pred"]], classes),
            "gender": M.confusion(["FM".index(c) for c in named["gender_true"]], ["FM".index(c) for c in named["gender_pred"]], ["F", "M"]),
        },
        "n": n,
    }
