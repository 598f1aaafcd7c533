"""Team use: shards shared through a DVC remote, and byte-identical preprocessing across clones.

Whole pipelines on a tiny demo with a tiny network (a minute or two each).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from test_pipeline import TINY, copy_repo, dvc, git

pytestmark = pytest.mark.slow

PREPROCESSING = ("demo", "extract", "label", "faces", "shard")
TINY_TRAINING = {
    **TINY,
    "model": {"conv1_filters": 4, "conv2_filters": 4, "conv2_width": 401, "channel_pool": 2, "lstm_hidden": 16, "lstm_layers": 1},
    "train": {"epochs": 1, "batch": 8, "threads": 1},
}
TWO_VARIANTS = {
    "MM-static": {"modalities": ["audio", "video"], "weighting": "static", "options": {"weights": [0.5, 0.5]}},
    "MM-dynamic": {"modalities": ["audio", "video"], "weighting": "dynamic"},
}


def tiny_repo(dst: Path) -> Path:
    repo = copy_repo(dst, TINY_TRAINING)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["variants"] = TWO_VARIANTS
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git(repo, "add", "-A")
    git(repo, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "tiny")
    return repo


def lock_outs(repo: Path) -> dict[str, str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {
        f"{stage}:{out['path']}": out["md5"]
        for stage, body in lock["stages"].items()
        if stage in PREPROCESSING
        for out in body.get("outs", [])
    }


def ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


@pytest.fixture(scope="module")
def repo_a(tmp_path_factory) -> Path:
    a = tiny_repo(tmp_path_factory.mktemp("a"))
    out = dvc(a, "repro").stdout
    assert ran(out) == {*PREPROCESSING, "train@MM-static", "train@MM-dynamic", "compare"}
    return a


def test_a_teammate_pulls_shards_and_reruns_only_training(repo_a: Path, tmp_path: Path):
    remote = tmp_path / "remote"
    dvc(repo_a, "remote", "add", "-d", "team", str(remote))
    git(repo_a, "add", "-A")
    git(repo_a, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "results")
    dvc(repo_a, "push", "--run-cache")

    b = tmp_path / "b"
    subprocess.run(["git", "clone", "-q", str(repo_a), str(b)], check=True)
    dvc(b, "pull", "--run-cache")
    status = dvc(b, "status").stdout
    assert "up to date" in status, status
    assert ran(dvc(b, "repro").stdout) == set()  # nothing to redo
    shards_a = {p.name: p.read_bytes() for p in (repo_a / "data/shards").iterdir()}
    shards_b = {p.name: p.read_bytes() for p in (b / "data/shards").iterdir()}
    assert shards_a == shards_b

    # a training-only change reruns that variant and the comparison, no preprocessing
    params = yaml.safe_load((b / "params.yaml").read_text())
    params["variants"]["MM-static"]["options"]["weights"] = [0.3, 0.7]
    (b / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert ran(dvc(b, "repro").stdout) == {"train@MM-static", "compare"}


def test_independent_runs_give_identical_preprocessing_hashes(repo_a: Path, tmp_path: Path):
    c = tiny_repo(tmp_path / "c")  # separate clone, separate cache, from scratch
    dvc(c, "repro", "shard")
    a, c_ = lock_outs(repo_a), lock_outs(c)
    assert set(a) == {
        "demo:data/demo/IEMOCAP_full_release", "extract:data/interim/utterances.parquet",
        "extract:data/interim/rejects-extract.parquet", "extract:data/interim/extract-summary.json",
        "label:data/interim/labels.parquet", "label:data/interim/rejects-label.parquet",
        "label:data/interim/label-summary.json", "faces:data/interim/faces", "faces:data/interim/contact",
        "shard:data/shards",
    }
    assert a == c_
