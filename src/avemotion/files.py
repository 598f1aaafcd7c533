"""Atomic writes and the shared reject record.

Every output is written under a temporary name in the same directory and renamed into
place, so a reader (or DVC) never sees half a file, and a stage killed midway leaves
nothing that looks complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

#: One row per utterance that a stage could not use. `stage` and `reason` are short
#: machine-readable words; `detail` says what exactly was wrong (file, line, value).
REJECT_SCHEMA = pa.schema(
    [
        ("utterance_id", pa.string()),
        ("stage", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
    ]
)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it to `path` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_parquet(table: pa.Table, path: str | Path, **kwargs: Any) -> None:
    """Write a Parquet file atomically (zstd, no statistics that depend on the host)."""
    kwargs.setdefault("compression", "zstd")
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, **kwargs)


def write_json(data: Any, path: str | Path) -> None:
    """Write JSON atomically with sorted keys, so equal data gives equal bytes."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_text(text: str, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def rejects_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Reject rows (dicts with the REJECT_SCHEMA keys) as a table sorted by utterance id."""
    rows = sorted(rows, key=lambda r: (r["utterance_id"] or "", r["stage"], r["reason"]))
    return pa.Table.from_pylist(
        [{k: r.get(k) for k in REJECT_SCHEMA.names} for r in rows], schema=REJECT_SCHEMA
    )


def write_rejects(rows: Iterable[Mapping[str, Any]], path: str | Path) -> pa.Table:
    table = rejects_table(rows)
    write_parquet(table, path)
    return table
