"""Shards: schema, splits, reconciliation, determinism, kill-safety and the reader."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from torch.utils.data import DataLoader

from avemotion import shards
from avemotion.shards import ShardDataset, SplitConfig
from shard_fixture import CLASSES, PX, SAMPLES, STEPS, build, fake_audio, make_inputs

HERE = Path(__file__).parent


@pytest.fixture
def built(tmp_path):
    inputs = make_inputs(tmp_path / "in")
    manifest, rejects = build(inputs, tmp_path / "shards")
    return tmp_path / "shards", manifest, rejects


def read_all(out: Path):
    return [r for p in sorted(out.glob("shard-*.parquet")) for r in pq.read_table(p).to_pylist()]


def test_schema_shapes_and_metadata(built):
    out, manifest, _ = built
    assert len(manifest["files"]) > 1  # cut by bytes
    assert manifest["files"] == [f"shard-{i:05d}.parquet" for i in range(len(manifest["files"]))]
    meta = shards.read_meta(out / manifest["files"][0])
    assert meta["classes"] == list(CLASSES) and meta["steps"] == STEPS and meta["out_px"] == PX
    schema = pq.read_schema(out / manifest["files"][0])
    assert str(schema.field("audio").type) == "binary" and str(schema.field("faces").type) == "binary"
    rows = read_all(out)
    assert len(rows) == 59
    for r in rows:
        assert len(r["audio"]) == SAMPLES * 2
        assert len(r["faces"]) == r["n_frames"] * PX * PX * 3
        audio = np.frombuffer(r["audio"], "<i2")
        ref, _ = fake_audio(Path(f"{r['utterance_id']}.wav"))
        assert np.array_equal(audio, ref)
        assert CLASSES[r["label_emotion"]] == r["emotion"] and "FM"[r["label_gender"]] == r["gender"]
    # rows ordered by split, then id; every row group holds a single split
    order = [(shards.SPLITS.index(r["split"]), r["utterance_id"]) for r in rows]
    assert order == sorted(order)
    for p in out.glob("shard-*.parquet"):
        md = pq.ParquetFile(p).metadata
        col = md.schema.names.index("split")
        for g in range(md.num_row_groups):
            st = md.row_group(g).column(col).statistics
            assert st.min == st.max


def test_reconciliation_counts_the_rejected_utterance(built):
    _, manifest, rejects = built
    rec = manifest["reconciliation"]
    assert rec == {"selected": 60, "sharded": 59, "rejected": 1, "rejected_by_stage": {"faces": {"video_missing": 1}}, "holds": True}
    assert [r["utterance_id"] for r in rejects] == ["Ses01F_impro01_M003"]
    assert sum(c["utterances"] for c in manifest["counts"].values()) == 59


def test_reconciliation_failure_is_an_error(tmp_path):
    inputs = make_inputs(tmp_path / "in")
    inputs.n_selected += 2  # two utterances vanished without a reject
    with pytest.raises(ValueError, match="62 selected utterances != 59 sharded \\+ 1 rejected"):
        build(inputs, tmp_path / "out")


def test_audio_failure_becomes_a_reject(tmp_path):
    def load(path):
        if "M004" in path.name:
            raise RuntimeError(f"{path}: Error opening: Format not recognised")
        return fake_audio(path)

    manifest, rejects = build(make_inputs(tmp_path / "in"), tmp_path / "out", load_audio=load)
    assert Counter((r["stage"], r["reason"]) for r in rejects)[("shard", "audio_unreadable")] == 3
    assert manifest["reconciliation"]["holds"]


def test_random_split_is_stratified_seeded_and_order_free():
    rows = [{"utterance_id": f"u{i:03d}", "session": 1 + i % 5, "gender": "FM"[i % 2], "emotion": CLASSES[i // 100]} for i in range(400)]
    a = shards.assign_splits(rows, SplitConfig(seed=1))
    assert a == shards.assign_splits(list(reversed(rows)), SplitConfig(seed=1))
    assert a != shards.assign_splits(rows, SplitConfig(seed=2))
    assert Counter(a.values()) == {"train": 240, "val": 80, "test": 80}
    strata = Counter((r["emotion"], r["gender"]) for r in rows)
    assert len(strata) == 8
    for (emotion, g), n in strata.items():
        part = Counter(a[r["utterance_id"]] for r in rows if r["emotion"] == emotion and r["gender"] == g)
        assert part == {"train": 0.6 * n, "val": 0.2 * n, "test": 0.2 * n}


def test_session_split_keeps_test_speakers_out_of_training(tmp_path):
    cfg = SplitConfig(method="session", test_session=2)
    manifest, _ = build(make_inputs(tmp_path / "in"), tmp_path / "out", split=cfg)
    rows = read_all(tmp_path / "out")
    by = {s: {(r["session"], r["gender"]) for r in rows if r["split"] == s} for s in shards.SPLITS}
    assert by["test"] == {(2, "F"), (2, "M")}
    assert by["val"] == {(3, "F")}  # one speaker of the session after the test session
    assert by["train"] == {(1, "F"), (1, "M"), (3, "M")}
    assert not by["train"] & by["test"] and not by["val"] & by["test"]
    assert manifest["split"] == {"method": "session"}
    with pytest.raises(ValueError, match="test_session is 7"):
        shards.assign_splits([{"utterance_id": "a", "session": 1, "gender": "F", "emotion": "neu"}], SplitConfig(method="session", test_session=7))


def digest(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}


def test_same_inputs_give_the_same_bytes(tmp_path):
    inputs = make_inputs(tmp_path / "in")
    build(inputs, tmp_path / "a")
    build(make_inputs(tmp_path / "in2"), tmp_path / "b")
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    build(inputs, tmp_path / "a", target_mb=1000)  # fewer, larger shards: stale ones removed
    # each split starts its own shard, so at least one file per split
    assert sorted(p.name for p in (tmp_path / "a").glob("shard-*")) == [f"shard-{i:05d}.parquet" for i in range(3)]


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {here!r})
    from shard_fixture import build, fake_audio, make_inputs

    def slow(path):
        time.sleep(0.05)
        return fake_audio(path)

    build(make_inputs(Path({inp!r})), Path({out!r}), load_audio=slow, target_mb=0.002)
    """
)


def test_killed_midway_leaves_nothing_complete_and_rerun_succeeds(tmp_path):
    out = tmp_path / "out"
    script = KILL_SCRIPT.format(here=str(HERE), inp=str(tmp_path / "in"), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 60
    while not list(out.glob(".part-*.tmp")) and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(out.glob(".part-*.tmp")), "the build finished before it could be killed"
    assert not list(out.glob("shard-*.parquet")) and not (out / "manifest.json").exists()
    with pytest.raises(FileNotFoundError, match="manifest.json not found"):
        ShardDataset(out, "train")
    build(make_inputs(tmp_path / "in2"), out)
    assert not list(out.glob(".part-*"))
    build(make_inputs(tmp_path / "in3"), tmp_path / "clean")
    assert digest(out) == digest(tmp_path / "clean")


@pytest.mark.parametrize("workers", [0, 2])
def test_reader_sees_every_training_utterance_once_per_epoch(built, workers):
    out, manifest, _ = built
    ds = ShardDataset(out, "train", shuffle=True, seed=3)
    assert len(ds) == manifest["counts"]["train"]["utterances"]
    loader = DataLoader(ds, batch_size=5, num_workers=workers)
    seen_orders = []
    for epoch in range(2):
        ds.set_epoch(epoch)
        ids = [u for batch in loader for u in batch["utterance_id"]]
        assert sorted(ids) == sorted(r["utterance_id"] for r in read_all(out) if r["split"] == "train")
        assert len(ids) == len(set(ids))
        seen_orders.append(ids)
    assert seen_orders[0] != seen_orders[1]  # reshuffled per epoch
    batch = next(iter(DataLoader(ShardDataset(out, "train"), batch_size=3)))
    assert batch["audio"].dtype == torch.int16 and batch["audio"].shape == (3, SAMPLES)
    assert batch["faces"].dtype == torch.uint8 and batch["faces"].shape == (3, STEPS, PX, PX, 3)
    for faces, steps in zip(batch["faces"], batch["steps"]):
        assert faces[steps:].sum() == 0  # padded beyond the valid steps


@pytest.mark.parametrize("workers", [0, 2])
def test_reader_gives_every_ddp_rank_the_same_number_of_distinct_rows(built, workers):
    out, manifest, _ = built
    parts = []
    for r in range(2):
        ds = ShardDataset(out, "train", rank=r, world=2, shuffle=True, seed=1)
        parts.append([u for b in DataLoader(ds, batch_size=2, num_workers=workers) for u in b["utterance_id"]])
    assert not set(parts[0]) & set(parts[1])
    assert len(parts[0]) == len(parts[1]) > 0  # equal steps per rank, or DDP's all-reduce hangs
    assert len(parts[0]) + len(parts[1]) > 0.5 * manifest["counts"]["train"]["utterances"]


def test_audio_only_reading_never_touches_faces(tmp_path):
    out = tmp_path / "shards"
    build(make_inputs(tmp_path / "in", per_speaker=40), out, target_mb=1000)
    usage = {}
    for mods in (("audio",), ("audio", "video")):
        counter = Counter()
        ds = ShardDataset(out, "train", modalities=mods, opener=lambda p, c=counter: shards.CountingFile(p, c))
        items = list(ds)
        assert ("faces" in items[0]) == ("video" in mods)
        usage[mods] = counter["bytes"]
    faces_bytes = sum(
        pq.ParquetFile(p).metadata.row_group(g).column(pq.ParquetFile(p).metadata.schema.names.index("faces")).total_compressed_size
        for p in out.glob("shard-*.parquet") for g in range(pq.ParquetFile(p).metadata.num_row_groups)
    )
    # train is ~60% of the rows; audio-only reads skip (nearly) all of their faces bytes
    assert usage[("audio", "video")] - usage[("audio",)] > 0.5 * faces_bytes * 0.6
    assert ShardDataset(out, "train", modalities=("audio",)).columns.count("faces") == 0
