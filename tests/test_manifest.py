"""The corpus as a dependency: the manifest of the files the stages read, and the link."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from avemotion import manifest
from avemotion.corpus import CorpusConfig, CorpusError
from iemocap_fixture import make_tree, write_wav

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = make_tree(tmp_path / "IEMOCAP_full_release")
    (root / "Session1/dialog/avi/DivX").mkdir(parents=True)
    (root / "Session1/dialog/avi/DivX/Ses01F_impro01.avi").write_bytes(b"video bytes")
    return root


def build(root: Path, **kw) -> dict:
    return manifest.build_manifest(root, CorpusConfig(**{"sessions": (1, 3), **kw}))


def test_manifest_lists_the_files_the_stages_read(tree: Path):
    m = build(tree)
    assert sorted(m["files"]) == [
        "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt",
        "Session1/dialog/avi/DivX/Ses01F_impro01.avi",
        *[f"Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_{u}.wav" for u in ("F000", "F002", "M001", "M003")],
        "Session3/dialog/EmoEvaluation/Ses03M_impro05a.txt",
        *[f"Session3/sentences/wav/Ses03M_impro05a/Ses03M_impro05a_{u}.wav" for u in ("F000", "M001")],
    ]
    assert m["files"]["Session1/dialog/avi/DivX/Ses01F_impro01.avi"] == {"md5": manifest.file_md5(tree / "Session1/dialog/avi/DivX/Ses01F_impro01.avi"), "bytes": 11}
    assert m["counts"] == {"label files": 2, "utterance wavs": 6, "videos": 1, "bytes": m["counts"]["bytes"]}
    assert m["ignored"]["scripted dialog (corpus.dialogs)"] == 1


def test_manifest_does_not_depend_on_location_or_on_files_never_read(tree: Path, tmp_path: Path):
    before = json.dumps(build(tree), sort_keys=True)
    elsewhere = tmp_path / "copy" / "deeper" / "IEMOCAP_full_release"
    shutil.copytree(tree, elsewhere)
    assert json.dumps(build(elsewhere), sort_keys=True) == before
    # macOS sidecars and .DS_Store anywhere, an unselected session, motion capture
    for d in (tree, tree / "Session1", tree / "Session1/sentences/wav/Ses01F_impro01", tree / "Session1/dialog/avi/DivX",
              tree / "Session3/dialog/EmoEvaluation"):
        (d / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
        (d / "._Ses01F_impro01_F000.wav").write_bytes(b"\x00\x05\x16\x07")
    write_wav(tree / "Session2/sentences/wav/Ses02F_impro01/Ses02F_impro01_F000.wav", 1.0)
    (tree / "Session2/dialog/EmoEvaluation/Ses02F_impro01.txt").write_text("% header\n")
    (tree / "Session1/dialog/MOCAP_head").mkdir(parents=True)
    (tree / "Session1/dialog/MOCAP_head/Ses01F_impro01.txt").write_text("motion\n")
    assert json.dumps(build(tree), sort_keys=True) == before
    # a changed byte in a file the stages read changes it
    write_wav(tree / "Session3/sentences/wav/Ses03M_impro05a/Ses03M_impro05a_M001.wav", 1.5)
    assert json.dumps(build(tree), sort_keys=True) != before


def test_link_corpus_points_data_corpus_at_a_copy(tree: Path, tmp_path: Path):
    repo = tmp_path / "repo"
    (repo / "data/demo/IEMOCAP_full_release").mkdir(parents=True)
    link = repo / "data/corpus"
    manifest.link_corpus(tree, link)
    assert os.readlink(link) == str(tree) and (link / "Session1").is_dir()
    # inside the repository: relative, so a moved clone keeps working
    manifest.link_corpus(repo / "data/demo/IEMOCAP_full_release", link, check=False)
    assert os.readlink(link) == "demo/IEMOCAP_full_release"
    with pytest.raises(CorpusError, match="not an IEMOCAP tree"):
        manifest.link_corpus(tmp_path, link)
    with pytest.raises(CorpusError, match="does not exist"):
        manifest.link_corpus(tmp_path / "nowhere", link)
    assert os.readlink(link) == "demo/IEMOCAP_full_release"  # a failed call changes nothing


def test_make_corpus_links_without_touching_git(tree: Path, tmp_path: Path):
    """`make corpus ROOT=...` runs pipeline/link_corpus.py; the link is ignored by git."""
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    shutil.copy(ROOT / ".gitignore", repo / ".gitignore")
    run = lambda *a: subprocess.run([sys.executable, str(ROOT / "pipeline/link_corpus.py"), *a], cwd=repo,  # noqa: E731
                                    capture_output=True, text=True)
    done = run(str(tree))
    assert done.returncode == 0, done.stderr
    assert f"data/corpus -> {tree}" in done.stdout
    status = subprocess.run(["git", "status", "--porcelain", "--ignored=no"], cwd=repo, capture_output=True, text=True).stdout
    assert "data" not in status
    done = run()  # no ROOT: back to the demo corpus (which `dvc repro demo` makes)
    assert done.returncode == 0 and os.readlink(repo / "data/corpus") == "demo/IEMOCAP_full_release"
    bad = run(str(tmp_path / "nowhere"))
    assert bad.returncode == 1 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr
