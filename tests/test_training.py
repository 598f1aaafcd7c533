"""Training on tiny shards: outputs, resume = uninterrupted, compare recomputes from predictions."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import shutil
from pathlib import Path

import pytest

from avemotion import training
from avemotion.training import checkpoints
from avemotion.model import ModelConfig
from avemotion import splits
from avemotion.shards import read_index
from shard_fixture import build, make_inputs

TINY_MODEL = ModelConfig(
    conv1_filters=4, conv1_width=9, conv2_filters=4, conv2_width=31, channel_pool=2,
    visual_backbone="mobilenet_v3_small", lstm_hidden=8, lstm_layers=1, dropout=0.5,
)
TINY_TRAIN = training.TrainConfig(lr=0.01, epochs=3, batch=4, seed=3, device="cpu", step_epochs=2, threads=1)


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sh")
    build(make_inputs(root / "in", per_speaker=6), root / "shards", target_mb=1000)
    return root / "shards"


def run(shard_dir, out, variant, **kw):
    return training.fit(shard_dir, out, "v", variant, TINY_MODEL, TINY_TRAIN, progress=False, **kw)


@pytest.mark.parametrize("weighting", ["dynamic", "uncertainty", "dwa", "gradnorm"])
def test_resume_after_a_kill_equals_an_uninterrupted_run(shard_dir, tmp_path, weighting):
    variant = training.VariantConfig(modalities=("audio", "video"), weighting=weighting)
    full = run(shard_dir, tmp_path / "full", variant)
    assert run(shard_dir, tmp_path / "resumed", variant, stop_after_epoch=2) is None
    assert not (tmp_path / "resumed" / "metrics.json").exists()
    resumed = run(shard_dir, tmp_path / "resumed", variant)
    assert resumed == full
    assert (tmp_path / "full" / "curves.csv").read_text() == (tmp_path / "resumed" / "curves.csv").read_text()
    assert (tmp_path / "full" / "predictions.csv").read_text() == (tmp_path / "resumed" / "predictions.csv").read_text()


def test_outputs_and_metrics_shape(shard_dir, tmp_path):
    variant = training.VariantConfig(modalities=("audio",), weighting="static", options={"weights": [0.5, 0.5]})
    m = run(shard_dir, tmp_path, variant)
    assert set(m) >= {"modalities", "weighting", "weights", "val", "test", "n"}
    assert m["weights"] == {"emotion": 0.5, "gender": 0.5}
    assert set(m["val"]) == {"nll_emotion", "nll_gender", "nll_sum", "weighted"}
    assert m["val"]["nll_sum"] == pytest.approx(m["val"]["nll_emotion"] + m["val"]["nll_gender"])
    assert m["val"]["weighted"] == pytest.approx(0.5 * m["val"]["nll_sum"])
    assert set(m["test"]) == {"emotion_wa", "emotion_ua", "emotion_f1", "gender_acc", "nll_emotion", "nll_gender", "nll_sum"}
    assert sum(m["n"].values()) == 35  # 36 utterances, one rejected
    curves = (tmp_path / "curves.csv").read_text().splitlines()
    assert curves[0].split(",") == list(training.CURVE_FIELDS) and len(curves) == 1 + TINY_TRAIN.epochs
    assert json.loads((tmp_path / "metrics.json").read_text()) == m
    # the test metrics are recomputed from the saved predictions alone
    preds = training.read_predictions(tmp_path / "predictions.csv")
    assert len(preds["utterance_id"]) == m["n"]["test"]
    assert training.metrics_from_predictions(preds, ["ang", "hap", "neu", "sad"]) == m["test"]


def curves(path):
    return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(open(path))]


@pytest.mark.parametrize("weighting", ["static", "uncertainty", "gradnorm"])
def test_curves_log_the_weighted_task_loss_and_the_weightings_extra_terms_apart(shard_dir, tmp_path, weighting):
    variant = training.VariantConfig(modalities=("audio",), weighting=weighting)
    run(shard_dir, tmp_path, variant)
    rows = curves(tmp_path / "curves.csv")
    for r in rows:
        # validation: the same quantity, with the epoch's final weights
        assert r["val_weighted"] == pytest.approx(r["w_emotion"] * r["val_nll_emotion"] + r["w_gender"] * r["val_nll_gender"], rel=1e-4)
    if weighting == "static":
        for r in rows:
            assert r["train_extra"] == pytest.approx(0, abs=1e-6)
            assert r["train_weighted"] == pytest.approx(0.5 * (r["train_nll_emotion"] + r["train_nll_gender"]), rel=1e-4)
    elif weighting == "uncertainty":
        assert any(abs(r["train_extra"]) > 1e-6 for r in rows)  # + s_e + s_g, apart from the weighted loss
    else:
        assert all(r["train_extra"] > 0 for r in rows)  # GradNorm's gradient loss, a sum of absolute values
        assert all(r["w_emotion"] + r["w_gender"] == pytest.approx(2.0, rel=1e-4) for r in rows)
        state = training.load_checkpoint(tmp_path / "checkpoints" / "best.pt")
        assert state["weighting"]["initial_losses"].tolist() == pytest.approx([math.log(4), math.log(2)])


def test_gradnorm_first_batch_initial_losses_through_fit(shard_dir, tmp_path):
    variant = training.VariantConfig(modalities=("audio",), weighting="gradnorm", options={"initial_losses": "first_batch"})
    run(shard_dir, tmp_path, variant)
    initial = training.load_checkpoint(tmp_path / "checkpoints" / "last.pt")["weighting"]["initial_losses"].tolist()
    assert initial != pytest.approx([math.log(4), math.log(2)]) and all(x > 0 for x in initial)


def test_a_run_without_a_finite_validation_loss_fails_and_never_reports_an_old_best(shard_dir, tmp_path):
    variant = training.VariantConfig(modalities=("audio",), weighting="dynamic")
    run(shard_dir, tmp_path, variant)  # a good run of the same architecture leaves best.pt and metrics
    assert (tmp_path / "checkpoints" / "best.pt").is_file() and (tmp_path / "metrics.json").is_file()
    diverging = dataclasses.replace(TINY_TRAIN, lr=math.inf)  # the first step makes every weight inf or NaN
    with pytest.raises(training.TrainError, match=r"epoch 1.*lower train.lr.*shards' audio"):
        training.fit(shard_dir, tmp_path, "v", variant, TINY_MODEL, diverging, progress=False)
    assert not (tmp_path / "metrics.json").exists() and not (tmp_path / "predictions.csv").exists()
    assert not (tmp_path / "checkpoints" / "best.pt").exists()
    assert "nan" in (tmp_path / "curves.csv").read_text().lower()


def test_a_best_checkpoint_of_another_run_is_refused(shard_dir, tmp_path):
    variant = training.VariantConfig(modalities=("audio",), weighting="dynamic")
    run(shard_dir, tmp_path / "a", variant)
    training.fit(shard_dir, tmp_path / "b", "v", variant, TINY_MODEL, dataclasses.replace(TINY_TRAIN, lr=0.02), progress=False)
    shutil.copy(tmp_path / "b" / "checkpoints" / "best.pt", tmp_path / "a" / "checkpoints" / "best.pt")
    with pytest.raises(training.TrainError, match="written by another run.*delete"):
        run(shard_dir, tmp_path / "a", variant)  # resumes after its last epoch, then loads best.pt
    assert not (tmp_path / "a" / "metrics.json").exists()


def test_a_changed_config_never_resumes_from_a_stale_checkpoint(shard_dir, tmp_path):
    variant = training.VariantConfig(modalities=("audio",), weighting="dynamic")
    run(shard_dir, tmp_path, variant, stop_after_epoch=1)
    other = dataclasses.replace(TINY_TRAIN, lr=0.02)
    m = training.fit(shard_dir, tmp_path, "v", variant, TINY_MODEL, other, progress=False)
    assert len((tmp_path / "curves.csv").read_text().splitlines()) == 1 + other.epochs
    assert m["best_epoch"] >= 1


def test_bad_training_input_is_named(shard_dir, tmp_path):
    with pytest.raises(training.TrainError, match="variants.v: .*valid"):
        run(shard_dir, tmp_path, training.VariantConfig(modalities=("audio",), weighting="magic"))
    with pytest.raises(training.TrainError, match=r"rerun `dvc repro shard`"):
        training.check_shards({"classes": ["a", "b"], "steps": 5}, {"classes": ["ang", "hap", "neu", "sad"], "steps": 5}, shard_dir)
    if not __import__("torch").cuda.is_available():
        with pytest.raises(training.TrainError, match="no CUDA device"):
            training.choose_device(dataclasses.replace(TINY_TRAIN, device="cuda"))


def test_other_shards_never_resume_and_a_finished_run_rewrites_its_outputs(shard_dir, tmp_path):
    variant = training.VariantConfig(modalities=("audio",), weighting="dynamic")
    first = run(shard_dir, tmp_path / "out", variant)
    (tmp_path / "out" / "curves.csv").unlink()
    assert run(shard_dir, tmp_path / "out", variant) == first  # resumed after the last epoch
    assert (tmp_path / "out" / "curves.csv").is_file()
    # the same shards under another run's split: never resumed from the first run's checkpoint
    shutil.copytree(tmp_path / "out" / "checkpoints", tmp_path / "o2" / "checkpoints")
    other_split = splits.assign(read_index(shard_dir), splits.SplitConfig(), splits.Run(fold=2, seed=TINY_TRAIN.seed))
    m = training.fit(shard_dir, tmp_path / "o2", "v", variant, TINY_MODEL, TINY_TRAIN, progress=False, split=other_split)
    assert m["n"] == first["n"] and m != first  # trained afresh on the other split
    # other shards (other preprocessing): never resumed either
    other = tmp_path / "other"
    build(make_inputs(tmp_path / "in", per_speaker=6, reject=()), other, target_mb=1000)
    shutil.copytree(tmp_path / "out" / "checkpoints", tmp_path / "o3" / "checkpoints")
    m = training.fit(other, tmp_path / "o3", "v", variant, TINY_MODEL, TINY_TRAIN, progress=False)
    assert sum(m["n"].values()) == sum(first["n"].values()) + 1


def test_a_forced_rerun_reevaluates_a_finished_run_unless_its_training_code_changed(shard_dir, tmp_path, monkeypatch):
    variant = training.VariantConfig(modalities=("audio",), weighting="dynamic")
    first = run(shard_dir, tmp_path, variant)
    # `dvc repro -f` with nothing changed: the finished last.pt is re-evaluated, no epoch trains
    assert run(shard_dir, tmp_path, variant, stop_after_epoch=1) == first
    # the model's code changed (DVC reruns the stage for it): trained from scratch, not resumed
    real = checkpoints._source_bytes
    monkeypatch.setattr(checkpoints, "_source_bytes", lambda m: real(m) + (b"# edited" if m == "model" else b""))
    assert run(shard_dir, tmp_path, variant, stop_after_epoch=1) is None  # stopped after a trained epoch
    assert len((tmp_path / "curves.csv").read_text().splitlines()) == 1 + 1
    # the documented way to retrain with unchanged code: delete the run's checkpoints
    monkeypatch.undo()
    shutil.rmtree(tmp_path / "checkpoints")
    assert run(shard_dir, tmp_path, variant, stop_after_epoch=1) is None


def test_the_training_code_digest_covers_every_file_of_its_packages(monkeypatch):
    from avemotion import shards

    base = training.code_digest()
    real_rglob, real_read = Path.rglob, Path.read_bytes
    # the order the file system lists a package's files in does not change the digest
    monkeypatch.setattr(Path, "rglob", lambda self, pattern: reversed(list(real_rglob(self, pattern))))
    assert training.code_digest() == base
    sources = [f for pkg in (training, shards) for f in sorted(Path(pkg.__file__).parent.glob("*.py"))]
    assert len(sources) > 2
    for edited in sources:  # an edit to any module of the packages trains from scratch
        monkeypatch.setattr(Path, "read_bytes", lambda self, e=edited: real_read(self) + (b"# edited" if self == e else b""))
        assert training.code_digest() != base, edited


@pytest.mark.slow
def test_two_process_gloo_ddp_matches_the_single_process_trend(shard_dir, tmp_path):
    import subprocess
    import sys

    variant = training.VariantConfig(modalities=("audio", "video"), weighting="dynamic")
    single = run(shard_dir, tmp_path / "single", variant)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(Path(__file__).with_name("ddp_train.py")), str(shard_dir), str(tmp_path / "ddp"), "dynamic"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert ddp["n"] == single["n"]
    read = lambda p: [float(r["train_weighted"]) for r in csv.DictReader(open(p))]
    a, b = read(tmp_path / "single" / "curves.csv"), read(tmp_path / "ddp" / "curves.csv")
    assert len(a) == len(b) == TINY_TRAIN.epochs
    for x, y in zip(a, b):
        assert abs(x - y) < 0.25 * x
    # both ranks' task weights stay in sync: the master's final weights are what the report shows
    assert 0 < ddp["weights"]["emotion"] < 1 and ddp["weights"]["emotion"] + ddp["weights"]["gender"] == pytest.approx(1)


def test_train_nproc_launches_torchrun_only_when_needed():
    from avemotion.config import ParamsError, build

    argv = ["pipeline/train.py", "--variant", "MM-static", "--fold", "1", "--seed", "7"]
    assert training.torchrun_command(1, argv, {}) is None  # one process: no torchrun start-up cost
    cmd = training.torchrun_command(2, argv, {"PATH": "/bin"})
    assert cmd[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"] and cmd[5:] == argv
    # started by torchrun (the command above, or by hand on several nodes): train here
    assert training.torchrun_command(2, argv, {"LOCAL_WORLD_SIZE": "2", "RANK": "3"}) is None
    with pytest.raises(training.TrainError, match=r"started 4 process\(es\) per node but train.nproc is 1; set train.nproc: 4"):
        training.torchrun_command(1, argv, {"LOCAL_WORLD_SIZE": "4"})
    assert build(training.TrainConfig, {"train": {"nproc": 8}}, "train").nproc == 8
    with pytest.raises(ParamsError, match=r"'train.nproc' must be > 0"):
        build(training.TrainConfig, {"train": {"nproc": 0}}, "train")


def test_more_processes_than_gpus_is_named(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(training.TrainError, match=r"2 visible, 3 processes in all; set train.nproc"):
        training.choose_device(dataclasses.replace(TINY_TRAIN, device="cuda"), training.Dist(rank=2, world=3, local_rank=2))


def test_device_choice_falls_back_to_cpu_with_a_warning_unless_insisted():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.warns(UserWarning, match="no CUDA device found: training on CPU"):
        assert training.choose_device(dataclasses.replace(TINY_TRAIN, device="auto")).type == "cpu"
    with pytest.raises(training.TrainError, match="train.device is cuda"):
        training.choose_device(dataclasses.replace(TINY_TRAIN, device="cuda"))
    with pytest.raises(training.TrainError, match="fp16 needs CUDA"):
        training.amp_dtype(dataclasses.replace(TINY_TRAIN, amp="fp16"), torch.device("cpu"))
    assert training.amp_dtype(dataclasses.replace(TINY_TRAIN, amp="auto"), torch.device("cpu")) is None


def test_shards_built_with_other_preprocessing_params_are_refused():
    # what the shard stage records: every preprocessing section, defaults filled in
    from avemotion.config import as_dict, build, load_params
    from avemotion.sections import section_classes

    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    classes = section_classes()
    recorded = {s: as_dict(build(classes[s], params, s)) for s in ("corpus", "labels", "audio", "video", "faces", "split", "shards")}
    manifest = {"params": recorded}
    training.check_manifest_params(manifest, params, "data/shards")

    def changed(section, **values):
        return {**params, section: {**params[section], **values}}

    for section, key, value in [("labels", "ties", "drop"), ("faces", "crop_px", 200), ("corpus", "dialogs", "all"), ("shards", "compression", "none")]:
        with pytest.raises(training.TrainError) as e:
            training.check_manifest_params(manifest, changed(section, **{key: value}), "data/shards")
        msg = str(e.value)
        assert f"{section}.{key}: shards have {recorded[section][key]!r}, params.yaml has {value!r}" in msg
        assert "`dvc repro shard`" in msg
    with pytest.raises(training.TrainError, match=r"labels.categories.Anger: shards have 'ang', params.yaml has '<not in params>'"):
        cats = {k: v for k, v in params["labels"]["categories"].items() if k != "Anger"}
        training.check_manifest_params(manifest, changed("labels", categories=cats), "data/shards")
    # what cannot change a shard's bytes is not a mismatch; nor are the sections training reads
    training.check_manifest_params(manifest, changed("faces", workers=7, device="cpu"), "data/shards")
    training.check_manifest_params(manifest, changed("train", epochs=1), "data/shards")
