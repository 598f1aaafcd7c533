"""Atomic writes and the shared reject record.

Every output is written under a temporary name in the same directory and renamed into
place, so a reader (or DVC) never sees half a file, and a stage killed midway leaves
nothing that looks complete. A write that fails (disk full, file too large, permission
denied) raises OutputError, one line naming the file and the cause.

Outputs get the permissions the user's umask gives any new file (0644 under the usual
umask 022), not the owner-only 0600 of `tempfile.mkstemp`: on a shared server teammates
read each other's workspaces, including the copies DVC makes of cached outputs.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import stat
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


class OutputError(OSError):
    """An output could not be written (disk full, file too large, no permission).

    The message names the file and the cause in one line; stages report it as a user
    error, not a traceback.
    """

    def __str__(self) -> str:
        return str(self.strerror)


_HINTS = {
    errno.ENOSPC: "free some space on that file system",
    errno.EDQUOT: "free some space or ask for a larger quota",
    errno.EFBIG: "the file system or a file-size limit (`ulimit -f`) does not allow a file this big",
    errno.EACCES: "check the permissions of the directory",
    errno.EPERM: "check the permissions of the directory",
    errno.EROFS: "the file system is read-only",
}


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Turn an OSError raised while writing `path` into an OutputError naming it."""
    try:
        yield
    except OutputError:
        raise
    except OSError as exc:
        # pyarrow wraps the cause in its own words; the errno says it plainly
        cause = os.strerror(exc.errno) if exc.errno else (str(exc) or type(exc).__name__)
        hint = _HINTS.get(exc.errno)
        raise OutputError(exc.errno, f"cannot write {path}: {cause}" + (f" ({hint})" if hint else "")) from exc


#: Mode a new output is created with; the kernel takes the user's umask (and a default
#: ACL of the directory) off it, as for any file a program creates with open().
NEW_FILE_MODE = 0o666


def create_temporary(path: str | Path) -> Path:
    """Create an empty file beside `path`, named ``.<name>.<random>.tmp``, and return it.

    Like `tempfile.mkstemp` (exclusive creation, a name nobody else holds) but with the
    permissions of a normal new file instead of mkstemp's owner-only 0600.
    """
    path = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, flags, NEW_FILE_MODE)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(errno.EEXIST, f"no free temporary name beside {path}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it to `path` if the block succeeds.

    The file at `path` gets the permissions the user's umask gives a new file, even if
    the block replaced the temporary file with one of its own. An OSError on the way
    (disk full, file too large, permission denied) becomes an OutputError naming
    `path`; the temporary file is removed either way.
    """
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = create_temporary(path)
        mode = stat.S_IMODE(tmp_path.stat().st_mode)
    try:
        with writing(path):
            yield tmp_path
            if stat.S_IMODE(tmp_path.stat().st_mode) != mode:
                os.chmod(tmp_path, mode)
            os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def remove_temporaries(directory: str | Path) -> list[Path]:
    """Remove the temporary files `atomic_path` left in `directory` when a run was killed.

    Only names of atomic_path's pattern (``.<name>.<random>.tmp``) are touched. Returns
    what was removed.
    """
    directory = Path(directory)
    removed = []
    if directory.is_dir():
        for p in sorted(directory.glob(".*.tmp")):
            if p.is_file():
                p.unlink()
                removed.append(p)
    return removed


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
