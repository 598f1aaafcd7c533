"""The corpus check: counts, label counts, missing files and the full-release comparison."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from avemotion import check
from avemotion.labels import LabelsConfig
from iemocap_fixture import make_tree

ROOT = Path(__file__).resolve().parents[1]


def test_counts_and_labels_of_a_complete_tree(tmp_path):
    tree = make_tree(tmp_path / "IEMOCAP_full_release")
    for dialog in ("Session1/dialog/avi/DivX/Ses01F_impro01.avi", "Session3/dialog/avi/DivX/Ses03M_impro05a.avi",
                   "Session3/dialog/avi/DivX/Ses03M_script01_1b.avi"):
        (tree / dialog).parent.mkdir(parents=True, exist_ok=True)
        (tree / dialog).write_bytes(b"RIFF....AVI ")
    r = check.check_corpus(tree, LabelsConfig())
    assert r["problems"] == []
    assert r["sessions"][1] == {"dialogs_improvised": 1, "utterances": 4, "utterances_improvised": 4}
    assert r["sessions"][3]["utterances_scripted"] == 1 and r["sessions"][2]["utterances"] == 0
    assert r["labels"]["scripted"] == {"dropped: unmapped_category": 1}
    assert r["four_class_ties_dropped"] == {"improvised": 4, "all": 4}  # two ties dropped
    assert "utterances_improvised: 6 here, 4784 in the full release" in r["vs_full_release"]


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
