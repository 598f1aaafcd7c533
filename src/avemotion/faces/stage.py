"""The faces stage: plan, crop in worker processes, write the session files and the summary.

Outputs (see `run`): per session one Parquet file ``Session<N>.parquet`` with one row per
cropped utterance, sorted by utterance_id; ``rejects.parquet``; ``summary.json``; and a
contact sheet ``Session<N>.png`` per session in a separate directory. Rows are written in
a fixed order whatever the number of worker processes, and memory is bounded by the
number of utterances in flight (at most 2 x CHUNK_UTTERANCES = 8 per worker), not by the
corpus. Work is split into chunks of one speaker's consecutive utterances of one dialog;
each chunk opens its video once and reads forward, seeking only across long gaps.

Reproducibility: for the same inputs and params the files are byte-identical on every
rerun and for any ``faces.workers``; across machines as long as the video decoder and
OpenCV give the same pixels (the same package versions), and sfd/retinaface run on the
same kind of device. ``workers``, ``device`` and the directory of ``weights`` are left
out of the files.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import pyarrow as pa

from .. import files
from ..audio import AudioConfig
from ..config import as_dict
from ..video import VideoConfig, n_steps_total
from .config import FacesConfig
from .contact import ContactSheet
from .crop import FaceResult, check_seeks
from .plan import chunk_jobs, plan_jobs
from .pool import available_cores, iter_results, worker_devices
from .store import SessionWriter, faces_schema
from .weights import detector_files_sha256, resolve_device, resolve_weights

log = logging.getLogger(__name__)


@dataclasses.dataclass
class FacesRun:
    summary: dict
    rejects: list[dict]


def run(
    utterances: pa.Table,
    labels: pa.Table,
    corpus_root: str | Path,
    out_dir: str | Path,
    contact_dir: str | Path,
    cfg: FacesConfig,
    audio: AudioConfig,
    video: VideoConfig,
    progress: Callable[[Iterator[FaceResult], int], Iterable[FaceResult]] | None = None,
) -> FacesRun:
    """The faces stage: crop every kept utterance, write the per-session files.

    Writes ``out_dir/Session<N>.parquet`` (one per session with kept utterances, rows
    sorted by utterance_id, schema `faces_schema`), ``out_dir/rejects.parquet`` (stage
    ``faces``), ``out_dir/summary.json`` and ``contact_dir/Session<N>.png``. Stale
    ``Session*`` files from earlier runs are removed. `progress(results, total)` may wrap
    the result stream (e.g. with tqdm). Raises DetectorUnavailable before any work if the
    detector cannot be built.
    """
    root, out_dir, contact_dir = Path(corpus_root), Path(out_dir), Path(contact_dir)
    for directory in (out_dir, contact_dir):  # left by a run that was killed
        for p in files.remove_temporaries(directory):
            log.info("removed %s, left by an interrupted run", p)
    jobs = plan_jobs(utterances, labels, audio, video, cfg.view)
    steps = n_steps_total(audio.seconds, video.fps)
    weights = resolve_weights(cfg)
    jobs, forward = check_seeks(jobs, root, video.fps)
    device = None if cfg.detector == "cascade" else resolve_device(cfg.device)
    chunks = chunk_jobs(jobs)
    workers = min(cfg.workers or available_cores(), max(1, len(chunks)))
    log.info("faces: %d utterances in %d chunks, %d worker(s), detector %s", len(jobs), len(chunks), workers, cfg.detector)
    if device is not None and device != "cpu":
        spread = worker_devices(device, workers)
        log.info("faces: detecting on %s", ", ".join(f"{spread.count(d)} worker(s) on {d}" for d in dict.fromkeys(spread)))

    meta = {"faces": as_dict(cfg), "audio": as_dict(audio), "video": as_dict(video)}
    # what a worker count or a machine must not change stays out of the files
    for key in ("workers", "device"):
        meta["faces"].pop(key)
    if cfg.weights is not None:  # the file, not where this machine keeps it
        meta["faces"]["weights"] = Path(cfg.weights).name
    # other weights give other crops: their hash is part of every output's metadata
    meta["faces"]["weights_sha256"] = detector_files_sha256(cfg.detector, weights)
    schema = faces_schema(cfg, steps, meta)
    by_session: dict[int, list[str]] = {}
    for j in jobs:
        by_session.setdefault(j.session, []).append(j.utterance_id)

    results: Iterable[FaceResult] = iter_results(chunks, root, cfg, video.fps, weights, device, workers)
    if progress is not None:
        results = progress(results, len(jobs))

    rejects: list[dict] = []
    clipped: dict[str, dict[str, int]] = {}  # utterances whose time range runs past the video's end
    stats: dict[int, Counter] = {s: Counter() for s in by_session}
    written, sheets = [], []
    writer: SessionWriter | None = None
    sheet: ContactSheet | None = None
    session = None
    try:
        for r in results:
            if r.session != session:
                if writer is not None:
                    writer.close()
                    sheet.write(contact_dir / f"Session{session}.png")
                session = r.session
                writer = SessionWriter(out_dir / f"Session{session}.parquet", schema)
                sheet = ContactSheet(
                    ContactSheet.sample(by_session[session], cfg.contact_utterances), cfg.out_px, cfg.contact_frames, cfg.view
                )
                written.append(writer.path.name)
                sheets.append(f"Session{session}.png")
            st = stats[session]
            st["utterances"] += 1
            sheet.add(r)
            if r.reason is not None:
                rejects.append({"utterance_id": r.utterance_id, "stage": "faces", "reason": r.reason, "detail": r.detail})
                st["rejected"] += 1
                continue
            writer.add(r)
            st["cropped"] += 1
            st["face_found"] += r.face_found
            st["frames"] += r.n_frames
            st["frames_clipped"] += r.n_steps - r.n_frames
            st["utterances_clipped"] += r.n_frames < r.n_steps
            if r.n_frames < r.n_steps:
                clipped[r.utterance_id] = {"n_steps": r.n_steps, "n_frames": r.n_frames}
            st["frames_searched"] += r.frames_searched
            st["frames_detected"] += r.frames_detected
        if writer is not None:
            writer.close()
            sheet.write(contact_dir / f"Session{session}.png")
            writer = None
    finally:
        if writer is not None:
            writer.abort()

    _remove_stale(out_dir, "Session*.parquet", written)
    _remove_stale(contact_dir, "Session*.png", sheets)
    files.write_rejects(rejects, out_dir / "rejects.parquet")

    total = sum(stats.values(), Counter())
    summary = {
        "utterances": len(jobs),
        "cropped": total["cropped"],
        "face_found": total["face_found"],
        "no_face": total["cropped"] - total["face_found"],
        "rejected": dict(sorted(Counter(r["reason"] for r in rejects).items())),
        "frames": total["frames"],
        "utterances_clipped_at_video_end": total["utterances_clipped"],
        "clipped_at_video_end": dict(sorted(clipped.items())),
        "frames_searched": total["frames_searched"],
        "frames_detected": total["frames_detected"],
        "steps": steps,
        "videos_decoded_forward": forward,
        "files": sorted(written, key=_session_key),
        "contact_sheets": sorted(sheets, key=_session_key),
        "sessions": {
            str(s): {k: stats[s][k] for k in ("utterances", "cropped", "face_found", "rejected", "frames")}
            for s in sorted(stats)
        },
        "params": meta,
    }
    files.write_json(summary, out_dir / "summary.json")
    return FacesRun(summary=summary, rejects=rejects)


def _session_key(name: str) -> tuple[int, str]:
    return (len(name), name)


def _remove_stale(directory: Path, pattern: str, keep: Sequence[str]) -> None:
    if not directory.is_dir():
        return
    for p in directory.glob(pattern):
        if p.name not in keep:
            log.info("removing stale %s", p)
            p.unlink()
