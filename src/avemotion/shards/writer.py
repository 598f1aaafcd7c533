"""The shard format and its writer: `ShardsConfig`, the schema and its metadata, `write_shards`."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Iterable, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from .. import files

GENDERS = ("F", "M")
META_KEY = b"avemotion"


@dataclasses.dataclass(frozen=True)
class ShardsConfig:
    """params.yaml `shards`."""

    target_mb: float = 256.0  # bytes per shard file, before the next one starts
    compression: Literal["zstd", "none"] = "zstd"

    def validate(self, where: str = "shards") -> None:
        from ..config import ParamsError

        if self.target_mb <= 0:
            raise ParamsError(f"params: '{where}.target_mb' must be > 0")


def shard_schema(meta: dict) -> pa.Schema:
    fields = [
        ("utterance_id", pa.string()),
        ("session", pa.int32()),
        ("dialog", pa.string()),
        ("gender", pa.string()),
        ("emotion", pa.string()),
        ("label_emotion", pa.int64()),
        ("label_gender", pa.int64()),
        ("audio", pa.binary()),
        ("audio_len", pa.int64()),
        ("n_frames", pa.int64()),
        ("face_found", pa.bool_()),
        ("frames_detected", pa.int64()),
        # last, so that reading the other columns of a row never spans its faces bytes
        # (readers coalesce nearby byte ranges)
        ("faces", pa.binary()),
    ]
    return pa.schema(fields, metadata={META_KEY: json.dumps(meta, sort_keys=True).encode()})


def read_meta(path: str | Path) -> dict:
    """The tensor shapes, classes and params a shard was built with."""
    md = pq.read_schema(path).metadata or {}
    if META_KEY not in md:
        raise ValueError(f"{path}: not an avemotion shard (no '{META_KEY.decode()}' schema metadata); rerun `dvc repro shard`")
    return json.loads(md[META_KEY])


def write_shards(
    rows: Iterable[dict],
    out_dir: Path,
    meta: dict,
    cfg: ShardsConfig,
) -> list[str]:
    """Write rows, in the order given, into byte-sized shards of one-row row groups.

    At most about `target_mb` of rows is held in memory. Everything is written to hidden
    temporary files that are renamed to ``shard-00000.parquet``, ... only once all are
    complete; shards left from an earlier run with more files are removed.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for leftover in out_dir.glob(".part-*.tmp"):
        leftover.unlink()  # from a run that was killed
    schema = shard_schema(meta)
    target = cfg.target_mb * 1e6
    compression = None if cfg.compression == "none" else cfg.compression
    parts: list[Path] = []
    buffer: list[dict] = []
    held = 0

    def flush() -> None:
        nonlocal buffer, held
        if not buffer:
            return
        tmp = out_dir / f".part-{len(parts):05d}.tmp"
        with files.writing(tmp), pq.ParquetWriter(tmp, schema, compression=compression, write_statistics=["session"]) as w:
            for row in buffer:
                w.write_table(pa.Table.from_pylist([row], schema=schema), row_group_size=1)
        parts.append(tmp)
        buffer, held = [], 0

    try:
        for row in rows:
            buffer.append(row)
            held += len(row["audio"]) + len(row["faces"])
            if held >= target:
                flush()
        flush()
        names = []
        for tmp in parts:
            name = f"shard-{len(names):05d}.parquet"
            with files.writing(out_dir / name):
                os.replace(tmp, out_dir / name)
            names.append(name)
    finally:
        for tmp in out_dir.glob(".part-*.tmp"):
            tmp.unlink()
    for stale in sorted(out_dir.glob("shard-*.parquet")):
        if stale.name not in names:
            stale.unlink()
    return names
