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

Where each part lives:

- ``writer``: `ShardsConfig` (params ``shards``), the schema and the metadata it carries
  (`shard_schema`, `read_meta`), `write_shards`.
- ``reader``: `read_index`, the light per-utterance index; `ShardDataset`, the
  column-projecting reader used in training; `CountingFile`, which counts bytes read.
- ``build``: `ShardInputs` and `build_shards`, the shard stage's join of labels, audio and
  faces; the manifest's `counts` and the `reconcile` check.
"""

from .writer import (
    GENDERS,
    META_KEY,
    ShardsConfig,
    read_meta,
    shard_schema,
    write_shards,
)
from .reader import (
    COLUMNS_ALWAYS,
    CountingFile,
    INDEX_COLUMNS,
    ShardDataset,
    read_index,
)
from .build import (
    ShardInputs,
    build_shards,
    counts,
    reconcile,
)

__all__ = [
    "COLUMNS_ALWAYS",
    "CountingFile",
    "GENDERS",
    "INDEX_COLUMNS",
    "META_KEY",
    "ShardDataset",
    "ShardInputs",
    "ShardsConfig",
    "build_shards",
    "counts",
    "read_index",
    "read_meta",
    "reconcile",
    "shard_schema",
    "write_shards",
]
