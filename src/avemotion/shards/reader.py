"""The shards read back: the light index (`read_index`) and the column-projecting,
row-group-per-utterance torch dataset (`ShardDataset`)."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .writer import read_meta

try:  # the reader is a torch dataset; the writer needs no torch
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
