"""Outputs: written atomically, with the permissions the user's umask gives a new file."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from avemotion import files
from shard_fixture import build, make_inputs


@pytest.fixture
def umask():
    """Set the process umask for one test, restoring the old one afterwards."""
    old = os.umask(0o077)
    os.umask(old)

    def set_umask(mask: int) -> None:
        os.umask(mask)

    yield set_umask
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_outputs_are_readable_by_group_and_others_under_umask_022(tmp_path, umask):
    umask(0o022)
    files.write_json({"b": 1, "a": [1, 2]}, tmp_path / "summary.json")
    files.write_parquet(pa.table({"x": [1, 2, 3]}), tmp_path / "table.parquet")
    files.write_rejects([{"utterance_id": "u1", "stage": "faces", "reason": "r", "detail": "d"}], tmp_path / "rejects.parquet")
    files.write_text("# report\n", tmp_path / "report.md")
    with files.atomic_path(tmp_path / "sub" / "sheet.png") as tmp:
        tmp.write_bytes(b"\x89PNG")
    for name in ("summary.json", "table.parquet", "rejects.parquet", "report.md", "sub/sheet.png"):
        assert mode(tmp_path / name) == 0o644, name
    assert json.loads((tmp_path / "summary.json").read_text()) == {"a": [1, 2], "b": 1}
    assert pq.read_table(tmp_path / "table.parquet").column("x").to_pylist() == [1, 2, 3]
    assert [p.name for p in tmp_path.glob(".*")] == []  # no temporary left


def test_outputs_follow_the_umask_not_a_fixed_mode(tmp_path, umask):
    umask(0o027)
    files.write_json({}, tmp_path / "group.json")
    umask(0o077)
    files.write_json({}, tmp_path / "private.json")
    assert mode(tmp_path / "group.json") == 0o640
    assert mode(tmp_path / "private.json") == 0o600


def test_a_writer_that_replaces_the_temporary_file_still_gives_a_readable_output(tmp_path, umask):
    # e.g. a library that writes its own mkstemp file (mode 0600) and renames it over ours
    umask(0o022)
    with files.atomic_path(tmp_path / "out.bin") as tmp:
        fd, own = tempfile.mkstemp(dir=tmp_path)
        os.write(fd, b"data")
        os.close(fd)
        os.replace(own, tmp)
    assert mode(tmp_path / "out.bin") == 0o644
    assert (tmp_path / "out.bin").read_bytes() == b"data"


def test_a_failed_block_leaves_neither_output_nor_temporary(tmp_path):
    with pytest.raises(RuntimeError):
        with files.atomic_path(tmp_path / "out.json") as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_temporaries_are_the_ones_a_rerun_removes(tmp_path):
    tmp = files.create_temporary(tmp_path / "Session1.parquet")
    assert tmp.parent == tmp_path and tmp.name.startswith(".Session1.parquet.") and tmp.name.endswith(".tmp")
    assert files.create_temporary(tmp_path / "Session1.parquet") != tmp  # never the same name twice
    assert len(files.remove_temporaries(tmp_path)) == 2
    assert list(tmp_path.iterdir()) == []


def test_shard_stage_outputs_are_readable_under_umask_022(tmp_path, umask):
    """What the shard stage writes (pipeline/shard.py): shards, rejects, manifest."""
    inputs = make_inputs(tmp_path / "in")
    umask(0o022)
    out = tmp_path / "shards"
    manifest, rejects = build(inputs, out)  # the library call: the shards
    files.write_rejects(rejects, out / "rejects.parquet")  # then, as the entry point does
    files.write_json(manifest, out / "manifest.json")
    written = sorted(out.iterdir())
    assert [p.name for p in written if p.name.startswith("shard-")], "no shards written"
    assert {p.name: mode(p) for p in written} == {p.name: 0o644 for p in written}
