"""Training in several processes from params (`train.nproc`), through `dvc repro`, on CPU."""

from __future__ import annotations

import json

import pytest
import torch

from test_pipeline import copy_repo, dvc
from test_team import TINY_TRAINING

pytestmark = pytest.mark.slow


def test_train_nproc_2_trains_one_stage_in_two_gloo_processes(tmp_path):
    repo = copy_repo(tmp_path, {**TINY_TRAINING, "train": {**TINY_TRAINING["train"], "nproc": 2, "device": "cpu"}})
    dvc(repo, "repro", "demo")  # data/corpus links to the demo: made first, as `make repro` does
    out = dvc(repo, "repro", "train@MM-dynamic-1-1")
    log = out.stdout + out.stderr
    assert "torch.distributed.run --standalone --nproc_per_node=2 pipeline/train.py" in log
    assert "process 2 of 2" in log  # the second rank ran, under gloo on the CPU
    run = repo / "results/runs/MM-dynamic/fold1-seed1"
    for name in ("metrics.json", "curves.csv", "predictions.csv"):
        assert (run / name).is_file(), name  # written once, by the first process
    state = torch.load(run / "checkpoints/last.pt", map_location="cpu", weights_only=True)
    config = json.loads(state["config"])
    assert config["processes"] == 2 and config["train"]["nproc"] == 2
    metrics = json.loads((run / "metrics.json").read_text())
    assert sum(metrics["n"].values()) > 0 and 0 < metrics["weights"]["emotion"] < 1
    # DVC recorded the stage: nothing to rerun
    assert "train@MM-dynamic-1-1" not in dvc(repo, "status", "train@MM-dynamic-1-1").stdout
