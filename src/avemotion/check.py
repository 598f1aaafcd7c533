"""Corpus check: is this IEMOCAP tree complete and as expected, before a long run?

Reads only text and file headers (EmoEvaluation files, wav headers, whether each dialog
video exists and is not empty; no video decoding), so it takes seconds on the full
release. Reports counts per session and dialog type, label counts under the current
`labels` params, missing or unreadable files, and the differences from the numbers of
the full release (IEMOCAP.md).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

from . import corpus, labels
from .corpus import CorpusConfig, CorpusError

#: Counts of IEMOCAP_full_release (IEMOCAP.md).
FULL_RELEASE = {
    "dialogs": 151,
    "dialogs_improvised": 80,
    "dialogs_scripted": 71,
    "utterances": 10039,
    "utterances_improvised": 4784,
    "utterances_scripted": 5255,
    "utterances_per_session": {1: 1819, 2: 1811, 3: 2136, 4: 2103, 5: 2170},
    "four_class_all_ties_dropped": 5531,
    "four_class_improvised_ties_dropped": 2943,
}

USUAL_FOUR = labels.LabelsConfig(ties="drop")  # neu, ang, sad, hap (+exc), ties dropped


def check_corpus(root: str | Path, labels_cfg: labels.LabelsConfig, sessions=(1, 2, 3, 4, 5)) -> dict[str, Any]:
    """Walk every requested session (all dialogs) and report; never raises on a bad file."""
    report: dict[str, Any] = {"root": str(root), "problems": [], "sessions": {}}
    problems: list[str] = report["problems"]
    totals: Counter = Counter()
    label_counts = {"improvised": Counter(), "scripted": Counter()}
    usual: Counter = Counter()
    for s in sessions:
        cfg = CorpusConfig(sessions=(s,), dialogs="all")
        try:
            found = corpus.find_label_files(root, cfg)
        except CorpusError as exc:
            problems.append(str(exc))
            continue
        per: Counter = Counter()
        root_path = found.root
        for _, path in found.files:
            kind = "improvised" if corpus.parse_dialog_name(path.stem)["kind"] == "impro" else "scripted"
            per[f"dialogs_{kind}"] += 1
            video = root_path / f"Session{s}/dialog/avi/DivX/{path.stem}.avi"
            if not video.is_file() or video.stat().st_size == 0:
                problems.append(f"{video.relative_to(root_path)}: video missing or empty")
                per["videos_missing"] += 1
            try:
                parsed = corpus.parse_emo_evaluation(path, path.relative_to(root_path).as_posix())
            except CorpusError as exc:
                problems.append(str(exc))
                per["label_files_unreadable"] += 1
                continue
            for u in parsed.utterances:
                per[f"utterances_{kind}"] += 1
                if u.problem is not None:
                    problems.append(u.problem[1])
                    per["utterances_malformed"] += 1
                    continue
                _, bad = corpus.check_wav(root_path / corpus.wav_relpath(u), corpus.wav_relpath(u))
                if bad is not None:
                    problems.append(bad[1])
                    per[bad[0]] += 1
                votes = u.external_votes
                lab = labels.vote(u.utterance_id, votes, labels_cfg)
                label_counts[kind][lab.emotion or f"dropped: {lab.reason}"] += 1
                if labels.vote(u.utterance_id, votes, USUAL_FOUR).emotion is not None:
                    usual[kind] += 1
        per["utterances"] = per["utterances_improvised"] + per["utterances_scripted"]
        report["sessions"][s] = dict(sorted(per.items()))
        totals.update(per)
    report["totals"] = dict(sorted(totals.items()))
    report["labels"] = {k: dict(sorted(v.items())) for k, v in label_counts.items()}
    report["four_class_ties_dropped"] = {"improvised": usual["improvised"], "all": usual["improvised"] + usual["scripted"]}
    report["vs_full_release"] = _differences(report, sessions)
    return report


def _differences(report: dict, sessions) -> list[str]:
    t = report["totals"]
    ours = {
        "dialogs_improvised": t.get("dialogs_improvised", 0),
        "dialogs_scripted": t.get("dialogs_scripted", 0),
        "utterances": t.get("utterances", 0),
        "utterances_improvised": t.get("utterances_improvised", 0),
        "utterances_scripted": t.get("utterances_scripted", 0),
        "four_class_improvised_ties_dropped": report["four_class_ties_dropped"]["improvised"],
        "four_class_all_ties_dropped": report["four_class_ties_dropped"]["all"],
    }
    diffs = []
    partial = tuple(sessions) != (1, 2, 3, 4, 5)
    for key, value in ours.items():
        expected = FULL_RELEASE[key]
        if value != expected:
            diffs.append(f"{key}: {value} here, {expected} in the full release" + (" (not all sessions checked)" if partial else ""))
    for s, n in FULL_RELEASE["utterances_per_session"].items():
        if s in report["sessions"] and report["sessions"][s].get("utterances", 0) != n:
            diffs.append(f"Session{s} utterances: {report['sessions'][s].get('utterances', 0)} here, {n} in the full release")
    return diffs


def format_report(report: dict[str, Any], max_problems: int = 50) -> str:
    lines = [f"Corpus check of {report['root']}", "", "session  dialogs impro/script  utterances impro/script  problems"]
    for s, per in report["sessions"].items():
        bad = sum(v for k, v in per.items() if k.startswith(("wav_", "videos_", "utterances_malformed", "label_files")))
        lines.append(
            f"{s:>7}  {per.get('dialogs_improvised', 0):>6} / {per.get('dialogs_scripted', 0):<6}  "
            f"{per.get('utterances_improvised', 0):>10} / {per.get('utterances_scripted', 0):<10}  {bad}"
        )
    lines += ["", "labels under the current params:"]
    for kind, counts in report["labels"].items():
        lines.append(f"  {kind}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    fc = report["four_class_ties_dropped"]
    lines.append(f"usual four classes, ties dropped: improvised {fc['improvised']}, all {fc['all']}")
    lines += ["", "differences from the full release:" if report["vs_full_release"] else "matches the full release counts"]
    lines += [f"  {d}" for d in report["vs_full_release"]]
    probs = report["problems"]
    lines += ["", f"problems: {len(probs)}" + (f" (first {max_problems})" if len(probs) > max_problems else "")]
    lines += [f"  {p}" for p in probs[:max_problems]]
    return "\n".join(lines)
