"""The corpus check: counts, label counts, missing files and the full-release comparison."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
from pathlib import Path

from avemotion import check
from avemotion.labels import LabelsConfig
from iemocap_fixture import make_tree, write_wav
from video_fixture import write_clip

ROOT = Path(__file__).resolve().parents[1]


def complete_tree(tmp_path):
    tree = make_tree(tmp_path / "IEMOCAP_full_release")
    clip = write_clip(tmp_path / "clip.avi", n_frames=30)  # 1 s at 30 fps
    for dialog in ("Session1/dialog/avi/DivX/Ses01F_impro01.avi", "Session3/dialog/avi/DivX/Ses03M_impro05a.avi",
                   "Session3/dialog/avi/DivX/Ses03M_script01_1b.avi"):
        (tree / dialog).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(clip, tree / dialog)
    return tree


def test_counts_and_labels_of_a_complete_tree(tmp_path):
    tree = complete_tree(tmp_path)
    r = check.check_corpus(tree, LabelsConfig())
    assert r["problems"] == []
    assert r["sessions"][1] == {"dialogs_improvised": 1, "utterances": 4, "utterances_improvised": 4}
    assert r["sessions"][3]["utterances_scripted"] == 1 and r["sessions"][2]["utterances"] == 0
    assert r["labels"]["scripted"] == {"dropped: unmapped_category": 1}
    assert r["four_class_ties_dropped"] == {"improvised": 4, "all": 4}  # two ties dropped
    assert "utterances_improvised: 6 here, 4784 in the full release" in r["vs_full_release"]


def test_published_counts_are_compared_with_summary_codes_and_the_vote_apart(tmp_path):
    tree = complete_tree(tmp_path)
    r = check.check_corpus(tree, LabelsConfig())
    # summary codes: neu sad ang xxx | exc neu | fru; the published four classes count
    # neu + ang + sad + hap + exc codes: 5, where the vote with ties dropped keeps 4
    assert r["summary_codes"]["improvised"] == {"ang": 1, "exc": 1, "neu": 2, "sad": 1, "xxx": 1}
    assert r["four_class_summary_codes"] == {"improvised": 5, "all": 5}
    assert r["four_class_ties_dropped"] == {"improvised": 4, "all": 4}
    assert "four_class_improvised: 5 here, 2943 in the full release" in r["vs_full_release"]
    assert "summary code neu (improvised): 2 here, 1099 in the full release" in r["vs_full_release"]
    # Ses03M_impro05a_F000 (exc): Excited 2, Happiness 2 by the vote, a tie
    assert r["vote_vs_summary_code"] == {"agree": 6, "disagree": 1, "four_or_more_raters": 0, "four_or_more_raters_disagree": 0}


def test_video_headers_and_wav_lengths_are_read_without_decoding(tmp_path):
    tree = complete_tree(tmp_path)
    write_clip(tree / "Session3/dialog/avi/DivX/Ses03M_impro05a.avi", n_frames=10, fps=25.0)
    write_wav(tree / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav", 2.5)  # label: 1.9456 s
    r = check.check_corpus(tree, LabelsConfig())
    assert r["videos"]["fps"] == {"25.000": 1, "30.000": 2}
    shorter = r["videos"]["shorter_than_last_utterance"]
    assert shorter[0] == "Session1/dialog/avi/DivX/Ses01F_impro01.avi: 1.00 s, last utterance ends at 17.00 s"
    assert len(shorter) == 3 and r["problems"] == []  # normal on IEMOCAP, not a problem
    assert r["wav_length_vs_label"] == [
        "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav: 2.500 s, label [6.2901 - 8.2357] = 1.946 s"
    ]
    import cv2
    small = cv2.VideoWriter(str(tree / "Session1/dialog/avi/DivX/Ses01F_impro01.avi"), cv2.VideoWriter_fourcc(*"DIVX"), 30.0, (320, 240))
    for _ in range(3):
        small.write(np.zeros((240, 320, 3), np.uint8))
    small.release()
    r = check.check_corpus(tree, LabelsConfig())
    assert r["problems"] == ["Session1/dialog/avi/DivX/Ses01F_impro01.avi: 320x240, expected 720x480 (two views side by side)"]


def test_removed_files_are_reported(tmp_path):
    tree = make_tree(tmp_path / "IEMOCAP_full_release")
    (tree / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_M001.wav").unlink()
    shutil.rmtree(tree / "Session4")
    r = check.check_corpus(tree, LabelsConfig())
    text = "\n".join(r["problems"])
    assert "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_M001.wav: file not found" in text
    assert "Session4" in text and "missing" in text
    assert "Session1/dialog/avi/DivX/Ses01F_impro01.avi: video missing or empty" in text
    assert r["sessions"][1]["wav_missing"] == 1
    # the command prints the report and fails, so a script can stop before a long run
    proc = subprocess.run([sys.executable, str(ROOT / "pipeline/check_corpus.py"), "--params", str(ROOT / "params.yaml"), "--root", str(tree)],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "problems: " in proc.stdout and "M001.wav: file not found" in proc.stdout
