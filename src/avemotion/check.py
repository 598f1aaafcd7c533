"""Corpus check: is this IEMOCAP tree complete and as expected, before a long run?

Reads only text and file headers (EmoEvaluation files, wav headers, each dialog video's
header: frame rate, size, length; no video frame is decoded), so it takes seconds on the
full release. Reports counts per session and dialog type, label counts under the current
`labels` params, missing or unreadable files, and the differences from the numbers of
the full release (IEMOCAP.md).

The published label counts count the corpus' *summary codes*, so the comparison with
them does too (per code, and the usual four classes neu + ang + sad + hap + exc); how
often the project's own vote agrees with the summary code is reported apart.
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
    "four_class_all": 5531,
    "four_class_improvised": 2943,
    "codes": {
        "all": {"neu": 1708, "fru": 1849, "xxx": 2507, "exc": 1041, "sad": 1084, "ang": 1103, "hap": 595,
                "sur": 107, "fea": 40, "oth": 3, "dis": 2},
        "improvised": {"neu": 1099, "fru": 971, "xxx": 800, "exc": 663, "sad": 608, "ang": 289, "hap": 284,
                       "sur": 60, "fea": 8, "oth": 1, "dis": 1},
    },
}
#: Summary codes of the field's usual four classes (exc merged into hap).
FOUR_CLASS_CODES = ("neu", "ang", "sad", "hap", "exc")
#: Frame size of IEMOCAP's dialog videos.
VIDEO_SIZE = (720, 480)
#: A wav whose length differs from its label's end - start by more than this is listed.
WAV_LENGTH_TOLERANCE_S = 0.1

USUAL_FOUR = labels.LabelsConfig(ties="drop")  # neu, ang, sad, hap (+exc), ties dropped


def video_header(path: Path) -> dict | None:
    """Frame rate, size and length from a video's header (no frame decoded), or None."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return None
        fps = cap.get(cv2.CAP_PROP_FPS)
        frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        cap.release()
    return {"fps": fps, "frames": frames, "width": w, "height": h, "seconds": frames / fps if fps > 0 else 0.0}


def check_corpus(root: str | Path, labels_cfg: labels.LabelsConfig, sessions=(1, 2, 3, 4, 5)) -> dict[str, Any]:
    """Walk every requested session (all dialogs) and report; never raises on a bad file."""
    report: dict[str, Any] = {"root": str(root), "problems": [], "sessions": {}}
    problems: list[str] = report["problems"]
    totals: Counter = Counter()
    label_counts = {"improvised": Counter(), "scripted": Counter()}
    usual: Counter = Counter()
    codes = {"improvised": Counter(), "scripted": Counter()}
    agreement = {"agree": 0, "disagree": 0, "four_or_more_raters": 0, "four_or_more_raters_disagree": 0}
    wav_lengths: list[str] = []
    videos = {"fps": Counter(), "shorter_than_last_utterance": []}
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
            header = None
            if not video.is_file() or video.stat().st_size == 0:
                problems.append(f"{video.relative_to(root_path)}: video missing or empty")
                per["videos_missing"] += 1
            else:
                header = video_header(video)
                if header is None or header["frames"] <= 0 or not header["fps"] > 0:
                    problems.append(f"{video.relative_to(root_path)}: video header unreadable")
                    per["videos_unreadable"] += 1
                    header = None
                elif (header["width"], header["height"]) != VIDEO_SIZE:
                    problems.append(
                        f"{video.relative_to(root_path)}: {header['width']}x{header['height']}, "
                        f"expected {VIDEO_SIZE[0]}x{VIDEO_SIZE[1]} (two views side by side)"
                    )
                    per["videos_wrong_size"] += 1
                if header is not None:
                    videos["fps"][f"{header['fps']:.3f}"] += 1
            try:
                parsed = corpus.parse_emo_evaluation(path, path.relative_to(root_path).as_posix())
            except CorpusError as exc:
                problems.append(str(exc))
                per["label_files_unreadable"] += 1
                continue
            problems.extend(parsed.notes)
            ends = [u.end for u in parsed.utterances if u.problem is None]
            if header is not None and ends and max(ends) > header["seconds"]:
                # normal on the real corpus (IEMOCAP.md): reported, not a problem
                videos["shorter_than_last_utterance"].append(
                    f"{video.relative_to(root_path)}: {header['seconds']:.2f} s, last utterance ends at {max(ends):.2f} s"
                )
            for u in parsed.utterances:
                per[f"utterances_{kind}"] += 1
                if u.problem is not None:
                    problems.append(u.problem[1])
                    per["utterances_malformed"] += 1
                    continue
                info, bad = corpus.check_wav(root_path / corpus.wav_relpath(u), corpus.wav_relpath(u))
                if bad is not None:
                    problems.append(bad[1])
                    per[bad[0]] += 1
                elif abs(info.frames / info.sample_rate - (u.end - u.start)) > WAV_LENGTH_TOLERANCE_S:
                    wav_lengths.append(
                        f"{corpus.wav_relpath(u)}: {info.frames / info.sample_rate:.3f} s, label "
                        f"[{u.start:.4f} - {u.end:.4f}] = {u.end - u.start:.3f} s"
                    )
                codes[kind][u.summary_code] += 1
                counted = corpus.count_votes((r.rater, r.external, r.categories) for r in u.categorical)
                agrees = labels.agrees_with_summary(counted.votes, u.summary_code)
                agreement["agree" if agrees else "disagree"] += 1
                if counted.raters >= 4:
                    agreement["four_or_more_raters"] += 1
                    agreement["four_or_more_raters_disagree"] += not agrees
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
    all_codes = codes["improvised"] + codes["scripted"]
    report["summary_codes"] = {"all": dict(sorted(all_codes.items())), "improvised": dict(sorted(codes["improvised"].items()))}
    report["four_class_summary_codes"] = {
        "improvised": sum(codes["improvised"][c] for c in FOUR_CLASS_CODES),
        "all": sum(all_codes[c] for c in FOUR_CLASS_CODES),
    }
    report["vote_vs_summary_code"] = agreement
    report["wav_length_vs_label"] = wav_lengths
    report["videos"] = {"fps": dict(sorted(videos["fps"].items())), "shorter_than_last_utterance": videos["shorter_than_last_utterance"]}
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
        "four_class_improvised": report["four_class_summary_codes"]["improvised"],
        "four_class_all": report["four_class_summary_codes"]["all"],
    }
    diffs = []
    partial = tuple(sessions) != (1, 2, 3, 4, 5)
    for key, value in ours.items():
        expected = FULL_RELEASE[key]
        if value != expected:
            diffs.append(f"{key}: {value} here, {expected} in the full release" + (" (not all sessions checked)" if partial else ""))
    for subset, published in FULL_RELEASE["codes"].items():
        here = report["summary_codes"][subset]
        for code, n in published.items():
            if here.get(code, 0) != n:
                diffs.append(f"summary code {code} ({subset}): {here.get(code, 0)} here, {n} in the full release")
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
    lines.append(f"usual four classes by this project's vote, ties dropped: improvised {fc['improvised']}, all {fc['all']}")
    sc = report["four_class_summary_codes"]
    lines.append(f"usual four classes by summary code (neu+ang+sad+hap+exc, as published): improvised {sc['improvised']}, all {sc['all']}")
    a = report["vote_vs_summary_code"]
    lines.append(
        f"vote vs summary code: {a['agree']} agree, {a['disagree']} disagree; "
        f"{a['four_or_more_raters']} utterances had four or more external raters ({a['four_or_more_raters_disagree']} disagree)"
    )
    v = report["videos"]
    lines.append("video frame rates: " + (", ".join(f"{k} fps x {n}" for k, n in v["fps"].items()) or "none read"))
    lines.append(f"videos ending before their last utterance (normal on IEMOCAP): {len(v['shorter_than_last_utterance'])}")
    lines += [f"  {x}" for x in v["shorter_than_last_utterance"][:max_problems]]
    wl = report["wav_length_vs_label"]
    lines.append(f"wavs whose length differs from end - start by more than {WAV_LENGTH_TOLERANCE_S} s: {len(wl)}")
    lines += [f"  {x}" for x in wl[:max_problems]]
    lines += ["", "differences from the full release:" if report["vs_full_release"] else "matches the full release counts"]
    lines += [f"  {d}" for d in report["vs_full_release"]]
    probs = report["problems"]
    lines += ["", f"problems: {len(probs)}" + (f" (first {max_problems})" if len(probs) > max_problems else "")]
    lines += [f"  {p}" for p in probs[:max_problems]]
    return "\n".join(lines)
