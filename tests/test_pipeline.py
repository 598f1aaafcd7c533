"""The DVC pipeline end to end, in a temporary copy of the repository on a tiny demo corpus."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow

TINY = {
    "demo": {"sessions": [1, 3], "improvised_per_session": 2, "scripted_per_session": 1, "utterances_per_dialog": 8, "workers": 1},
    "corpus": {"sessions": [1, 3]},
    "faces": {"workers": 1},
    "split": {"method": "session"},  # leave-one-session-out over the two sessions
    "runs": {"folds": [1, 3], "seeds": [1], "every_run": ["MM-static", "MM-dynamic"],
             "first_run": ["UM-dynamic-A", "UM-dynamic-V", "MM-uncertainty"]},
}


def copy_repo(dst: Path, overrides: dict | None = None, corpus: str | Path = "data/demo/IEMOCAP_full_release") -> Path:
    """Tracked files (as in the working tree) into a fresh git repo at `dst`, with data/corpus
    linked to `corpus` as `make corpus ROOT=...` does (default: the demo corpus)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)
    params = yaml.safe_load((dst / "params.yaml").read_text())
    for section, values in (overrides or {}).items():
        params.setdefault(section, {}).update(values)
    (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git(dst, "init", "-q")
    git(dst, "add", "-A")
    git(dst, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "copy")
    link_corpus(dst, corpus)
    return dst


def link_corpus(repo: Path, corpus: str | Path) -> None:
    """`make corpus ROOT=<corpus>` in `repo`."""
    subprocess.run([sys.executable, "pipeline/link_corpus.py", str(corpus)], cwd=repo, check=True, capture_output=True)


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def dvc(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([str(BIN / "dvc"), *args], cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return copy_repo(tmp_path_factory.mktemp("repo"), TINY)


def test_repro_label_on_the_demo_corpus(repo: Path):
    dvc(repo, "repro", "demo")  # data/corpus links to the demo: made first, as `make repro` does
    dvc(repo, "repro", "label")
    extract = json.loads((repo / "data/interim/extract-summary.json").read_text())
    # the demo corpus passes extract with no rejects: its layout is IEMOCAP's
    assert extract["rejected"] == {}
    assert extract["kept"] == extract["selected"] == 2 * 2 * 8  # improvised only
    assert extract["ignored_entries"]["scripted dialog (corpus.dialogs)"] == 2
    # the demo has macOS sidecars; they are not corpus files and appear nowhere
    assert list((repo / "data/demo/IEMOCAP_full_release").rglob("._*"))
    listed = json.loads((repo / "data/interim/corpus-files.json").read_text())["files"]
    assert listed and not any("/." in "/" + f for f in listed)
    utts = pq.read_table(repo / "data/interim/utterances.parquet").to_pylist()
    assert {u["dialog"] for u in utts} >= {"Ses03M_impro05a", "Ses03M_impro05b"}  # odd names
    labels = pq.read_table(repo / "data/interim/labels.parquet").to_pylist()
    assert len(labels) == len(utts)
    label_rejects = pq.read_table(repo / "data/interim/rejects-label.parquet").to_pylist()
    assert sum(x["emotion"] is None for x in labels) == len(label_rejects)
    # everything is up to date afterwards
    assert "changed" not in dvc(repo, "status", "label").stdout


def test_repro_shard_reconciles_and_is_reproducible(repo: Path):
    dvc(repo, "repro", "shard")
    faces_dir = repo / "data/interim/faces"
    assert sorted(p.name for p in faces_dir.iterdir()) == ["Session1.parquet", "Session3.parquet", "rejects.parquet", "summary.json"]
    assert sorted(p.name for p in (repo / "data/interim/contact").iterdir()) == ["Session1.png", "Session3.png"]
    manifest = json.loads((repo / "data/shards/manifest.json").read_text())
    rec = manifest["reconciliation"]
    assert rec["holds"] and rec["selected"] == 32 == rec["sharded"] + rec["rejected"]
    before = {p.name: p.read_bytes() for p in (repo / "data/shards").iterdir()}
    dvc(repo, "repro", "-f", "faces", "shard", "--single-item")
    dvc(repo, "repro", "-f", "shard", "--single-item")
    after = {p.name: p.read_bytes() for p in (repo / "data/shards").iterdir()}
    assert before == after


def test_external_corpus_needs_no_demo_stage(tmp_path: Path, repo: Path):
    """data/corpus linked outside the repository: `dvc repro label` never runs `demo`."""
    sys.path.insert(0, str(Path(__file__).parent))
    from iemocap_fixture import make_tree

    corpus = make_tree(tmp_path / "corpus" / "IEMOCAP_full_release")
    other = copy_repo(tmp_path / "other", corpus=corpus)
    out = dvc(other, "repro", "label").stdout
    assert "Running stage 'demo'" not in out
    assert not (other / "data/demo").exists()
    assert pq.read_table(other / "data/interim/utterances.parquet").num_rows == 6


def test_a_bad_corpus_fails_with_a_clear_message(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    other = copy_repo(tmp_path / "other")
    os.symlink(tmp_path / "empty", other / "data/corpus.new")
    os.replace(other / "data/corpus.new", other / "data/corpus")  # past make corpus' own check
    proc = dvc(other, "repro", "extract", check=False)
    assert proc.returncode != 0
    assert "is not an IEMOCAP tree" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
