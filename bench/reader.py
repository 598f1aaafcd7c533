"""Shard reader throughput against the raw pyarrow read, the old block shuffle and the per-utterance layout.

    python bench/reader.py                 # paper-size tensors: 6 s audio, 150 frames of 96x96
    python bench/reader.py --utterances 64 --workers 0 2
    python bench/reader.py --seconds 2 --fps 5 --px 32 --utterances 216   # the demo's size

Writes synthetic utterances at the paper's size (int16 audio of 96,000 samples; 150 RGB
face crops of 96x96 made from a real face shifted frame to frame with sensor noise, so
they compress like video crops rather than like random bytes) in two layouts:

- shards: `avemotion.shards.write_shards`, as the shard stage writes them;
- per utterance: one 16-bit wav plus one .npy of frames per utterance, as public IEMOCAP
  pipelines store them, read by a map-style Dataset (soundfile + numpy.load).

and times samples/s into batched tensors (DataLoader, batch 8), shuffled as in training,
for: the raw pyarrow read of the same columns (no tensors), `ShardDataset` (one row per
row group, a uniform shuffle), the block shuffle the shards used before (16-row groups:
the groups shuffled, then the rows inside one group, so a batch holds neighbouring
utterance ids), and the per-utterance layout; plus the bytes an audio-only epoch reads
against an audio-video epoch. The files are read once before timing, so all runs see a
warm page cache.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf
import torch
from skimage import data as skdata
from torch.utils.data import DataLoader, Dataset

from avemotion import shards

SR = 16000
SECONDS, FPS, PX = 6.0, 25, 96  # set from the command line in main()
STEPS, SAMPLES = int(SECONDS * FPS), int(SECONDS * SR)


def synth(i: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    face = cv2.resize(skdata.astronaut()[30:230, 140:340], (PX + 16, PX + 16), interpolation=cv2.INTER_AREA)
    n = int(rng.integers(STEPS // 3, STEPS + 1))
    frames = np.empty((n, PX, PX, 3), np.uint8)
    for k in range(n):
        dx, dy = (np.sin(k / 9 + i) * 7 + 8).astype(int), (np.cos(k / 11 + i) * 7 + 8).astype(int)
        frames[k] = np.clip(face[dy : dy + PX, dx : dx + PX] + rng.normal(0, 2, (PX, PX, 3)), 0, 255)
    t = np.arange(SAMPLES) / SR
    audio = (np.sin(2 * np.pi * (120 + 80 * (i % 2)) * t) * 8000 + rng.normal(0, 300, SAMPLES)).astype(np.int16)
    return audio, frames, n


class PerUtterance(Dataset):
    def __init__(self, root: Path, ids: list[str]):
        self.root, self.ids = root, ids

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        u = self.ids[i]
        audio, _ = sf.read(self.root / f"{u}.wav", dtype="int16")
        frames = np.load(self.root / f"{u}.npy")
        faces = torch.zeros((STEPS, PX, PX, 3), dtype=torch.uint8)
        faces[: len(frames)] = torch.from_numpy(frames)
        return {"audio": torch.from_numpy(audio), "faces": faces, "steps": torch.tensor(len(frames))}


class BlockShuffle(torch.utils.data.IterableDataset):
    """The shards' former reading order: row groups of 16 shuffled, then the rows inside one."""

    def __init__(self, path: Path, columns: list[str], seed: int = 0):
        self.path, self.columns, self.seed = path, columns, seed

    def __iter__(self):
        pf = pq.ParquetFile(self.path)
        rng = np.random.default_rng(self.seed)
        for g in rng.permutation(pf.metadata.num_row_groups):
            table = pf.read_row_group(int(g), columns=self.columns)
            audio = table.column("audio").to_pylist()
            faces = table.column("faces").to_pylist()
            n_frames = table.column("n_frames").to_pylist()
            for i in rng.permutation(table.num_rows):
                t = torch.zeros((STEPS, PX, PX, 3), dtype=torch.uint8)
                t[: n_frames[i]] = torch.frombuffer(bytearray(faces[i]), dtype=torch.uint8).reshape(n_frames[i], PX, PX, 3)
                yield {"audio": torch.frombuffer(bytearray(audio[i]), dtype=torch.int16), "faces": t, "steps": torch.tensor(n_frames[i])}


def drain(loader) -> tuple[int, float]:
    t = time.perf_counter()
    n = sum(len(b["steps"]) for b in loader)
    return n, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--utterances", type=int, default=120)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--compression", choices=["zstd", "none"], default="zstd")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--fps", type=float, default=25)
    ap.add_argument("--px", type=int, default=96)
    args = ap.parse_args()
    global SECONDS, FPS, PX, STEPS, SAMPLES
    SECONDS, FPS, PX = args.seconds, args.fps, args.px
    STEPS, SAMPLES = int(SECONDS * FPS), int(SECONDS * SR)
    work = Path(tempfile.mkdtemp(prefix="bench-reader-"))
    try:
        rng = np.random.default_rng(0)
        per = work / "per_utterance"
        per.mkdir()
        rows = []
        for i in range(args.utterances):
            audio, frames, n = synth(i, rng)
            u = f"Ses01F_impro01_{'FM'[i % 2]}{i:03d}"
            sf.write(per / f"{u}.wav", audio, SR, subtype="PCM_16")
            np.save(per / f"{u}.npy", frames)
            rows.append({"utterance_id": u, "session": 1, "dialog": "Ses01F_impro01", "gender": "FM"[i % 2], "emotion": "neu",
                         "label_emotion": 0, "label_gender": i % 2, "audio": audio.tobytes(), "audio_len": SAMPLES,
                         "faces": frames.tobytes(), "n_frames": n, "face_found": True, "frames_detected": n})
        meta = {"classes": ["ang", "hap", "neu", "sad"], "genders": ["F", "M"], "steps": STEPS, "out_px": PX, "audio_samples": SAMPLES}
        out = work / "shards"
        names = shards.write_shards(iter(rows), out, meta, shards.ShardsConfig(target_mb=256, compression=args.compression))
        (out / "manifest.json").write_text('{"files": %s}' % str(names).replace("'", '"'))
        ids = [r["utterance_id"] for r in rows]
        old = work / "block-16.parquet"  # the former layout: 16 rows per row group
        pq.write_table(pa.Table.from_pylist(rows, schema=shards.shard_schema(meta)), old, row_group_size=16,
                       compression=None if args.compression == "none" else args.compression)
        del rows
        shard_bytes = sum((out / n).stat().st_size for n in names)
        per_bytes = sum(p.stat().st_size for p in per.iterdir())
        print(f"{args.utterances} utterances: shards {shard_bytes / 1e6:.0f} MB in {len(names)} file(s); per-utterance {per_bytes / 1e6:.0f} MB in {2 * args.utterances} files")

        cols = list(shards.COLUMNS_ALWAYS) + ["audio", "audio_len", "faces"]
        for p in list(out.glob("shard-*.parquet")) + list(per.iterdir()) + [old]:
            p.read_bytes()  # warm the page cache for every layout alike
        t = time.perf_counter()
        n_raw = sum(pq.read_table(out / n, columns=cols).num_rows for n in names)
        raw = n_raw / (time.perf_counter() - t)
        print(f"\n| reader | workers | samples/s |\n|---|---|---|\n| raw pyarrow read (same columns, no tensors) | 0 | {raw:.0f} |")
        n, s = drain(DataLoader(BlockShuffle(old, cols), batch_size=args.batch))
        print(f"| former block shuffle (16-row groups), audio+video | 0 | {n / s:.0f} |")
        for w in args.workers:
            n, s = drain(DataLoader(shards.ShardDataset(out, ids, shuffle=True), batch_size=args.batch, num_workers=w))
            print(f"| ShardDataset, uniform shuffle, audio+video | {w} | {n / s:.0f} |")
            n, s = drain(DataLoader(PerUtterance(per, ids), batch_size=args.batch, num_workers=w))
            print(f"| per-utterance wav + .npy | {w} | {n / s:.0f} |")
        usage = {}
        for mods in (("audio",), ("audio", "video")):
            c = Counter()
            ds = shards.ShardDataset(out, ids, mods, opener=lambda p, c=c: shards.CountingFile(p, c))
            c.clear()  # the index read when the dataset is made is not part of an epoch
            for _ in ds:
                pass
            usage[mods] = c["bytes"]
        ratio = usage[("audio",)] / usage[("audio", "video")]
        print(f"\nbytes read per epoch: audio-only {usage[('audio',)] / 1e6:.1f} MB, audio+video {usage[('audio', 'video')] / 1e6:.1f} MB ({100 * ratio:.1f}%)")
        print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
