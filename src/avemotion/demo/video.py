"""The dialog video: two camera views side by side, each actor's face drifting in its view."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from .config import DemoConfig
from .face import face_image
from .layout import CONTENT_ROWS, FOURCC, FRAME_HEIGHT, FRAME_WIDTH, LEFT_COLS, RIGHT_COLS
from .plan import SEED_SESSION, SEED_VIDEO, Dialog, Speaker, seeded_rng, slot_index


def _face_path(rng: np.random.Generator, n: int, fps: float, view_w: int, view_h: int,
               size: int) -> np.ndarray:
    """(n, 2) integer top-left (x, y) of a face drifting smoothly inside a view."""
    t = np.arange(n) / fps
    out = np.empty((n, 2), np.int64)
    for axis, (extent, lo, hi) in enumerate(((view_w, 0.03, 0.08), (view_h, 0.04, 0.10))):
        free = max(0, extent - size - 4)
        amp = free / 2 * rng.uniform(0.6, 1.0)
        freq = rng.uniform(lo, hi)
        phase = rng.uniform(0, 2 * np.pi)
        out[:, axis] = np.round(2 + free / 2 + amp * np.sin(2 * np.pi * freq * t + phase))
    return out


def n_frames(dialog: Dialog, cfg: DemoConfig) -> int:
    """Frames in the dialog's video: enough to cover its last utterance and a short tail."""
    return int(math.ceil(dialog.seconds * cfg.fps))


def view_columns(dialog: Dialog) -> dict[str, tuple[int, int]]:
    """Columns [x0, x1) of each actor's view: the dialog-letter actor LEFT, the other RIGHT."""
    return {dialog.letter: LEFT_COLS, dialog.other: RIGHT_COLS}


def face_track(dialog: Dialog, speakers: dict[str, Speaker], cfg: DemoConfig) -> dict[str, np.ndarray]:
    """Per actor letter, (n_frames, 2) top-left (x, y) of the face inside its view.

    Add the view's first column and ``CONTENT_ROWS[0]`` to get frame coordinates.
    """
    rng = seeded_rng(cfg, SEED_VIDEO, dialog.session, 0 if dialog.improvised else 1, slot_index(dialog))
    n = n_frames(dialog, cfg)
    views = view_columns(dialog)
    height = CONTENT_ROWS[1] - CONTENT_ROWS[0]
    return {
        letter: _face_path(rng, n, cfg.fps, views[letter][1] - views[letter][0], height,
                           speakers[letter].face_px)
        for letter in (dialog.letter, dialog.other)
    }


def render_video(path: Path, dialog: Dialog, speakers: dict[str, Speaker], cfg: DemoConfig) -> int:
    """Write the dialog's side-by-side video; returns the number of frames.

    The background is drawn once; per frame only a face whose position or expression
    changed is erased and redrawn, so the encoder does almost all of the work.
    """
    n = n_frames(dialog, cfg)
    top, bottom = CONTENT_ROWS
    views = view_columns(dialog)
    frame = np.zeros((FRAME_HEIGHT, FRAME_WIDTH, 3), np.uint8)
    srng = seeded_rng(cfg, SEED_SESSION, dialog.session)
    backgrounds = {}
    for letter in (dialog.letter, dialog.other):  # left view first
        colour = tuple(int(c) for c in srng.integers(60, 150, 3))
        x0, x1 = views[letter]
        frame[top:bottom, x0:x1] = colour
        backgrounds[letter] = colour
    paths = face_track(dialog, speakers, cfg)
    # which utterance (if any) is being spoken at each frame's time
    times = np.arange(n) / cfg.fps
    starts = np.array([u.start for u in dialog.utterances])
    ends = np.array([u.end for u in dialog.utterances])
    k = np.searchsorted(starts, times, side="right") - 1  # last utterance started
    active = np.where((k >= 0) & (times < ends[np.clip(k, 0, None)]), k, -1)
    faces: dict[tuple[str, int], np.ndarray] = {}

    def face_for(letter: str, utt: int) -> np.ndarray:
        if (letter, utt) not in faces:
            if utt < 0:
                faces[letter, utt] = face_image(speakers[letter])
            else:
                u = dialog.utterances[utt]
                faces[letter, utt] = face_image(speakers[letter], u.emotion, u.face_intensity)
        return faces[letter, utt]

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*FOURCC), cfg.fps,
                             (FRAME_WIDTH, FRAME_HEIGHT))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {FOURCC} video to {path}; is FFmpeg support built in?")
    shown: dict[str, tuple[int, int, int] | None] = {dialog.letter: None, dialog.other: None}
    try:
        for i in range(n):
            a = int(active[i])
            talker = dialog.utterances[a].speaker if a >= 0 else None
            for letter in (dialog.letter, dialog.other):
                utt = a if letter == talker else -1  # the listener's face stays neutral
                x, y = (int(v) for v in paths[letter][i])
                state = (x, y, utt)
                if state == shown[letter]:
                    continue
                x0 = views[letter][0]
                size = speakers[letter].face_px
                if shown[letter] is not None:
                    px, py, _ = shown[letter]
                    frame[top + py : top + py + size, x0 + px : x0 + px + size] = backgrounds[letter]
                frame[top + y : top + y + size, x0 + x : x0 + x + size] = face_for(letter, utt)
                shown[letter] = state
            writer.write(frame)
    finally:
        writer.release()
    return n
