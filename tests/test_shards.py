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

from avemotion import shards, splits
from avemotion.shards import ShardDataset, read_index
from avemotion.splits import Run, SplitConfig
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
    # no split in the shards; rows ordered by (session, id); every row is its own row group
    assert "split" not in schema.names
    order = [(r["session"], r["utterance_id"]) for r in rows]
    assert order == sorted(order)
    for p in out.glob("shard-*.parquet"):
        md = pq.ParquetFile(p).metadata
        assert md.num_row_groups == md.num_rows


def test_reconciliation_counts_the_rejected_utterance(built):
    _, manifest, rejects = built
    rec = manifest["reconciliation"]
    assert rec == {"selected": 60, "sharded": 59, "rejected": 1, "rejected_by_stage": {"faces": {"video_missing": 1}}, "holds": True}
    assert [r["utterance_id"] for r in rejects] == ["Ses01F_impro01_M003"]
    assert manifest["counts"]["utterances"] == 59 == sum(manifest["counts"]["session"].values())


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


def digest(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}


def test_same_inputs_give_the_same_bytes(tmp_path):
    inputs = make_inputs(tmp_path / "in")
    build(inputs, tmp_path / "a")
    build(make_inputs(tmp_path / "in2"), tmp_path / "b")
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    build(inputs, tmp_path / "a", target_mb=1000)  # fewer, larger shards: stale ones removed
    assert sorted(p.name for p in (tmp_path / "a").glob("shard-*")) == ["shard-00000.parquet"]


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
        ShardDataset(out)
    build(make_inputs(tmp_path / "in2"), out)
    assert not list(out.glob(".part-*"))
    build(make_inputs(tmp_path / "in3"), tmp_path / "clean")
    assert digest(out) == digest(tmp_path / "clean")


def train_ids(out: Path, method: str = "random", fold: int = 1) -> list[str]:
    split = splits.assign(read_index(out), SplitConfig(method=method), Run(fold, 0))
    return splits.ids_by_split(split)["train"]


@pytest.mark.parametrize("workers", [0, 2])
def test_reader_sees_every_training_utterance_once_per_epoch(built, workers):
    out, manifest, _ = built
    ids = train_ids(out)
    ds = ShardDataset(out, ids, shuffle=True, seed=3)
    assert len(ds) == len(ids) > 30  # ~60% of the 59 rows
    loader = DataLoader(ds, batch_size=5, num_workers=workers)
    seen_orders = []
    for epoch in range(2):
        ds.set_epoch(epoch)
        seen = [u for batch in loader for u in batch["utterance_id"]]
        assert sorted(seen) == sorted(ids)
        assert len(seen) == len(set(seen))
        seen_orders.append(seen)
    assert seen_orders[0] != seen_orders[1]  # reshuffled per epoch
    batch = next(iter(DataLoader(ShardDataset(out, ids), batch_size=3)))
    assert batch["audio"].dtype == torch.int16 and batch["audio"].shape == (3, SAMPLES)
    assert batch["faces"].dtype == torch.uint8 and batch["faces"].shape == (3, STEPS, PX, PX, 3)
    for faces, steps in zip(batch["faces"], batch["steps"]):
        assert faces[steps:].sum() == 0  # padded beyond the valid steps
    with pytest.raises(ValueError, match="not in the shards"):
        ShardDataset(out, ["Ses09F_impro01_F000"])


@pytest.mark.parametrize("workers", [0, 2])
def test_reader_gives_every_ddp_rank_the_same_number_of_distinct_rows(built, workers):
    out, manifest, _ = built
    ids = train_ids(out)
    parts = []
    for r in range(2):
        ds = ShardDataset(out, ids, rank=r, world=2, shuffle=True, seed=1)
        parts.append([u for b in DataLoader(ds, batch_size=2, num_workers=workers) for u in b["utterance_id"]])
    assert not set(parts[0]) & set(parts[1])
    assert len(parts[0]) == len(parts[1]) > 0  # equal steps per rank, or DDP's all-reduce hangs
    assert len(parts[0]) + len(parts[1]) >= len(ids) - 2 * max(workers, 1)


def test_training_order_is_a_uniform_shuffle(tmp_path):
    """Batches mix speakers as a uniform shuffle does, not one dialog or speaker at a time."""
    out = tmp_path / "shards"
    build(make_inputs(tmp_path / "in", sessions=(1, 2, 3, 4, 5), per_speaker=24, reject=()), out, target_mb=0.05)
    index = {r["utterance_id"]: (r["session"], r["gender"]) for r in read_index(out)}
    ids = sorted(index)
    speakers = Counter(index.values())
    n, batch = len(ids), 8
    # P(two distinct rows of a uniform permutation share a speaker)
    expected = sum(k * (k - 1) for k in speakers.values()) / (n * (n - 1))
    ds = ShardDataset(out, ids, modalities=("audio",), shuffle=True, seed=7)
    same = pairs = 0
    positions = np.zeros((n, n // batch))  # how often each row lands in each batch slot
    for epoch in range(40):
        ds.set_epoch(epoch)
        order = [item["utterance_id"] for item in ds]
        assert sorted(order) == ids  # every row exactly once per epoch
        for i in range(0, n - batch + 1, batch):
            b = [index[u] for u in order[i : i + batch]]
            same += sum(b[x] == b[y] for x in range(batch) for y in range(x + 1, batch))
            pairs += batch * (batch - 1) // 2
        for pos, u in enumerate(order[: (n // batch) * batch]):
            positions[ids.index(u), pos // batch] += 1
    share = same / pairs
    # 40 epochs x 30 batches x 28 pairs: the standard error of the share is ~0.005 around 0.097
    assert abs(share - expected) < 0.03, (share, expected)
    # the old block order (row groups of 16 consecutive ids) gives about 0.5 here
    # and a row is as likely in an early batch as in a late one
    early, late = positions[:, : positions.shape[1] // 2].sum(), positions[:, positions.shape[1] // 2 :].sum()
    assert abs(early - late) / (early + late) < 0.05


def test_audio_only_reading_never_touches_faces(tmp_path):
    out = tmp_path / "shards"
    build(make_inputs(tmp_path / "in", per_speaker=40), out, target_mb=1000)
    ids = train_ids(out)
    usage = {}
    for mods in (("audio",), ("audio", "video")):
        counter = Counter()
        ds = ShardDataset(out, ids, modalities=mods, opener=lambda p, c=counter: shards.CountingFile(p, c))
        counter.clear()  # the index read at construction is not part of an epoch
        items = list(ds)
        assert ("faces" in items[0]) == ("video" in mods)
        usage[mods] = counter["bytes"]
    faces_bytes = sum(
        pq.ParquetFile(p).metadata.row_group(g).column(pq.ParquetFile(p).metadata.schema.names.index("faces")).total_compressed_size
        for p in out.glob("shard-*.parquet") for g in range(pq.ParquetFile(p).metadata.num_row_groups)
    )
    # train is ~60% of the rows; audio-only reads skip all of their faces bytes
    assert usage[("audio", "video")] - usage[("audio",)] > 0.5 * faces_bytes * 0.6
    assert ShardDataset(out, ids, modalities=("audio",)).columns.count("faces") == 0


def test_a_session_fold_reads_only_the_bytes_of_its_sessions(tmp_path):
    out = tmp_path / "shards"
    build(make_inputs(tmp_path / "in", sessions=(1, 2, 3, 4, 5), per_speaker=20, reject=()), out, target_mb=1000)
    split = splits.assign(read_index(out), SplitConfig(method="session"), Run(2, 0))
    test_ids = splits.ids_by_split(split)["test"]
    assert {u[:5] for u in test_ids} == {"Ses02"}
    files = list(out.glob("shard-*.parquet"))
    footers = sum(pq.ParquetFile(p).metadata.serialized_size + 8 for p in files)
    data = sum(p.stat().st_size for p in files) - footers
    counter = Counter()
    ds = ShardDataset(out, test_ids, opener=lambda p: shards.CountingFile(p, counter))
    counter.clear()
    assert len(list(ds)) == len(test_ids) == 40
    # one session of five: about a fifth of the row bytes (plus the footers and the 64 KiB
    # that readers fetch speculatively at the end of a file), never the other four fifths
    assert counter["bytes"] - footers < 0.3 * data


def test_a_failed_write_names_the_file_and_leaves_nothing(tmp_path):
    # a file-size limit in a child process: writing the shards fails with EFBIG
    script = f"""
import resource, signal, sys
from pathlib import Path
sys.path.insert(0, {str(Path(__file__).parent)!r})
from shard_fixture import build, make_inputs
from avemotion.files import OutputError
inputs = make_inputs(Path({str(tmp_path)!r}) / "in")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
try:
    build(inputs, Path({str(tmp_path)!r}) / "shards", target_mb=1000)
except OutputError as exc:
    print("OutputError:", exc)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "OutputError: cannot write" in done.stdout and "File too large" in done.stdout, done.stdout
    assert "shards/.part-00000.tmp" in done.stdout
    assert not list((tmp_path / "shards").iterdir())
