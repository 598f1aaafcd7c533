"""Track and crop geometry: where the detector looks, the smoothed face path, the crop square."""

from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

#: rows and columns of a view whose brightest pixel (over the frames searched in an
#: utterance) is at most this are letterbox bars (IEMOCAP has ~120 black rows above and
#: below the picture): no face can be there, so the detector skips them, which halves
#: its cost on IEMOCAP frames
BLACK_LEVEL = 32
#: detections whose centres are median-filtered together (drops single false positives)
MEDIAN_DETECTIONS = 3


def picture_box(views: Sequence[np.ndarray]) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) of the part of the views that is not black bars, or None."""
    brightest = cv2.cvtColor(views[0], cv2.COLOR_BGR2GRAY)  # (H, W)
    for v in views[1:]:
        cv2.max(brightest, cv2.cvtColor(v, cv2.COLOR_BGR2GRAY), dst=brightest)
    rows = np.flatnonzero(brightest.max(axis=1) > BLACK_LEVEL)
    cols = np.flatnonzero(brightest.max(axis=0) > BLACK_LEVEL)
    if len(rows) == 0 or len(cols) == 0:
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def detection_steps(n: int, every: int) -> np.ndarray:
    """Steps the detector runs on: every `every`-th and the last. (k,) int64"""
    steps = np.arange(0, n, every)
    if n and steps[-1] != n - 1:
        steps = np.append(steps, n - 1)
    return steps


def smooth_window(smooth_s: float, fps: float) -> int:
    """Odd moving-average width in steps for `smooth_s` seconds."""
    w = int(round(smooth_s * fps))
    return max(1, w if w % 2 else w + 1)


def track(n: int, steps: np.ndarray, centres: np.ndarray, window: int) -> np.ndarray:
    """Face centre at each of `n` steps from detections at `steps` ((k,), centres (k, 2)).

    Median filter over MEDIAN_DETECTIONS detections, linear interpolation between
    detections (the nearest one beyond the ends), centred moving average of `window`
    steps. Returns (n, 2) float64 (x, y).
    """
    k = len(steps)
    half = MEDIAN_DETECTIONS // 2
    med = np.stack(
        [np.median(centres[max(0, i - half) : i + half + 1], axis=0) for i in range(k)]
    )  # (k, 2)
    grid = np.arange(n)
    path = np.stack([np.interp(grid, steps, med[:, 0]), np.interp(grid, steps, med[:, 1])], axis=1)  # (n, 2)
    if window > 1 and n > 1:
        pad = window // 2
        padded = np.pad(path, ((pad, pad), (0, 0)), mode="edge")  # (n + 2 pad, 2)
        # element-wise sums in a fixed order (not a convolution, whose summation order may
        # depend on the CPU), so crops are the same on every machine
        total = np.zeros_like(path)
        for offset in range(window):
            total += padded[offset : offset + n]
        path = total / window
    return path


def crop_origin(centre: float, size: int, extent: int) -> int:
    """Left/top edge of a `size` window centred on `centre`, moved to lie inside [0, extent).

    Where the view is smaller than the window the window is centred on the view (and
    padded), so the result can be negative.
    """
    if extent <= size:
        return (extent - size) // 2
    return int(min(max(int(math.floor(centre - size / 2 + 0.5)), 0), extent - size))


def crop_square(view: np.ndarray, x0: int, y0: int, size: int) -> np.ndarray:
    """The `size` square at (x0, y0) of `view` (H, W, C), zero where it leaves the view."""
    H, W = view.shape[:2]
    if 0 <= x0 and 0 <= y0 and x0 + size <= W and y0 + size <= H:
        return view[y0 : y0 + size, x0 : x0 + size]
    out = np.zeros((size, size) + view.shape[2:], dtype=view.dtype)  # (size, size, C)
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + size, W), min(y0 + size, H)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = view[sy0:sy1, sx0:sx1]
    return out


def preview_image(frame: np.ndarray) -> np.ndarray:
    """The picture rows of a whole frame (both views), half size. (h, W/2, 3) uint8 BGR"""
    rows = np.flatnonzero(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).max(axis=1) > BLACK_LEVEL)
    if len(rows):
        frame = frame[rows[0] : rows[-1] + 1]
    return cv2.resize(frame, (frame.shape[1] // 2, max(1, frame.shape[0] // 2)), interpolation=cv2.INTER_AREA)
