"""Training shards: splits, the Parquet writer, the manifest, and a column-projecting reader.

One row per utterance; tensors in binary columns (a Parquet list<uint8> column is stored
as 32-bit integers: about 3.5x larger and 3-4x slower to read), their shapes and dtypes
in the schema metadata:

    audio   int16 little-endian, (samples,) = audio.seconds * 16000, zero-padded/cropped
    faces   uint8 RGB, (n_frames, out_px, out_px, 3), C order, only the valid frames

Rows are ordered by (split, utterance_id) and every row group holds rows of one split
only, so a reader of the training split never decodes a validation row, and a reader
that needs no faces never reads the faces column chunks (Parquet stores each column of
each row group as its own byte range).

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


log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
GENDERS = ("F", "M")
META_KEY = b"avemotion"


@dataclasses.dataclass(frozen=True)
class ShardsConfig:
    """params.yaml `shards`."""

    target_mb: float = 256.0  # bytes per shard file, before the next one starts
    rows_per_group: int = 16  # rows per Parquet row group (the unit of reading/shuffling)
    compression: Literal["zstd", "none"] = "zstd"

    def validate(self, where: str = "shards") -> None:
        from .config import ParamsError

        if self.target_mb <= 0 or self.rows_per_group < 1:
            raise ParamsError(f"params: '{where}.target_mb' must be > 0 and '{where}.rows_per_group' >= 1")


@dataclasses.dataclass(frozen=True)
class SplitConfig:
    """params.yaml `split`.

    ``random``: the paper's 60/20/20 (`fractions`), stratified by emotion and gender,
    seeded by `seed`. ``session``: leave-one-session-out; `test_session` is the test set,
    and validation is one speaker (`val_speaker`) of `val_session` (default: the session
    after the test session), so no test speaker is ever seen in training or validation
    and validation is speaker-independent too.
    """

    method: Literal["random", "session"] = "random"
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    seed: int = 2018
    test_session: int = 5
    val_session: int | None = None
    val_speaker: Literal["F", "M"] = "F"

    def validate(self, where: str = "split") -> None:
        from .config import ParamsError

        if any(f < 0 for f in self.fractions) or not math.isclose(sum(self.fractions), 1.0, abs_tol=1e-6):
            raise ParamsError(f"params: '{where}.fractions' must be three non-negative numbers summing to 1, got {list(self.fractions)}")
        if self.val_session is not None and self.val_session == self.test_session:
            raise ParamsError(f"params: '{where}.val_session' must differ from '{where}.test_session'")


# ----------------------------------------------------------------------------- splits


def _stable_key(seed: int, text: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}/{text}".encode()).digest()[:8], "little")


def assign_splits(rows: Sequence[dict], cfg: SplitConfig) -> dict[str, str]:
    """utterance_id -> split. Rows need utterance_id, session, gender, emotion.

    The result depends only on the set of rows and the params, never on their order.
    """
    if cfg.method == "session":
        return _session_split(rows, cfg)
    # random: within each (emotion, gender) stratum, order utterances by a seeded hash
    # and cut by the fractions (largest remainder), so every stratum is split 60/20/20
    # as closely as its count allows.
    strata: dict[tuple, list[str]] = {}
    for r in rows:
        strata.setdefault((r["emotion"], r["gender"]), []).append(r["utterance_id"])
    out: dict[str, str] = {}
    for key in sorted(strata):
        ids = sorted(strata[key], key=lambda u: (_stable_key(cfg.seed, u), u))
        counts = _largest_remainder(len(ids), cfg.fractions)
        i = 0
        for split, n in zip(SPLITS, counts):
            for u in ids[i : i + n]:
                out[u] = split
            i += n
    return out


def _largest_remainder(n: int, fractions: Sequence[float]) -> list[int]:
    raw = [n * f for f in fractions]
    counts = [int(math.floor(x)) for x in raw]
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def _session_split(rows: Sequence[dict], cfg: SplitConfig) -> dict[str, str]:
    sessions = sorted({r["session"] for r in rows})
    if cfg.test_session not in sessions:
        raise ValueError(
            f"split.test_session is {cfg.test_session}, but the data holds sessions {sessions}; "
            "choose one of them (or add the session to corpus.sessions)"
        )
    train_sessions = [s for s in sessions if s != cfg.test_session]
    if not train_sessions:
        raise ValueError("split.method session needs at least two sessions in corpus.sessions")
    val_session = cfg.val_session
    if val_session is None:
        later = [s for s in train_sessions if s > cfg.test_session]
        val_session = (later or train_sessions)[0]
    if val_session not in train_sessions:
        raise ValueError(f"split.val_session {val_session} is not one of the training sessions {train_sessions}")
    out = {}
    for r in rows:
        if r["session"] == cfg.test_session:
            out[r["utterance_id"]] = "test"
        elif r["session"] == val_session and r["gender"] == cfg.val_speaker:
            out[r["utterance_id"]] = "val"
        else:
            out[r["utterance_id"]] = "train"
    return out


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
        ("split", pa.string()),
        ("audio", pa.binary()),
        ("audio_len", pa.int64()),
        ("faces", pa.binary()),
        ("n_frames", pa.int64()),
        ("face_found", pa.bool_()),
        ("frames_detected", pa.int64()),
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
    """Write rows into byte-sized shards, train first, then val, then test; return names.

    `rows` may interleave splits but must be in utterance-id order within each split.
    Each split is buffered separately (at most about `target_mb` each in memory) and
    cut into row groups of `rows_per_group`. Everything is written to hidden temporary
    files that are renamed to ``shard-00000.parquet``, ... only once all are complete;
    shards left from an earlier run with more files are removed.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for leftover in out_dir.glob(".part-*.tmp"):
        leftover.unlink()  # from a run that was killed
    schema = shard_schema(meta)
    target = cfg.target_mb * 1e6
    compression = None if cfg.compression == "none" else cfg.compression
    parts: dict[str, list[Path]] = {s: [] for s in SPLITS}
    buffers: dict[str, list[dict]] = {s: [] for s in SPLITS}
    held: Counter = Counter()

    def flush(split: str) -> None:
        buf = buffers[split]
        if not buf:
            return
        tmp = out_dir / f".part-{split}-{len(parts[split]):05d}.tmp"
        with pq.ParquetWriter(tmp, schema, compression=compression, write_statistics=["split"]) as w:
            for i in range(0, len(buf), cfg.rows_per_group):
                group = buf[i : i + cfg.rows_per_group]
                w.write_table(pa.Table.from_pylist(group, schema=schema), row_group_size=len(group))
        parts[split].append(tmp)
        buffers[split], held[split] = [], 0

    try:
        for row in rows:
            split = row["split"]
            buffers[split].append(row)
            held[split] += len(row["audio"]) + len(row["faces"])
            if held[split] >= target:
                flush(split)
        for split in SPLITS:
            flush(split)
        names = []
        for split in SPLITS:
            for tmp in parts[split]:
                name = f"shard-{len(names):05d}.parquet"
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
    out: dict[str, Any] = {}
    for split in SPLITS:
        part = [r for r in rows if r["split"] == split]
        out[split] = {
            "utterances": len(part),
            "emotion": dict(sorted(Counter(r["emotion"] for r in part).items())),
            "gender": dict(sorted(Counter(r["gender"] for r in part).items())),
            "session": {str(k): v for k, v in sorted(Counter(r["session"] for r in part).items())},
            "face_found": sum(bool(r["face_found"]) for r in part),
        }
    return out


# ----------------------------------------------------------------------------- reader

try:  # the reader is a torch dataset; the writer above needs no torch
    import torch
    from torch.utils.data import IterableDataset, get_worker_info
except ImportError:  # pragma: no cover - torch is a hard dependency of the package
    torch = None
    IterableDataset = object


COLUMNS_ALWAYS = ("utterance_id", "label_emotion", "label_gender", "n_frames")


@dataclasses.dataclass(frozen=True)
class _Unit:
    path: Path
    row_group: int
    rows: int


class ShardDataset(IterableDataset):
    """Iterate one split of the shards as uint8/int16 tensors, reading only needed columns.

    Each item: ``{"utterance_id", "emotion" (int64), "gender" (int64), "steps" (valid
    time steps), "audio" (int16 (S,)) and "audio_len" if audio is used, "faces" (uint8
    (T, H, W, 3), zero beyond `steps`) if video is used}``. Conversion to float happens
    on the training device.

    Work is spread over DataLoader workers (and DDP ranks via `rank`/`world`) by row
    group, without duplicates; order is shuffled per epoch with `seed` (call
    `set_epoch`). Use ``batch_size`` on the DataLoader as usual.
    """

    def __init__(
        self,
        shard_dir: str | Path,
        split: str,
        modalities: Sequence[str] = ("audio", "video"),
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        opener: Callable[[Path], Any] | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        bad = set(modalities) - {"audio", "video"}
        if bad or not modalities:
            raise ValueError(f"modalities must be a non-empty subset of audio, video; got {list(modalities)}")
        self.dir = Path(shard_dir)
        manifest = self.dir / "manifest.json"
        if not manifest.is_file():
            raise FileNotFoundError(
                f"{manifest} not found: the shard directory is missing or incomplete; run `dvc repro shard`"
            )
        self.manifest = json.loads(manifest.read_text())
        self.paths = [self.dir / name for name in self.manifest["files"]]
        missing = [p.name for p in self.paths if not p.is_file()]
        if missing or not self.paths:
            raise FileNotFoundError(f"{self.dir}: shards {missing or 'all'} missing; run `dvc repro shard`")
        self.meta = read_meta(self.paths[0])
        self.split, self.modalities = split, tuple(modalities)
        self.shuffle, self.seed, self.rank, self.world = shuffle, seed, rank, world
        self.epoch = 0
        self.opener = opener or (lambda p: open(p, "rb"))
        self.columns = list(COLUMNS_ALWAYS)
        if "audio" in modalities:
            self.columns += ["audio", "audio_len"]
        if "video" in modalities:
            self.columns += ["faces"]
        self.units = self._units()

    def _units(self) -> list[_Unit]:
        units = []
        for path in self.paths:
            with self.opener(path) as fh:
                md = pq.ParquetFile(fh).metadata
                col = md.schema.names.index("split")
                for g in range(md.num_row_groups):
                    stats = md.row_group(g).column(col).statistics
                    if stats is None or not stats.has_min_max:
                        raise ValueError(f"{path}: row group {g} has no split statistics; rerun `dvc repro shard`")
                    if stats.min == self.split:
                        units.append(_Unit(path, g, md.row_group(g).num_rows))
        return units

    def __len__(self) -> int:
        return sum(u.rows for u in self.units)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _my_units(self) -> tuple[list[_Unit], int | None]:
        """This worker's row groups for this epoch, and how many rows it may yield.

        Under DDP every rank must run the same number of steps, or the gradient
        all-reduce waits forever: each (rank, worker) slot then yields as many rows as
        the smallest slot holds (the rest of the epoch's rows are skipped, a different
        few each epoch, like DistributedSampler's drop_last). Without DDP: no limit.
        """
        units = list(self.units)
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.shuffle:
            units = [units[i] for i in rng.permutation(len(units))]
        info = get_worker_info()
        n_workers, worker = (info.num_workers, info.id) if info else (1, 0)
        slots = self.world * n_workers
        quota = None
        if self.world > 1:
            quota = min(sum(u.rows for u in units[s::slots]) for s in range(slots))
        return units[self.rank * n_workers + worker :: slots], quota

    def __iter__(self) -> Iterator[dict]:
        T = int(self.meta["steps"])
        H = W = int(self.meta["out_px"])
        rng = np.random.default_rng([self.seed, self.epoch, 1 + self.rank])
        open_file = None
        units, quota = self._my_units()
        yielded = 0
        for unit in units:
            if quota is not None and yielded >= quota:
                break
            if open_file is None or open_file[0] != unit.path:
                if open_file is not None:
                    open_file[1].close()
                fh = self.opener(unit.path)
                open_file = (unit.path, fh, pq.ParquetFile(fh))
            table = open_file[2].read_row_group(unit.row_group, columns=self.columns)
            small = table.select([c for c in self.columns if c not in ("audio", "faces")]).to_pydict()
            audio = _binary_views(table, "audio", np.int16) if "audio" in table.column_names else None
            frames = _binary_views(table, "faces", np.uint8) if "faces" in table.column_names else None
            order = rng.permutation(table.num_rows) if self.shuffle else range(table.num_rows)
            for i in order:
                if quota is not None and yielded >= quota:
                    break
                yielded += 1
                steps = int(small["n_frames"][i])
                item = {
                    "utterance_id": small["utterance_id"][i],
                    "emotion": torch.tensor(small["label_emotion"][i]),
                    "gender": torch.tensor(small["label_gender"][i]),
                    "steps": torch.tensor(steps),
                }
                if audio is not None:
                    item["audio"] = torch.from_numpy(audio[i].copy())
                    item["audio_len"] = torch.tensor(small["audio_len"][i])
                if frames is not None:
                    faces = torch.zeros((T, H, W, 3), dtype=torch.uint8)
                    if steps:
                        faces[:steps] = torch.from_numpy(frames[i].reshape(steps, H, W, 3))
                    item["faces"] = faces
                yield item
        if open_file is not None:
            open_file[1].close()


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
    split_cfg: SplitConfig,
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
    split_of = assign_splits(list(wanted.values()), split_cfg)
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
                        "split": split_of[u],
                        "audio": audio.astype("<i2", copy=False).tobytes(),
                        "audio_len": int(audio_len),
                        "faces": f["faces"],
                        "n_frames": f["n_frames"],
                        "face_found": f["face_found"],
                        "frames_detected": f["frames_detected"],
                    }
                    sharded.append({k: row[k] for k in ("utterance_id", "split", "emotion", "gender", "session", "face_found")})
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
        "split": {"method": split_cfg.method},
        "params": params,
        "reconciliation": rec,
    }
    if not rec["holds"]:
        raise ValueError(
            f"reconciliation failed: {rec['selected']} selected utterances != {rec['sharded']} sharded + "
            f"{rec['rejected']} rejected ({rec['rejected_by_stage']}); an earlier stage dropped utterances without a reject"
        )
    return manifest, rejects
