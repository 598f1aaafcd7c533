"""One utterance, and a chunk of one video's utterances: decode, detect, track, crop."""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..video import FrameReader, VideoError, seek_is_exact, step_frames, view_columns
from .config import FacesConfig
from .tracking import crop_origin, crop_square, detection_steps, picture_box, preview_image, smooth_window, track

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class FaceJob:
    """One utterance to crop."""

    utterance_id: str
    session: int
    dialog: str
    speaker: str
    view: str  # left | right
    start: float
    end: float
    video_path: str  # relative to the corpus root
    n_steps: int  # valid audio time steps (frames wanted)
    dialog_letter: str = ""  # F/M: the actor with markers (left view in the letter rule)
    preview: bool = False  # also return both views of one frame (contact sheet)
    seek: bool = True  # False: this video's seeks are not exact, decode forward


@dataclasses.dataclass
class FaceResult:
    """The crops of one utterance, or why there are none (`reason`, `detail`)."""

    utterance_id: str
    session: int
    n_steps: int
    faces: np.ndarray | None = None  # (n_frames, out_px, out_px, 3) uint8 RGB
    crop_xy: np.ndarray | None = None  # (n_frames, 2) int16: crop's top-left in frame pixels
    face_found: bool = False
    frames_searched: int = 0
    frames_detected: int = 0
    reason: str | None = None
    detail: str | None = None
    preview: np.ndarray | None = None  # (h, W, 3) uint8 BGR: the whole picture, both views
    job: FaceJob | None = None

    @property
    def n_frames(self) -> int:
        return 0 if self.faces is None else len(self.faces)


def utterance_frames(reader: FrameReader, job: FaceJob, fps: float) -> np.ndarray:
    """Video frame index of each valid time step, clipped to the video. (n_frames,) int64

    Raises VideoError(``time_range``) when the utterance's time range is unusable or
    starts after the video ends.
    """
    info = reader.info
    if not (math.isfinite(job.start) and math.isfinite(job.end) and 0 <= job.start < job.end):
        raise VideoError("time_range", f"{job.utterance_id}: bad time range [{job.start} - {job.end}]")
    if job.n_steps <= 0:
        raise VideoError("time_range", f"{job.utterance_id}: no audio time steps")
    wanted = step_frames(job.start, job.n_steps, fps, info.fps)  # (n_steps,)
    frames = wanted[wanted < info.frame_count]  # clipped to the video length
    if len(frames) == 0:
        raise VideoError(
            "time_range",
            f"{reader.shown}: utterance {job.utterance_id} [{job.start:.4f} - {job.end:.4f}] starts after "
            f"the video ends ({info.frame_count} frames at {info.fps:g} fps = {info.duration:.3f} s)",
        )
    return frames


def crop_utterance(reader: FrameReader, job: FaceJob, cfg: FacesConfig, fps: float, detector) -> FaceResult:
    """Crops of one utterance from an open video; a VideoError makes a reject."""
    result = FaceResult(job.utterance_id, job.session, job.n_steps, job=job)
    info = reader.info
    try:
        frames = utterance_frames(reader, job, fps)
    except VideoError as exc:
        result.reason, result.detail = exc.reason, exc.detail
        return result
    x0, x1 = view_columns(info.width, job.view)
    try:
        # BGR as decoded; only the small crops are turned into RGB
        if job.preview:
            whole = reader.read(frames)  # BGR (H, W, 3) each
            result.preview = preview_image(whole[len(whole) // 2])
            views = [f[:, x0:x1].copy() for f in whole]  # BGR (H, Wv, 3) each
            del whole
        else:
            views = reader.read(frames, columns=(x0, x1))  # BGR (H, Wv, 3) each
    except VideoError as exc:
        result.reason = exc.reason
        result.detail = f"{exc.detail} (utterance {job.utterance_id}, frames {frames[0]}-{frames[-1]})"
        return result
    n = len(views)
    vh, vw = views[0].shape[:2]

    steps = detection_steps(n, cfg.detect_every)
    searched = [views[i] for i in steps]
    box = picture_box(searched)
    if box is None:  # black frames: nothing to search
        boxes = [None] * len(steps)
        top, bottom, left, right = 0, vh, 0, vw
    else:
        top, bottom, left, right = box
        boxes = detector.detect([v[top:bottom, left:right] for v in searched])
    hit = np.array([b is not None for b in boxes], dtype=bool)
    result.frames_searched = len(steps)
    result.frames_detected = int(hit.sum())
    result.face_found = bool(hit.any())
    if result.face_found:
        centres = np.array([[left + b.cx, top + b.cy] for b in boxes if b is not None])  # (k, 2) view pixels
        path = track(n, steps[hit], centres, smooth_window(cfg.smooth_s, fps))  # (n, 2)
    else:
        path = np.tile([(left + right) / 2, (top + bottom) / 2], (n, 1))  # (n, 2) the picture's centre

    size = cfg.crop_px
    faces = np.empty((n, cfg.out_px, cfg.out_px, 3), dtype=np.uint8)  # (n, out, out, 3)
    crop_xy = np.empty((n, 2), dtype=np.int16)  # (n, 2)
    for i, (view, (cx, cy)) in enumerate(zip(views, path)):
        # inside the picture, not just the frame: a face near the black bars must not
        # give a crop that is partly bar
        cx0 = left + crop_origin(cx - left, size, right - left)
        cy0 = top + crop_origin(cy - top, size, bottom - top)
        crop = crop_square(view, cx0, cy0, size)  # (size, size, 3) BGR
        small = cv2.resize(crop, (cfg.out_px, cfg.out_px), interpolation=cv2.INTER_AREA)
        cv2.cvtColor(small, cv2.COLOR_BGR2RGB, dst=faces[i])
        crop_xy[i] = (x0 + cx0, cy0)
    result.faces, result.crop_xy = faces, crop_xy
    return result


def crop_chunk(jobs: Sequence[FaceJob], root: Path, cfg: FacesConfig, fps: float, detector) -> list[FaceResult]:
    """Crops of consecutive utterances of one video (opened once, read forward).

    Jobs are worked in time order and returned in the order given.
    """
    results: list[FaceResult] = []
    readers: dict[str, FrameReader | VideoError] = {}
    order = sorted(range(len(jobs)), key=lambda i: (jobs[i].video_path, jobs[i].start, i))
    try:
        for job in (jobs[i] for i in order):
            if job.video_path not in readers:
                try:
                    readers[job.video_path] = FrameReader(root / job.video_path, shown=job.video_path, seek=job.seek)
                except VideoError as exc:
                    readers[job.video_path] = exc
            reader = readers[job.video_path]
            if isinstance(reader, VideoError):
                results.append(
                    FaceResult(job.utterance_id, job.session, job.n_steps, reason=reader.reason, detail=reader.detail, job=job)
                )
                continue
            results.append(crop_utterance(reader, job, cfg, fps, detector))
    finally:
        for reader in readers.values():
            if isinstance(reader, FrameReader):
                reader.close()
    back = [None] * len(jobs)
    for i, r in zip(order, results):
        back[i] = r
    return back


def check_seeks(jobs: Sequence[FaceJob], root: Path, fps: float) -> tuple[list[FaceJob], list[str]]:
    """Compare seeking with forward decoding on each video's first utterance.

    Returns the jobs (``seek`` false for every job of a video whose seek landed on other
    pixels) and the videos that will be decoded forward. A video that cannot be read is
    left alone: cropping rejects its utterances with the reason.
    """
    first: dict[str, FaceJob] = {}
    for j in jobs:
        if j.video_path not in first or j.start < first[j.video_path].start:
            first[j.video_path] = j
    forward: list[str] = []
    for path, job in sorted(first.items()):
        try:
            with FrameReader(root / path, shown=path) as reader:
                frames = utterance_frames(reader, job, fps)
            exact = seek_is_exact(root / path, frames, shown=path)
        except VideoError:
            continue
        if not exact:
            log.warning(
                "%s: frames reached by seeking differ from the same frames decoded forward "
                "(utterance %s); this video is decoded forward", path, job.utterance_id,
            )
            forward.append(path)
    slow = set(forward)
    return [dataclasses.replace(j, seek=False) if j.video_path in slow else j for j in jobs], forward
