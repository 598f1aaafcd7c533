"""Synthetic inputs of the shard stage: utterances, labels, per-session face files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from avemotion import shards
from avemotion.files import rejects_table as shards_rejects
from avemotion.corpus import UTTERANCE_SCHEMA
from avemotion.labels import LABEL_SCHEMA

CLASSES = ("ang", "hap", "neu", "sad")
STEPS, PX, SAMPLES = 5, 16, 1600  # 0.1 s of audio at 50 steps per second


def make_inputs(root: Path, sessions=(1, 2, 3), per_speaker=10, reject=("Ses01F_impro01_M003",)) -> shards.ShardInputs:
    """Two speakers per session; every utterance labelled; `reject` rejected by 'faces'."""
    utts, labs, rejects = [], [], []
    faces_dir = root / "faces"
    faces_dir.mkdir(parents=True, exist_ok=True)
    for s in sessions:
        face_rows = []
        for spk in "FM":
            for i in range(per_speaker):
                u = f"Ses0{s}F_impro01_{spk}{i:03d}"
                emotion = CLASSES[(i + s) % 4]
                utts.append({"utterance_id": u, "session": s, "dialog": f"Ses0{s}F_impro01", "improvised": True,
                             "speaker": spk, "gender": spk, "dialog_letter": "F", "view": "left" if spk == "F" else "right",
                             "start": float(i), "end": i + 0.5, "wav_path": f"Session{s}/sentences/wav/x/{u}.wav",
                             "video_path": "v.avi", "n_samples": 8000, "sample_rate": 16000, "summary_code": "neu",
                             "valence": 1.0, "activation": 1.0, "dominance": 1.0, "ratings": [], "dimensions": [], "source": "x"})
                labs.append({"utterance_id": u, "emotion": emotion, "category": "Neutral", "votes": "Neutral:3", "tie": False,
                             "tied": [], "reason": None, "summary_code": "neu", "agrees_with_summary": True})
                if u in reject:
                    rejects.append({"utterance_id": u, "stage": "faces", "reason": "video_missing", "detail": "v.avi"})
                    continue
                n = 1 + i % STEPS
                frames = np.random.default_rng([s, i, ord(spk)]).integers(0, 256, (n, PX, PX, 3), dtype=np.uint8)
                face_rows.append({"utterance_id": u, "faces": frames.tobytes(), "n_frames": n, "face_found": i % 5 != 0, "frames_detected": n})
        face_rows.sort(key=lambda r: r["utterance_id"])
        pq.write_table(pa.Table.from_pylist(face_rows), faces_dir / f"Session{s}.parquet", row_group_size=4)
    pq.write_table(shards_rejects(rejects), faces_dir / "rejects.parquet")
    return shards.ShardInputs(
        utterances=pa.Table.from_pylist(utts, schema=UTTERANCE_SCHEMA),
        labels=pa.Table.from_pylist(labs, schema=LABEL_SCHEMA),
        faces_dir=faces_dir,
        rejects=rejects,
        n_selected=len(utts),
    )


def fake_audio(path: Path) -> tuple[np.ndarray, int]:
    """Deterministic int16 'audio' derived from the file name."""
    seed = sum(path.name.encode())
    x = np.random.default_rng(seed).integers(-3000, 3000, SAMPLES).astype(np.int16)
    return x, SAMPLES // 2


def build(inputs: shards.ShardInputs, out: Path, target_mb=0.01, load_audio=fake_audio):
    manifest, rejects = shards.build_shards(
        inputs, out, corpus_root=Path("/corpus"), load_audio=load_audio, classes=CLASSES, steps=STEPS, out_px=PX,
        audio_samples=SAMPLES, shards_cfg=shards.ShardsConfig(target_mb=target_mb),
        params={"test": True},
    )
    (out / "manifest.json").write_text(json.dumps(manifest, sort_keys=True))
    return manifest, rejects
