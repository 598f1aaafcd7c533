"""The shard stage's join: labels, audio and faces into shards (`build_shards`), the
manifest's counts and the reconciliation selected = sharded + rejected."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .writer import GENDERS, ShardsConfig, write_shards


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
