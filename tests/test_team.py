"""Team use: shards shared through a DVC remote, and byte-identical preprocessing across clones.

Whole pipelines on a tiny demo with a tiny network (a minute or two each).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from test_pipeline import TINY, copy_repo, dvc, git, link_corpus

pytestmark = pytest.mark.slow

PREPROCESSING = ("demo", "corpus", "extract", "label", "faces", "shard")
TINY_TRAINING = {
    **TINY,
    "model": {"conv1_filters": 4, "conv2_filters": 4, "conv2_width": 401, "channel_pool": 2, "lstm_hidden": 16, "lstm_layers": 1},
    "train": {"epochs": 1, "batch": 8, "threads": 1},
}
VARIANTS = ("MM-static", "MM-dynamic", "UM-dynamic-A", "UM-dynamic-V", "MM-uncertainty")
RUNS = ("fold1-seed1", "fold3-seed1")  # TINY's runs: sessions 1 and 3 as test folds, one seed
EVERY_RUN = ("MM-static", "MM-dynamic")  # TINY's runs.every_run; the others train in the first run only
TRAIN_STAGES = {*(f"train@{v}-{f}-1" for v in EVERY_RUN for f in (1, 3)),
                *(f"train-first@{v}-1-1" for v in VARIANTS if v not in EVERY_RUN)}


def tiny_repo(dst: Path) -> Path:
    return copy_repo(dst, TINY_TRAINING)


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
    out = dvc(a, "repro", "demo").stdout + dvc(a, "repro").stdout  # as `make repro` does
    assert ran(out) == {*PREPROCESSING, *TRAIN_STAGES, "compare"}
    return a


def test_end_to_end_outputs(repo_a: Path):
    """All stages, all default variants in every run: metrics, comparison, report, plots, nothing left to redo."""
    from avemotion import training

    metrics = json.loads((repo_a / "results/metrics.json").read_text())
    assert sorted(metrics) == sorted(VARIANTS)
    manifest = json.loads((repo_a / "data/shards/manifest.json").read_text())
    classes = manifest["meta"]["classes"]
    for name, m in metrics.items():
        assert set(m) == {"modalities", "weighting", "weights", "val", "test", "n", "runs", "spread", "pooled"}
        runs = RUNS if name in EVERY_RUN else RUNS[:1]
        assert m["runs"] == len(runs)
        assert set(m["val"]) == {"nll_emotion", "nll_gender", "nll_sum", "weighted"}
        assert set(m["test"]) >= {"emotion_wa", "emotion_ua", "emotion_f1", "gender_acc", "nll_emotion", "nll_gender"}
        assert set(m["spread"]["emotion_ua"]) == {"sd", "ci95"}
        assert (m["spread"]["emotion_ua"]["ci95"] is None) == (len(runs) == 1)  # no interval from one run
        assert m["n"]["test"] == m["pooled"]["emotion_ua"]["n"]
        if name in EVERY_RUN:  # leave-one-session-out over both sessions: every utterance tested once
            assert m["n"]["test"] == manifest["counts"]["utterances"]
        per_run = []
        for run in runs:
            folder = repo_a / "results/runs" / name / run
            preds = training.read_predictions(folder / "predictions.csv")
            run_metrics = json.loads((folder / "metrics.json").read_text())
            assert training.metrics_from_predictions(preds, classes) == run_metrics["test"]
            assert len(preds["utterance_id"]) == run_metrics["n"]["test"]
            per_run.append(run_metrics["test"]["emotion_ua"])
        assert m["test"]["emotion_ua"] == pytest.approx(sum(per_run) / len(per_run))
    assert metrics["UM-dynamic-A"]["modalities"] == ["audio"] and metrics["MM-uncertainty"]["weighting"] == "uncertainty"
    comparison = json.loads((repo_a / "results/comparison.json").read_text())
    assert sorted(comparison) == ["MM-dynamic vs MM-static", "MM-uncertainty vs MM-static"]
    for pair, c in comparison.items():
        n_runs = 2 if pair == "MM-dynamic vs MM-static" else 1
        assert c["runs"] == n_runs and c["decided_by"] == "utterances"
        for metric in ("emotion_ua", "gender_acc", "nll_sum"):
            entry = c[metric]
            assert entry["verdict"] in ("better", "worse", "no detectable difference")
            assert entry["ci95"][0] <= entry["diff"] <= entry["ci95"][1] and 0 <= entry["p"] <= 1
            assert entry["runs"]["p_min"] == 2 / 2**n_runs  # so few runs: a sign-flip test cannot decide
    report = (repo_a / "results/report.md").read_text()
    assert report.index("## Conclusion") < report.index("## Table 1")
    assert "**MM-dynamic vs MM-static** (2 paired runs" in report and "not comparable" in report
    for name in VARIANTS:
        assert f"| {name} |" in report
    assert "| fold 3, seed 1 (test session 3) |" in report
    shown = dvc(repo_a, "metrics", "show", "--json").stdout
    assert "emotion_ua" in shown and "verdict" in shown
    dvc(repo_a, "plots", "show", "-o", str(repo_a / "plots-out"))
    assert (repo_a / "plots-out/index.html").is_file()
    assert ran(dvc(repo_a, "repro").stdout) == set()  # a second repro does nothing


def test_changing_runs_or_split_reruns_nothing_before_training(repo_a: Path, tmp_path: Path):
    """Shards are written once: a new seed trains only the new runs, a split change only retrains."""
    repo = tmp_path / "copy"
    shutil.copytree(repo_a, repo, symlinks=True)
    shards_before = lock_outs(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["runs"]["seeds"] = [1, 2]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = dvc(repo, "status").stdout
    assert not any(f"{stage}:" in status for stage in PREPROCESSING), status
    new_runs = {f"train@{v}-{f}-2" for v in EVERY_RUN for f in (1, 3)}
    assert ran(dvc(repo, "repro").stdout) == new_runs | {"compare"}
    assert lock_outs(repo) == shards_before  # no shard file rewritten
    comparison = json.loads((repo / "results/comparison.json").read_text())
    assert comparison["MM-dynamic vs MM-static"]["runs"] == 4
    params["split"]["val_speaker"] = "M"
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = dvc(repo, "status").stdout
    assert "train@MM-static-1-1:" in status and not any(f"{stage}:" in status for stage in PREPROCESSING), status


def test_compare_names_the_stage_of_a_missing_run(repo_a: Path, tmp_path: Path):
    repo = tmp_path / "copy"
    shutil.copytree(repo_a, repo, symlinks=True)
    (repo / "results/runs/MM-dynamic/fold3-seed1/metrics.json").unlink()
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "python"), "pipeline/compare.py", "--params", "params.yaml"],
        cwd=repo, capture_output=True, text=True,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "run `dvc repro train@MM-dynamic-3-1`" in proc.stderr


def test_a_teammate_pulls_shards_and_reruns_only_training(repo_a: Path, tmp_path: Path):
    remote = tmp_path / "remote"
    dvc(repo_a, "remote", "add", "-d", "team", str(remote))
    (repo_a / ".gitignore").write_text((repo_a / ".gitignore").read_text() + "/plots-out/\n")
    git(repo_a, "add", "-A")
    git(repo_a, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "results")
    dvc(repo_a, "push", "--run-cache")

    b = tmp_path / "b"
    subprocess.run(["git", "clone", "-q", str(repo_a), str(b)], check=True)
    link_corpus(b, "data/demo/IEMOCAP_full_release")  # `make corpus`, once per machine
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
    assert ran(dvc(b, "repro").stdout) == {"train@MM-static-1-1", "train@MM-static-3-1", "compare"}


def test_independent_runs_give_identical_preprocessing_hashes(repo_a: Path, tmp_path: Path):
    c = tiny_repo(tmp_path / "c")  # separate clone, separate cache, from scratch
    dvc(c, "repro", "demo")
    dvc(c, "repro", "shard")
    a, c_ = lock_outs(repo_a), lock_outs(c)
    assert set(a) == {
        "demo:data/demo/IEMOCAP_full_release", "corpus:data/interim/corpus-files.json",
        "extract:data/interim/utterances.parquet",
        "extract:data/interim/rejects-extract.parquet", "extract:data/interim/extract-summary.json",
        "label:data/interim/labels.parquet", "label:data/interim/rejects-label.parquet",
        "label:data/interim/label-summary.json", "faces:data/interim/faces", "faces:data/interim/contact",
        "shard:data/shards",
    }
    assert a == c_


def test_two_clones_with_the_corpus_at_different_paths_share_one_preprocessing_run(tmp_path: Path):
    """The corpus is a dependency by content: a teammate whose identical copy lives
    elsewhere pulls the preprocessing and reruns nothing; sidecars, .DS_Store and other
    sessions change nothing after the manifest."""
    a = copy_repo(tmp_path / "a", TINY)
    dvc(a, "repro", "demo")
    copies = [tmp_path / "disk1" / "IEMOCAP_full_release", tmp_path / "mnt" / "team" / "x" / "IEMOCAP_full_release"]
    for copy in copies:
        shutil.copytree(a / "data/demo/IEMOCAP_full_release", copy)
    link_corpus(a, copies[0])
    assert ran(dvc(a, "repro", "shard").stdout) == {"corpus", "extract", "label", "faces", "shard"}
    remote = tmp_path / "remote"
    dvc(a, "remote", "add", "-d", "team", str(remote))
    git(a, "add", "-A")
    git(a, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "preprocessed")
    dvc(a, "push", "--run-cache")

    b = tmp_path / "b"
    subprocess.run(["git", "clone", "-q", str(a), str(b)], check=True)
    link_corpus(b, copies[1])
    dvc(b, "pull", "--run-cache", "--with-deps", "shard")
    status = dvc(b, "status", "--with-deps", "shard").stdout
    assert "up to date" in status, status
    assert ran(dvc(b, "repro", "shard").stdout) == set()
    assert (b / "data/shards/manifest.json").read_bytes() == (a / "data/shards/manifest.json").read_bytes()

    # files the stages never read: macOS sidecars and .DS_Store anywhere change nothing ...
    corpus = copies[1]
    for d in (corpus, corpus / "Session1/dialog/EmoEvaluation", corpus / "Session3/sentences/wav/Ses03M_impro05a"):
        (d / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
        (d / "._Ses03M_impro05a_F000.wav").write_bytes(b"\x00\x05\x16\x07Mac OS X")
    assert "up to date" in dvc(b, "status", "--with-deps", "shard").stdout
    # ... and a session not selected reruns only the cheap manifest, whose bytes stay the same
    (corpus / "Session2/sentences/wav/Ses02F_impro01").mkdir(parents=True)
    shutil.copy(next((corpus / "Session1/sentences/wav").rglob("*.wav")), corpus / "Session2/sentences/wav/Ses02F_impro01/x.wav")
    status = dvc(b, "status", "--with-deps", "shard").stdout
    assert "corpus:" in status and not any(f"{s}:" in status for s in ("extract", "faces", "shard")), status
    assert ran(dvc(b, "repro", "shard").stdout) == {"corpus"}
    assert "up to date" in dvc(b, "status", "--with-deps", "shard").stdout
    # a changed byte in a file the stages read reruns what depends on it
    wav = next((corpus / "Session3/sentences/wav").rglob("Ses03M_impro05a_*.wav"))
    raw = bytearray(wav.read_bytes())
    raw[-2:] = b"\x01\x00" if raw[-2:] != b"\x01\x00" else b"\x02\x00"
    wav.write_bytes(bytes(raw))
    assert {"corpus", "extract"} <= ran(dvc(b, "repro", "shard").stdout)
