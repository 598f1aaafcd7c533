"""The compare stage's library: every run of every variant gathered, summarised and compared.

Reads ``<runs_dir>/<variant>/<run>/metrics.json`` and ``predictions.csv`` for each variant
and run of params.yaml (a missing run is an error naming the stage that makes it), and
builds:

- per variant (``metrics.json``): test and validation metrics averaged over runs, with
  ``runs`` (how many) and ``spread`` (per test metric: sample ``sd`` and a t ``ci95``),
  and ``pooled``: the metrics of all runs' test predictions together, with a bootstrap
  interval over utterances;
- per pair of ``compare.pairs`` (``comparison.json``): paired differences by run and by
  utterance, p-values and a verdict per metric (see `stats`);
- ``report.md``: the verdicts in words, Table 1 with intervals, the per-run table;
- ``runs.csv``: one row per (variant, run) with its test metrics and the variant's
  interval, for the per-run plot; ``curves/<variant>.csv``: the mean curves over runs;
  ``predictions/<variant>.csv``: all runs' test predictions (the confusion plot).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from . import stats
from .metrics import PAPER_TABLE, normalised_weights
from .splits import Run, RunsConfig
from .training import TASKS, metrics_from_predictions, read_predictions


class MissingRunError(FileNotFoundError):
    """A run that params.yaml asks for has no results yet."""


def load_runs(runs_dir: Path, variants: Sequence[str], runs_cfg: RunsConfig, classes: Sequence[str]) -> dict[str, dict[str, dict]]:
    """variant -> run id -> {"metrics", "preds", "run"}; test metrics recomputed from predictions."""
    missing = []
    out: dict[str, dict[str, dict]] = {}
    for name in variants:
        out[name] = {}
        for run in runs_cfg.runs_of(name):
            folder = runs_dir / name / run.id
            if not (folder / "metrics.json").is_file() or not (folder / "predictions.csv").is_file():
                missing.append((folder, runs_cfg.stage(name, run)))
                continue
            m = json.loads((folder / "metrics.json").read_text())
            preds = read_predictions(folder / "predictions.csv")
            m["test"] = {**m.get("test", {}), **metrics_from_predictions(preds, list(classes))}
            out[name][run.id] = {"metrics": m, "preds": preds, "run": run}
    if missing:
        shown = "\n".join(f"  {folder}: run `dvc repro {stage}`" for folder, stage in missing[:20])
        more = f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else ""
        raise MissingRunError(f"{len(missing)} run(s) have no results yet:\n{shown}{more}\n(or `dvc repro` for everything that is stale)")
    return out


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else math.nan


def summarise_variant(runs: Mapping[str, dict], classes: Sequence[str], cfg: stats.CompareConfig) -> dict:
    """metrics.json's entry for one variant: means over runs, spread, pooled metrics."""
    first = next(iter(runs.values()))["metrics"]
    test_keys = [k for k in first["test"] if all(k in r["metrics"]["test"] for r in runs.values())]
    val_keys = [k for k in first["val"] if all(k in r["metrics"]["val"] for r in runs.values())]
    entry = {
        "modalities": first["modalities"],
        "weighting": first["weighting"],
        "weights": {t: _mean([r["metrics"]["weights"][t] for r in runs.values()]) for t in TASKS},
        "val": {k: _mean([r["metrics"]["val"][k] for r in runs.values()]) for k in val_keys},
        "test": {k: _mean([r["metrics"]["test"][k] for r in runs.values()]) for k in test_keys},
        "runs": len(runs),
        "spread": {},
        "n": {s: int(sum(r["metrics"]["n"][s] for r in runs.values())) for s in first["n"]},
    }
    for k in test_keys:
        d = stats.describe([r["metrics"]["test"][k] for r in runs.values()], cfg.confidence)
        entry["spread"][k] = {"sd": d["sd"], "ci95": d["ci95"]}
    entry["pooled"] = {}
    for metric in stats.METRICS:
        if metric not in test_keys:
            continue
        truth, pred = pooled_arrays(runs, metric, classes)
        fn = stats.metric_function(metric, n_classes(metric, classes))
        entry["pooled"][metric] = stats.bootstrap_metric(truth, pred, fn, cfg.confidence, cfg.resamples, cfg.seed)
    return entry


def n_classes(metric: str, classes: Sequence[str]) -> int:
    return len(classes) if metric.startswith("emotion") else 2


def _columns(preds: Mapping[str, list], metric: str, classes: Sequence[str]) -> tuple[list, list]:
    """(truth, prediction) columns of one run's predictions for a metric, as numbers."""
    if metric.startswith("nll_"):
        if metric == "nll_sum":
            values = [e + g for e, g in zip(preds["emotion_nll"], preds["gender_nll"])]
        else:
            values = preds[f"{metric[4:]}_nll"]
        return [0] * len(values), values
    task = metric.split("_")[0]
    names = list(classes) if task == "emotion" else ["F", "M"]
    idx = {c: i for i, c in enumerate(names)}
    return [idx[c] for c in preds[f"{task}_true"]], [idx[c] for c in preds[f"{task}_pred"]]


def pooled_arrays(runs: Mapping[str, dict], metric: str, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    truth, pred = [], []
    for run_id in sorted(runs):
        t, p = _columns(runs[run_id]["preds"], metric, classes)
        truth += t
        pred += p
    return np.asarray(truth), np.asarray(pred)


def paired_pooled(runs_a: Mapping[str, dict], runs_b: Mapping[str, dict], metric: str, classes: Sequence[str]):
    """(truth, pred_a, pred_b) over the (run, utterance) pairs both variants predicted."""
    truth, pa, pb = [], [], []
    for run_id in sorted(set(runs_a) & set(runs_b)):
        ta, a = _columns(runs_a[run_id]["preds"], metric, classes)
        _, b = _columns(runs_b[run_id]["preds"], metric, classes)
        ids_a = runs_a[run_id]["preds"]["utterance_id"]
        where_b = {u: i for i, u in enumerate(runs_b[run_id]["preds"]["utterance_id"])}
        for i, u in enumerate(ids_a):
            if u in where_b:
                truth.append(ta[i])
                pa.append(a[i])
                pb.append(b[where_b[u]])
    return np.asarray(truth), np.asarray(pa), np.asarray(pb)


def compare_pairs(loaded: Mapping[str, Mapping[str, dict]], classes: Sequence[str], cfg: stats.CompareConfig) -> dict:
    """comparison.json: one entry per pair "A vs B"."""
    out = {}
    for a, b in cfg.pairs:
        runs_a = {k: v["metrics"]["test"] for k, v in loaded[a].items()}
        runs_b = {k: v["metrics"]["test"] for k, v in loaded[b].items()}
        pooled = {m: paired_pooled(loaded[a], loaded[b], m, classes) for m in stats.METRICS}
        nc = {m: n_classes(m, classes) for m in stats.METRICS}
        out[f"{a} vs {b}"] = stats.compare_pair(runs_a, runs_b, pooled, nc, cfg)
    return out


def runs_table(loaded: Mapping[str, Mapping[str, dict]], summary: Mapping[str, dict]) -> str:
    """runs.csv: one row per (variant, run) with its test metrics and the variant's interval."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["variant_run", "variant", "run", "fold", "seed", "emotion_ua", "emotion_wa", "gender_acc",
                "ua_mean", "ua_ci95_low", "ua_ci95_high"])
    for name, runs in loaded.items():
        ci = summary[name]["spread"].get("emotion_ua", {}).get("ci95") or [None, None]
        for run_id in sorted(runs, key=lambda k: runs[k]["run"]):
            r, t = runs[run_id]["run"], runs[run_id]["metrics"]["test"]
            w.writerow([f"{name} {run_id}", name, run_id, r.fold, r.seed, _g(t["emotion_ua"]), _g(t["emotion_wa"]), _g(t["gender_acc"]),
                        _g(summary[name]["test"]["emotion_ua"]), _g(ci[0]), _g(ci[1])])
    return buf.getvalue()


def pooled_predictions(runs: Mapping[str, dict]) -> str:
    """predictions/<variant>.csv: every run's test predictions, with the run (for the confusion plot)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    fields = ("utterance_id", "emotion_true", "emotion_pred", "gender_true", "gender_pred")
    w.writerow(["run", *fields])
    for run_id in sorted(runs, key=lambda k: runs[k]["run"]):
        preds = runs[run_id]["preds"]
        for i in range(len(preds["utterance_id"])):
            w.writerow([run_id, *(preds[f][i] for f in fields)])
    return buf.getvalue()


def mean_curves(paths: Sequence[Path]) -> str:
    """The runs' curves.csv averaged epoch by epoch (over the runs that reached that epoch)."""
    tables = []
    for p in paths:
        with open(p, newline="") as fh:
            tables.append(list(csv.DictReader(fh)))
    fields = list(tables[0][0].keys()) if tables and tables[0] else ["epoch"]
    by_epoch: dict[int, list[dict]] = {}
    for t in tables:
        for row in t:
            by_epoch.setdefault(int(row["epoch"]), []).append(row)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*fields, "runs"])
    for epoch in sorted(by_epoch):
        rows = by_epoch[epoch]
        values = []
        for f in fields:
            xs = [float(r[f]) for r in rows if r.get(f) not in (None, "")]
            values.append(epoch if f == "epoch" else (_g(sum(xs) / len(xs)) if xs else ""))
        w.writerow([*values, len(rows)])
    return buf.getvalue()


def _g(x) -> str:
    return "" if x is None else f"{x:.6g}"


# ----------------------------------------------------------------------------- report

NAMES = {
    "emotion_ua": "emotion UA", "emotion_wa": "emotion WA", "emotion_f1": "emotion macro-F1",
    "gender_acc": "gender accuracy", "nll_emotion": "test NLL emotion", "nll_gender": "test NLL gender",
    "nll_sum": "test NLL sum",
}
HEADLINE = ("emotion_ua", "gender_acc", "nll_sum")


def _f(x, digits: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _ci(ci, digits: int = 3) -> str:
    return "n/a (one run)" if not ci else f"[{_f(ci[0], digits)}, {_f(ci[1], digits)}]"


def _p(p) -> str:
    return "-" if p is None else ("< 0.001" if p < 0.001 else f"{p:.3f}")


def _runs_words(runs: Sequence[Run], method: str) -> str:
    folds = sorted({r.fold for r in runs})
    seeds = sorted({r.seed for r in runs})
    what = "test sessions" if method == "session" else "random-split repetitions"
    return f"{len(runs)} run(s): {what} {', '.join(map(str, folds))} x seed(s) {', '.join(map(str, seeds))}"


def report(
    summary: Mapping[str, dict],
    comparison: Mapping[str, dict],
    loaded: Mapping[str, Mapping[str, dict]],
    runs: Sequence[Run],
    method: str,
    cfg: stats.CompareConfig,
    first_run: Sequence[str] = (),
) -> str:
    """report.md: the conclusion in words, Table 1 with intervals, the per-run table."""
    level = int(round(cfg.confidence * 100))
    protocol = "leave-one-session-out" if method == "session" else "random 60/20/20 splits"
    every = [v for v in loaded if v not in first_run]
    lines = ["# Results", "", f"Protocol: **{protocol}**, {_runs_words(runs, method)}.", ""]
    lines.append(f"Trained in every run: {', '.join(every) or 'none'}." + (
        f" Trained in the first run only (params `runs.first_run`; no interval over runs, and "
        f"their comparisons rest on that one run): {', '.join(first_run)}." if first_run else ""))
    lines.append("")

    lines += ["## Conclusion", ""]
    if not comparison:
        lines += ["No pairs to compare (params `compare.pairs` is empty).", ""]
    for pair, c in comparison.items():
        a, b = pair.split(" vs ")
        decided = (
            f"decided by the exact sign-flip test over the {c['runs']} paired runs"
            if c["decided_by"] == "runs"
            else f"decided by the paired permutation test over the pooled test utterances of the {c['runs']} paired runs"
        )
        lines.append(f"**{a} vs {b}** ({c['runs']} paired runs; {level}% level, {decided}):")
        lines.append("")
        for metric in stats.METRICS:
            if metric not in c:
                continue
            m = c[metric]
            level_used = m[c["decided_by"]]
            better = "higher" if stats.METRICS[metric][1] else "lower"
            basis = ("means over the paired runs; difference: mean of the per-run differences" if c["decided_by"] == "runs"
                     else "on the pooled test utterances of the paired runs")
            words = f"{a} is {m['verdict']}" if m["verdict"] != "no detectable difference" else "no detectable difference"
            lines.append(
                f"- {NAMES[metric]} ({better} is better): {a} {_f(level_used.get('a'))} vs {b} {_f(level_used.get('b'))} "
                f"({basis}); difference {m['diff']:+.3f}, {level}% CI {_ci(m['ci95'])}, p = {_p(m['p'])}: **{words}**"
            )
        pmin = stats.sign_flip_p_min(c["runs"])
        if c["decided_by"] == "utterances" and c["runs"] >= 2:
            lines.append(
                f"- With {c['runs']} run(s) the run-level sign-flip test cannot go below p = {pmin:.4f}, so the "
                "verdicts above come from the utterance level, which treats the trained models as fixed and "
                "ignores training noise; the run-level differences and their intervals are in comparison.json "
                "and in the per-run table below. More seeds or folds (params `runs`) let the runs decide."
            )
        if c["runs"] < 2:
            lines.append(
                f"- {c['runs']} paired run: no run-level test or interval; the verdicts above come from the "
                "utterance level, which treats the two trained models as fixed and ignores training noise, so they "
                "say whether these two trained models differ on these utterances, not whether the weightings do."
            )
        lines.append("")

    lines += [
        f"## Table 1, with {level}% intervals over runs",
        "",
        "Means over runs; the interval is a Student-t interval of the mean over runs (`n/a` with one run). "
        "Weights are the learned task weights at the best epoch, averaged over runs and normalised to sum "
        "to 1, so that every weighting reads on the paper's scale (uncertainty's exp(-s), DWA's and "
        "GradNorm's weights do not sum to 1; metrics.json keeps the raw values). The paper's Table 1 "
        "gives UM-dynamic-V and MM-dynamic the same weights, 0.3623 / 0.6377, which looks like a copy error.",
        "",
        "| variant | modalities | weighting | runs | w_emotion | w_gender | val NLL sum | test NLL emotion "
        "| test NLL gender | emotion UA | emotion WA | gender accuracy | paper w_e / w_g | paper NLL |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in summary.items():
        paper = PAPER_TABLE.get(name)
        t, sp = m["test"], m["spread"]
        w = normalised_weights(m["weights"])
        lines.append(
            f"| {name} | {'+'.join(m['modalities'])} | {m['weighting']} | {m['runs']} | {_f(w['emotion'], 4)} "
            f"| {_f(w['gender'], 4)} | {_f(m['val'].get('nll_sum'))} "
            f"| {_f(t.get('nll_emotion'))} | {_f(t.get('nll_gender'))} "
            f"| {_f(t.get('emotion_ua'))} {_ci(sp.get('emotion_ua', {}).get('ci95'))} "
            f"| {_f(t.get('emotion_wa'))} {_ci(sp.get('emotion_wa', {}).get('ci95'))} "
            f"| {_f(t.get('gender_acc'))} {_ci(sp.get('gender_acc', {}).get('ci95'))} "
            f"| {'%.4f / %.4f' % paper['weights'] if paper else '-'} | {_f(paper['nll'], 2) if paper else '-'} |"
        )
    lines += [
        "",
        "## Pooled test predictions, with bootstrap intervals over utterances",
        "",
        "All runs' test predictions together (under leave-one-session-out with one seed every utterance once; "
        "under random splits an utterance appears once per run whose test split drew it).",
        "",
        "| variant | utterances | emotion UA | emotion WA | emotion macro-F1 | gender accuracy |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in summary.items():
        p = m["pooled"]
        cells = [f"{_f(p[k]['value'])} {_ci(p[k]['ci95'])}" if k in p else "-" for k in ("emotion_ua", "emotion_wa", "emotion_f1", "gender_acc")]
        n = p.get("emotion_ua", {}).get("n", "-")
        lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")

    lines += ["", "## Per run: test emotion UA (gender accuracy)", ""]
    names = list(loaded)
    lines += ["| run | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for run in runs:
        cells = []
        for name in names:
            r = loaded[name].get(run.id)
            cells.append(f"{_f(r['metrics']['test']['emotion_ua'])} ({_f(r['metrics']['test']['gender_acc'])})" if r else "-")
        label = f"fold {run.fold}, seed {run.seed}" + (f" (test session {run.fold})" if method == "session" else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## How to read this",
        "",
        "- A single run is an anecdote: on small test sets one utterance moves accuracy by several points, "
        "and another seed or fold can reverse a difference. Read the intervals and the verdicts, not the "
        "ranking of the means.",
        "- *val NLL sum* is the unweighted sum of the per-task validation NLLs at the selected epoch (the "
        "selection criterion, so biased low); the *test NLL* columns are the same quantities on the test "
        "split. Weighted joint losses of different weightings are not comparable: under `dynamic`, "
        "dL/dl_e = w_e * w_g * (L_e - L_g), so the learned weights drift toward the task with the smaller "
        "loss, which lowers the joint loss without any task getting better.",
        "- The paper's NLL column is quoted from its Table 1; the paper does not state how it was normalised, "
        "so it is not on the same scale as ours.",
        "- UA is the mean per-class recall (chance 1 / number of classes); WA is plain accuracy.",
        "",
    ]
    return "\n".join(lines)
