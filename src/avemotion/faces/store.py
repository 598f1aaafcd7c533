"""Session<N>.parquet: its schema, the streaming writer, the reader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import files
from .config import FacesConfig
from .crop import FaceResult

#: Parquet rows per row group (fixed, so files do not depend on timing or worker count)
ROWS_PER_GROUP = 8


def faces_schema(cfg: FacesConfig, steps: int, meta: Mapping[str, Any]) -> pa.Schema:
    """Columns of Session<N>.parquet, with shapes and the params in the schema metadata."""
    fields = [
        ("utterance_id", pa.string()),
        ("session", pa.int32()),
        ("n_steps", pa.int32()),
        ("n_frames", pa.int32()),
        ("face_found", pa.bool_()),
        ("frames_searched", pa.int32()),
        ("frames_detected", pa.int32()),
        ("crop_xy", pa.binary()),
        ("faces", pa.binary()),
    ]
    metadata = {
        "faces": f"uint8 RGB, shape (n_frames, {cfg.out_px}, {cfg.out_px}, 3), C order; frame k = time step k",
        "crop_xy": f"int16 little-endian, shape (n_frames, 2): top-left (x, y) in video pixels of the {cfg.crop_px}px crop",
        "n_steps": "valid audio time steps of the utterance (frames wanted)",
        "n_frames": "frames stored (n_steps, fewer only where the video ends first)",
        "frames_searched": "steps the detector ran on (every detect_every-th and the last)",
        "frames_detected": "of those, steps where a face was found (0: view centre used, face_found false)",
        "steps": str(steps),
        "out_px": str(cfg.out_px),
        "params": json.dumps(meta, sort_keys=True),
    }
    return pa.schema(fields, metadata=metadata)


class SessionWriter:
    """Streams one session's rows into Session<N>.parquet (temporary name, then rename)."""

    def __init__(self, path: Path, schema: pa.Schema):
        self.path = path
        self.schema = schema
        self.rows: list[dict] = []
        self._ctx = files.atomic_path(path)
        tmp = self._ctx.__enter__()
        self._writer = None
        with self._writing():
            self._writer = pq.ParquetWriter(
                tmp,
                schema,
                compression="zstd",
                use_dictionary=["utterance_id"],
                write_statistics=["utterance_id", "session", "n_frames"],
            )
        self.n_rows = 0

    def _writing(self):
        """An OSError (disk full, file too large) ends the stage naming the file; nothing half-written stays."""
        return files.writing(self.path)

    def add(self, r: FaceResult) -> None:
        self.rows.append(
            {
                "utterance_id": r.utterance_id,
                "session": r.session,
                "n_steps": r.n_steps,
                "n_frames": r.n_frames,
                "face_found": r.face_found,
                "frames_searched": r.frames_searched,
                "frames_detected": r.frames_detected,
                "crop_xy": r.crop_xy.astype("<i2").tobytes(),
                "faces": r.faces.tobytes(),
            }
        )
        if len(self.rows) >= ROWS_PER_GROUP:
            self._flush()

    def _flush(self) -> None:
        if self.rows:
            with self._writing():
                self._writer.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
            self.n_rows += len(self.rows)
            self.rows = []

    def close(self) -> None:
        self._flush()
        with self._writing():
            self._writer.close()
        self._ctx.__exit__(None, None, None)

    def abort(self) -> None:
        try:
            if self._writer is not None:
                self._writer.close()
        except OSError:
            pass  # the file is removed anyway
        try:
            self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)
        except RuntimeError:
            pass


def read_faces(path: str | Path, utterance_id: str | None = None) -> Iterator[tuple[dict, np.ndarray]]:
    """(row without bytes, faces (n_frames, out_px, out_px, 3) uint8) from a Session<N>.parquet."""
    pf = pq.ParquetFile(path)
    out_px = int(pf.schema_arrow.metadata[b"out_px"])
    for batch in pf.iter_batches(batch_size=ROWS_PER_GROUP):
        for row in batch.to_pylist():
            if utterance_id is not None and row["utterance_id"] != utterance_id:
                continue
            faces = np.frombuffer(row.pop("faces"), dtype=np.uint8).reshape(row["n_frames"], out_px, out_px, 3)
            row["crop_xy"] = np.frombuffer(row["crop_xy"], dtype="<i2").reshape(row["n_frames"], 2)
            yield row, faces
