"""Tiny IEMOCAP-like dialog videos written on the fly: 720x480, two views side by side.

Faces are LFW faces shipped with scikit-image (25x25 grey crops of a face) upscaled to
FACE_PX with cubic interpolation, pasted on a textured background; the left face moves
along a known path, the right one stays still. Black bars above and below as in IEMOCAP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from skimage import data

WIDTH, HEIGHT = 720, 480
CONTENT_ROWS = (122, 360)  # rows with picture; black bars outside
FACE_PX = 140
FPS = 30.0
LEFT_FACE, RIGHT_FACE = 0, 7  # indices into skimage.data.lfw_subset() (first 100 are faces)


def face(index: int, px: int = FACE_PX) -> np.ndarray:
    """An LFW face as a (px, px) uint8 grey image."""
    small = (data.lfw_subset()[index] * 255).astype(np.uint8)
    return cv2.resize(small, (px, px), interpolation=cv2.INTER_CUBIC)


def left_path(i: int) -> tuple[float, float]:
    """Centre (x, y) of the left face in frame pixels at frame i: drifts right, 1.5 px per frame."""
    return 110.0 + 1.5 * i, 240.0


def right_path(i: int) -> tuple[float, float]:
    return 360.0 + 180.0, 240.0


def _background(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.integers(60, 140, size=(HEIGHT // 8, WIDTH // 8, 3), dtype=np.uint8)
    bg = cv2.resize(noise, (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)
    bg[: CONTENT_ROWS[0]] = 0
    bg[CONTENT_ROWS[1] :] = 0
    return bg


def _paste(frame: np.ndarray, img: np.ndarray, cx: float, cy: float) -> None:
    h, w = img.shape[:2]
    x0, y0 = int(round(cx - w / 2)), int(round(cy - h / 2))
    frame[y0 : y0 + h, x0 : x0 + w] = img[..., None]


def write_clip(
    path: Path,
    n_frames: int = 90,
    fps: float = FPS,
    left: Callable[[int], tuple[float, float]] | None = left_path,
    right: Callable[[int], tuple[float, float]] | None = right_path,
    fourcc: str = "DIVX",
) -> Path:
    """Write a two-view clip; `left`/`right` give each face's centre per frame (None: no face)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (WIDTH, HEIGHT))
    assert writer.isOpened(), f"cannot write {path} with {fourcc}"
    bg = _background(0)
    fl, fr = face(LEFT_FACE), face(RIGHT_FACE)
    for i in range(n_frames):
        frame = bg.copy()
        if left is not None:
            _paste(frame, fl, *left(i))
        if right is not None:
            _paste(frame, fr, *right(i))
        writer.write(frame)
    writer.release()
    return path


def write_empty_clip(path: Path, fps: float = FPS) -> Path:
    """A valid AVI container with zero frames."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"DIVX"), fps, (WIDTH, HEIGHT))
    writer.release()
    return path


def truncate(src: Path, dst: Path, fraction: float = 0.5) -> Path:
    """A copy of `src` cut after `fraction` of its bytes (as an interrupted copy leaves it)."""
    raw = src.read_bytes()
    dst.write_bytes(raw[: int(len(raw) * fraction)])
    return dst


def zero_middle(src: Path, dst: Path, fraction: float = 0.2) -> Path:
    """A copy of `src` whose middle `fraction` of bytes is overwritten with zeros (a bad sector)."""
    raw = bytearray(src.read_bytes())
    n = int(len(raw) * fraction)
    start = (len(raw) - n) // 2
    raw[start : start + n] = bytes(n)
    dst.write_bytes(bytes(raw))
    return dst


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised cross-correlation of two equally sized grey images."""
    a = a.astype(np.float64).ravel() - a.mean()
    b = b.astype(np.float64).ravel() - b.mean()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))


CODE_BITS = 10


def write_numbered_clip(path: Path, n_frames: int = 120, fps: float = FPS, fourcc: str = "DIVX") -> Path:
    """A clip whose frame i shows i in binary as CODE_BITS white/black blocks on the top row."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (WIDTH, HEIGHT))
    assert writer.isOpened()
    block = WIDTH // CODE_BITS
    for i in range(n_frames):
        frame = np.full((HEIGHT, WIDTH, 3), 40, dtype=np.uint8)
        for b in range(CODE_BITS):
            if (i >> b) & 1:
                frame[:48, b * block : (b + 1) * block] = 255
        writer.write(frame)
    writer.release()
    return path


def frame_number(frame: np.ndarray) -> int:
    """The number write_numbered_clip drew on `frame` (BGR or RGB)."""
    block = frame.shape[1] // CODE_BITS
    return sum(1 << b for b in range(CODE_BITS) if frame[24, b * block + block // 2].mean() > 128)


def write_numbered_clip_with_b_frames(path: Path, n_frames: int = 300, fps: float = FPS, b_frames: int = 2) -> Path:
    """write_numbered_clip's frames as MPEG-4 Part 2 with B-frames (as DivX files may have),
    written by PyAV (OpenCV's writer makes none)."""
    import av

    block = WIDTH // CODE_BITS
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=round(fps))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.gop_size = 30
        stream.codec_context.max_b_frames = b_frames
        stream.codec_context.bit_rate = 2_000_000
        for i in range(n_frames):
            frame = np.full((HEIGHT, WIDTH, 3), 40, dtype=np.uint8)
            for b in range(CODE_BITS):
                if (i >> b) & 1:
                    frame[:48, b * block : (b + 1) * block] = 255
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        out.mux(stream.encode())
    return path
