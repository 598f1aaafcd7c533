"""Training shards: the Parquet writer, the manifest, and a column-projecting reader.

One row per utterance; tensors in binary columns (a Parquet list<uint8> column is stored
as 32-bit integers: about 3.5x larger and 3-4x slower to read), their shapes and dtypes
in the schema metadata:

    audio   int16 little-endian, (samples,) = audio.seconds * 16000, zero-padded/cropped
    faces   uint8 RGB, (n_frames, out_px, out_px, 3), C order, only the valid frames

The shards hold no split: they are written once per preprocessing params, and every run
(fold x seed, see `splits`) picks its rows by utterance id. Rows are ordered by
(session, utterance_id) and every row is its own row group, so a reader reaches any row
without decoding another: a run reads exactly the rows of its split, a leave-one-session-out
fold never touches the bytes of sessions it does not use, the training order can be a
uniform shuffle of the split, and a reader that needs no faces never reads the faces
column chunks (Parquet stores each column of each row group as its own byte range).

Shards are cut by bytes (``shards.target_mb``) into ``shard-00000.parquet``, ...; the
same inputs and params give the same bytes (fixed order, no timestamps or host names).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import files

log = logging.getLogger(__name__)

GENDERS = ("F", "M")
META_KEY = b"avemotion"


@dataclasses.dataclass(frozen=True)
class ShardsConfig:
    """params.yaml `shards`."""

    target_mb: float = 256.0  # bytes per shard file, before the next one starts
    compression: Literal["zstd", "none"] = "zstd"

    def validate(self, where: str = "shards") -> None:
        from .config import ParamsError

        if self.target_mb <= 0:
            raise ParamsError(f"params: '{where}.target_mb' must be > 0")


# ----------------------------------------------------------------------------- writer


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


# ----------------------------------------------------------------------------- manifest


def reconcile(n_selected: int, n_sharded: int, rejects: Sequence[dict]) -> dict:
    """selected = sharded + rejected, with the rejects broken down by stage and reason."""
    by_stage: dict[str, Counter] = {}
    for r in rejects:
        by_stage.setdefault(r["stage"], Counter())[r["reason"]] += 1
    rejected = len(rejects)
    return {
        "selected": n_selected,
        "sharded": n_sharded,
        "rejected": rejected,
        "rejected_by_stage": {s: dict(sorted(c.items())) for s, c in sorted(by_stage.items())},
        "holds": n_selected == n_sharded + rejected,
    }


def counts(rows: Sequence[dict]) -> dict:
    """Sharded utterances by session, emotion and gender (splits are per run, not here)."""
    return {
        "utterances": len(rows),
        "emotion": dict(sorted(Counter(r["emotion"] for r in rows).items())),
        "gender": dict(sorted(Counter(r["gender"] for r in rows).items())),
        "session": {str(k): v for k, v in sorted(Counter(r["session"] for r in rows).items())},
        "session_emotion": {
            str(s): dict(sorted(Counter(r["emotion"] for r in rows if r["session"] == s).items()))
            for s in sorted({r["session"] for r in rows})
        },
        "face_found": sum(bool(r["face_found"]) for r in rows),
    }


# ----------------------------------------------------------------------------- reader

try:  # the reader is a torch dataset; the writer above needs no torch
    import torch
    from torch.utils.data import IterableDataset, get_worker_info
except ImportError:  # pragma: no cover - torch is a hard dependency of the package
    torch = None
    IterableDataset = object


COLUMNS_ALWAYS = ("utterance_id", "label_emotion", "label_gender", "n_frames")
INDEX_COLUMNS = ("utterance_id", "session", "dialog", "gender", "emotion")


def _open_manifest(shard_dir: Path) -> tuple[dict, list[Path]]:
    manifest = shard_dir / "manifest.json"
    if not manifest.is_file():
        raise FileNotFoundError(
            f"{manifest} not found: the shard directory is missing or incomplete; run `dvc repro shard`"
        )
    data = json.loads(manifest.read_text())
    paths = [shard_dir / name for name in data["files"]]
    missing = [p.name for p in paths if not p.is_file()]
    if missing or not paths:
        raise FileNotFoundError(f"{shard_dir}: shards {missing or 'all'} missing; run `dvc repro shard`")
    return data, paths


def read_index(shard_dir: str | Path, opener: Callable[[Path], Any] | None = None) -> list[dict]:
    """One light record per sharded utterance: INDEX_COLUMNS plus its file and row group.

    Reads only the small columns (a few bytes per utterance): what a run needs to compute
    its split (`splits.assign`) and a reader to find its rows.
    """
    _, paths = _open_manifest(Path(shard_dir))
    opener = opener or (lambda p: open(p, "rb"))
    out = []
    for path in paths:
        with opener(path) as fh:
            pf = pq.ParquetFile(fh)
            if "split" in pf.schema_arrow.names or pf.metadata.num_rows != pf.metadata.num_row_groups:
                raise ValueError(f"{path}: shards of an older layout; rerun `dvc repro shard`")
            table = pf.read(columns=list(INDEX_COLUMNS))
        for g, row in enumerate(table.to_pylist()):
            out.append({**row, "path": path, "row_group": g})
    return out


class ShardDataset(IterableDataset):
    """Iterate some utterances of the shards as uint8/int16 tensors, reading only needed columns.

    `ids` names the utterances (one run's split, see `splits.assign`); None means all.
    Each item: ``{"utterance_id", "emotion" (int64), "gender" (int64), "steps" (valid time
    steps), "audio" (int16 (S,)) and "audio_len" if audio is used, "faces" (uint8 (T, H, W,
    3), zero beyond `steps`) if video is used}``. Conversion to float happens on the
    training device.

    Every row is its own row group, so with ``shuffle`` the order is a uniform random
    permutation of `ids`, drawn anew per epoch from (`seed`, epoch) (call `set_epoch`),
    not an order of blocks. Work is spread over DataLoader workers (and DDP ranks via
    `rank`/`world`) row by row, without duplicates. Use ``batch_size`` on the DataLoader
    as usual.
    """

    def __init__(
        self,
        shard_dir: str | Path,
        ids: Iterable[str] | None = None,
        modalities: Sequence[str] = ("audio", "video"),
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        opener: Callable[[Path], Any] | None = None,
        index: Sequence[dict] | None = None,
    ) -> None:
        bad = set(modalities) - {"audio", "video"}
        if bad or not modalities:
            raise ValueError(f"modalities must be a non-empty subset of audio, video; got {list(modalities)}")
        if isinstance(ids, str):
            raise TypeError("ids must be a collection of utterance ids, not a string")
        self.dir = Path(shard_dir)
        self.manifest, self.paths = _open_manifest(self.dir)
        self.meta = read_meta(self.paths[0])
        self.modalities = tuple(modalities)
        self.shuffle, self.seed, self.rank, self.world = shuffle, seed, rank, world
        self.epoch = 0
        self.opener = opener or (lambda p: open(p, "rb"))
        self.columns = list(COLUMNS_ALWAYS)
        if "audio" in modalities:
            self.columns += ["audio", "audio_len"]
        if "video" in modalities:
            self.columns += ["faces"]
        index = list(index) if index is not None else read_index(self.dir, self.opener)
        if ids is None:
            self.units = [(r["path"], r["row_group"]) for r in index]
        else:
            where = {r["utterance_id"]: (r["path"], r["row_group"]) for r in index}
            wanted = sorted(set(ids))
            missing = [u for u in wanted if u not in where]
            if missing:
                raise ValueError(
                    f"{self.dir}: {len(missing)} utterance(s) of the split are not in the shards "
                    f"(first: {missing[0]}); the split was computed from other shards"
                )
            self.units = sorted(where[u] for u in wanted)

    def __len__(self) -> int:
        return len(self.units)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _my_units(self) -> list[tuple[Path, int]]:
        """This worker's rows for this epoch.

        Under DDP every rank must run the same number of steps, or the gradient all-reduce
        waits forever: each (rank, worker) slot then yields as many rows as the smallest
        slot holds (the few rows left over are a different few each epoch, like
        DistributedSampler's drop_last). Without DDP every row is yielded once.
        """
        units = list(self.units)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(units))
            units = [units[i] for i in order]
        info = get_worker_info()
        n_workers, worker = (info.num_workers, info.id) if info else (1, 0)
        slots = self.world * n_workers
        mine = units[self.rank * n_workers + worker :: slots]
        if self.world > 1:
            mine = mine[: len(units) // slots]
        return mine

    def __iter__(self) -> Iterator[dict]:
        T = int(self.meta["steps"])
        H = W = int(self.meta["out_px"])
        files: dict[Path, tuple[Any, pq.ParquetFile]] = {}
        try:
            for path, group in self._my_units():
                if path not in files:
                    fh = self.opener(path)
                    files[path] = (fh, pq.ParquetFile(fh))
                table = files[path][1].read_row_group(group, columns=self.columns)
                small = table.select([c for c in self.columns if c not in ("audio", "faces")]).to_pylist()[0]
                steps = int(small["n_frames"])
                item = {
                    "utterance_id": small["utterance_id"],
                    "emotion": torch.tensor(small["label_emotion"]),
                    "gender": torch.tensor(small["label_gender"]),
                    "steps": torch.tensor(steps),
                }
                if "audio" in table.column_names:
                    item["audio"] = torch.from_numpy(_binary_views(table, "audio", np.int16)[0].copy())
                    item["audio_len"] = torch.tensor(small["audio_len"])
                if "faces" in table.column_names:
                    faces = torch.zeros((T, H, W, 3), dtype=torch.uint8)
                    if steps:
                        faces[:steps] = torch.from_numpy(_binary_views(table, "faces", np.uint8)[0].reshape(steps, H, W, 3))
                    item["faces"] = faces
                yield item
        finally:
            for fh, _ in files.values():
                fh.close()


def _binary_views(table: pa.Table, column: str, dtype) -> list[np.ndarray]:
    """Zero-copy numpy views of each value of a binary column (read-only)."""
    views = []
    for chunk in table.column(column).chunks:
        _, offsets_buf, data_buf = chunk.buffers()
        offsets = np.frombuffer(offsets_buf, np.int32)[chunk.offset : chunk.offset + len(chunk) + 1]
        data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.empty(0, np.uint8)
        views += [data[a:b].view(dtype) for a, b in zip(offsets[:-1], offsets[1:])]
    return views


class CountingFile(io.RawIOBase):
    """A file that counts the bytes read from it (for tests and benchmarks)."""

    def __init__(self, path: Path, counter: Counter) -> None:
        self._fh = open(path, "rb")
        self._counter = counter

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def readinto(self, b) -> int:
        n = self._fh.readinto(b)
        self._counter["bytes"] += n or 0
        return n

    def close(self) -> None:
        self._fh.close()
        super().close()


# ----------------------------------------------------------------------------- assembly


@dataclasses.dataclass
class ShardInputs:
    """What the shard stage joins (paths are the DVC outputs of earlier stages)."""

    utterances: pa.Table  # corpus.UTTERANCE_SCHEMA (kept by extract)
    labels: pa.Table  # labels.LABEL_SCHEMA
    faces_dir: Path  # Session<N>.parquet files + rejects.parquet
    rejects: list[dict]  # extract + label + faces rejects so far
    n_selected: int  # utterance blocks in the selected label files (extract summary)


def build_shards(
    inputs: ShardInputs,
    out_dir: Path,
    corpus_root: Path,
    load_audio: Callable[[Path], tuple[np.ndarray, int]],
    classes: Sequence[str],
    steps: int,
    out_px: int,
    audio_samples: int,
    shards_cfg: ShardsConfig,
    params: dict,
    progress: Callable[[Iterable], Iterable] = lambda x: x,
) -> dict:
    """Join labels, audio and faces into shards; return the manifest (also written).

    Returns (manifest, all rejects). Raises ValueError if selected != sharded + rejected.
    """
    labels = {r["utterance_id"]: r for r in inputs.labels.select(["utterance_id", "emotion"]).to_pylist()}
    utts = {r["utterance_id"]: r for r in inputs.utterances.select(["utterance_id", "session", "dialog", "gender", "wav_path"]).to_pylist()}
    rejected_ids = {r["utterance_id"] for r in inputs.rejects}
    wanted = {
        u: {**utts[u], "emotion": labels[u]["emotion"]}
        for u in sorted(utts)
        if labels.get(u, {}).get("emotion") is not None and u not in rejected_ids
    }
    class_index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({r["emotion"] for r in wanted.values()} - set(class_index))
    if unknown:
        raise ValueError(f"labels hold classes {unknown} that are not in labels.categories; rerun `dvc repro label`")
    rejects = list(inputs.rejects)
    sharded: list[dict] = []  # light copies (no tensors) for the manifest counts

    def rows() -> Iterator[dict]:
        seen = set()
        face_files = sorted(inputs.faces_dir.glob("Session*.parquet"), key=lambda p: (len(p.stem), p.stem))
        for path in progress(face_files):
            pf = pq.ParquetFile(path)
            for batch in pf.iter_batches(batch_size=16, columns=["utterance_id", "faces", "n_frames", "face_found", "frames_detected"]):
                for f in batch.to_pylist():
                    u = f["utterance_id"]
                    if u not in wanted:
                        continue
                    seen.add(u)
                    w = wanted[u]
                    if f["n_frames"] > steps or len(f["faces"]) != f["n_frames"] * out_px * out_px * 3:
                        raise ValueError(
                            f"{path}: {u} has {f['n_frames']} frames of {len(f['faces'])} bytes, expected at most "
                            f"{steps} frames of {out_px}x{out_px}x3; the faces were made with other params, rerun `dvc repro faces`"
                        )
                    try:
                        audio, audio_len = load_audio(corpus_root / w["wav_path"])
                    except (OSError, ValueError, RuntimeError) as exc:
                        rejects.append({"utterance_id": u, "stage": "shard", "reason": "audio_unreadable", "detail": str(exc).replace(str(corpus_root) + "/", "")})
                        continue
                    if audio.shape != (audio_samples,):
                        raise ValueError(f"audio of {u} has shape {audio.shape}, expected ({audio_samples},)")
                    row = {
                        "utterance_id": u,
                        "session": w["session"],
                        "dialog": w["dialog"],
                        "gender": w["gender"],
                        "emotion": w["emotion"],
                        "label_emotion": class_index[w["emotion"]],
                        "label_gender": GENDERS.index(w["gender"]),
                        "audio": audio.astype("<i2", copy=False).tobytes(),
                        "audio_len": int(audio_len),
                        "faces": f["faces"],
                        "n_frames": f["n_frames"],
                        "face_found": f["face_found"],
                        "frames_detected": f["frames_detected"],
                    }
                    sharded.append({k: row[k] for k in ("utterance_id", "emotion", "gender", "session", "face_found")})
                    yield row
        for u in sorted(set(wanted) - seen):
            rejects.append({"utterance_id": u, "stage": "shard", "reason": "faces_missing", "detail": f"no row in {inputs.faces_dir}/Session{wanted[u]['session']}.parquet"})

    meta = {
        "classes": list(classes),
        "genders": list(GENDERS),
        "steps": steps,
        "out_px": out_px,
        "audio_samples": audio_samples,
        "audio_dtype": "int16 little-endian, (audio_samples,)",
        "faces_dtype": "uint8 RGB, (n_frames, out_px, out_px, 3), C order",
    }
    names = write_shards(rows(), out_dir, meta, shards_cfg)
    rec = reconcile(inputs.n_selected, len(sharded), rejects)
    manifest = {
        "files": names,
        "meta": meta,
        "counts": counts(sharded),
        "params": params,
        "reconciliation": rec,
    }
    if not rec["holds"]:
        raise ValueError(
            f"reconciliation failed: {rec['selected']} selected utterances != {rec['sharded']} sharded + "
            f"{rec['rejected']} rejected ({rec['rejected_by_stage']}); an earlier stage dropped utterances without a reject"
        )
    return manifest, rejects
