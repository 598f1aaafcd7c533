"""Speaker face crops: find the speaking actor's face in each time step's frame and crop it.

For each kept utterance (stage ``faces``):

1. Decode the dialog video at the frames of the utterance's valid time steps (see
   video.py for the alignment rule: one frame per audio step, ``video.fps`` per second,
   only the first ``audio.seconds``). Reading seeks to the utterance instead of decoding
   the dialog from its start.
2. Take the speaker's camera view (``view`` from extract: left when the speaker letter
   equals the dialog letter, else right).
3. Run the face detector on every ``faces.detect_every``-th step's view (and on the
   last), in batches, resized by ``faces.detect_scale``, skipping the black bars above
   and below the picture. Of several faces in a view the detector keeps the most
   confident (sfd, retinaface) or the largest (cascade; after a hit it first searches
   near the last face, then the whole view).
4. Track: the detected face centres are median-filtered (three detections) to drop
   single false detections, interpolated linearly to the steps in between (a step with
   no detection takes the nearest detections on either side; before the first and after
   the last, the nearest one), then smoothed by a centred moving average over
   ``faces.smooth_s`` seconds so the crop does not jitter.
5. Crop a ``faces.crop_px`` square centred on the track, moved to lie inside the view
   (zero padding only where the view is smaller than the crop), resize it to
   ``faces.out_px`` (area interpolation), RGB uint8.

An utterance in which no face is found at all is cropped at the centre of the view and
flagged (``face_found`` false, ``frames_detected`` 0). A missing or undecodable video, or
a time range outside it, makes a reject with a reason; it never stops the stage.

Detectors (``faces.detector``)
------------------------------
- ``sfd``: face-alignment's S3FD network, batched, on the GPU when there is one. Its
  weights come from ``faces.weights`` if set, else from face-alignment's download cache
  ``$TORCH_HOME/hub/checkpoints/s3fd-619a316812.pth``, else they are downloaded there; if
  none of that works the stage stops with a message saying so and naming the
  alternatives. Boxes are decoded from the network's outputs here (vectorised, best box
  per image), the same boxes face-alignment's own post-processing ranks first.
- ``retinaface``: face-alignment's RetinaFace (MobileNet 0.25), same weight lookup.
- ``cascade``: the LBP frontal-face cascade that ships inside scikit-image
  (``lbpcascade_frontalface_opencv.xml``): fully offline, CPU only, less robust to
  profile faces. (OpenCV 5 no longer ships Haar cascades, so cv2.CascadeClassifier is
  not used.)

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

    >>> cfg = FacesConfig(detector="cascade", out_px=48)
    >>> result = run(utterances, labels, "IEMOCAP_full_release", "faces", "contact",
    ...              cfg, AudioConfig(3.0), VideoConfig(5.0))            # doctest: +SKIP
    >>> for row, crops in read_faces("faces/Session1.parquet"):         # doctest: +SKIP
    ...     crops.shape                                                 # (n_frames, 48, 48, 3)
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import functools
import hashlib
import json
import logging
import math
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal, Mapping, Sequence

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import files
from .audio import AudioConfig
from .config import ParamsError, as_dict
from .video import (
    FrameReader,
    VideoConfig,
    VideoError,
    n_steps_total,
    n_steps_valid,
    seek_is_exact,
    step_frames,
    view_columns,
)

log = logging.getLogger(__name__)

Detector = Literal["sfd", "retinaface", "cascade"]
DETECTORS: tuple[str, ...] = ("sfd", "retinaface", "cascade")

#: face-alignment's download addresses; the cached file keeps the address' file name.
WEIGHT_URLS = {
    "sfd": "https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth",
    "retinaface": "https://www.adrianbulat.com/downloads/python-fan/retinaface_mobilenet0.25.pth",
}

#: LBP cascade search: the window grows by this factor per scale (1.2 is scikit-image's
#: example and finds ~98% of upscaled LFW faces)
CASCADE_SCALE_FACTOR = 1.2
#: the cascade's training window; smaller faces cannot be found at any scale
CASCADE_WINDOW_PX = 24
#: after a hit the cascade searches a square CASCADE_ROI times the face's size around it,
#: for faces between 1/CASCADE_ROI_SIZES and CASCADE_ROI_SIZES times its size
CASCADE_ROI = 2.5
CASCADE_ROI_SIZES = 1.5
#: rows and columns of a view whose brightest pixel (over the frames searched in an
#: utterance) is at most this are letterbox bars (IEMOCAP has ~120 black rows above and
#: below the picture): no face can be there, so the detector skips them, which halves
#: its cost on IEMOCAP frames
BLACK_LEVEL = 32
#: detections whose centres are median-filtered together (drops single false positives)
MEDIAN_DETECTIONS = 3
#: utterances per unit of work; a unit decodes one speaker's consecutive utterances of
#: one dialog with one open video, in order, and is what a worker process gets
CHUNK_UTTERANCES = 4
#: Parquet rows per row group (fixed, so files do not depend on timing or worker count)
ROWS_PER_GROUP = 8
#: units of work in flight per worker: bounds memory whatever the corpus size
IN_FLIGHT_PER_WORKER = 2
#: seconds between a worker's checks that the stage's main process is still there
PARENT_POLL_S = 1.0


@dataclasses.dataclass(frozen=True)
class FacesConfig:
    """Params section ``faces``."""

    detector: Detector = "sfd"
    #: which camera view shows the speaker: ``letter`` (speaker letter = dialog letter ->
    #: left, as three public preprocessors do) or ``gender`` (female left, as the paper's
    #: code does); the two disagree in every Ses0xM dialog: check the contact sheets
    view: Literal["letter", "gender"] = "letter"
    weights: str | None = None  # local detector weights (offline machines); null = download cache
    device: Literal["auto", "cpu", "cuda"] = "auto"  # where sfd/retinaface run; auto = cuda if present
    crop_px: int = 224  # side of the square cut around the face, in video pixels
    out_px: int = 96  # side of the stored crop
    detect_every: int = 5  # run the detector on every n-th step (and the last); 1 = every step
    detect_scale: float = 1.0  # the view is resized by this before detection (speed)
    min_face_px: int = 40  # smallest face searched, in video pixels (cascade)
    cascade_step: float = 1.0  # cascade window stride per scale; 1 = exhaustive, 1.5 ~2x faster
    threshold: float = 0.5  # minimum detector confidence (sfd, retinaface)
    batch: int = 16  # views per detector forward pass (sfd)
    smooth_s: float = 0.2  # moving-average window of the face track, seconds
    workers: int = 0  # worker processes; 0 = one per available core
    contact_utterances: int = 16  # utterances shown per session's contact sheet
    contact_frames: int = 8  # frames shown per utterance on the contact sheet

    def validate(self, where: str) -> None:
        positive = ("crop_px", "out_px", "detect_every", "min_face_px", "batch", "contact_frames")
        for name in positive:
            if getattr(self, name) < 1:
                raise ParamsError(f"params: '{where}.{name}' must be >= 1, got {getattr(self, name)}")
        if not 1 <= self.cascade_step <= 3:
            raise ParamsError(f"params: '{where}.cascade_step' must be in [1, 3], got {self.cascade_step}")
        if not 0 < self.detect_scale <= 4:
            raise ParamsError(f"params: '{where}.detect_scale' must be in (0, 4], got {self.detect_scale}")
        if not 0 <= self.threshold < 1:
            raise ParamsError(f"params: '{where}.threshold' must be in [0, 1), got {self.threshold}")
        if self.smooth_s < 0:
            raise ParamsError(f"params: '{where}.smooth_s' must be >= 0, got {self.smooth_s}")
        if self.workers < 0 or self.contact_utterances < 0:
            raise ParamsError(f"params: '{where}.workers' and '{where}.contact_utterances' must be >= 0")
        if self.out_px > self.crop_px:
            raise ParamsError(
                f"params: '{where}.out_px' ({self.out_px}) is larger than '{where}.crop_px' ({self.crop_px})"
            )


# ----------------------------------------------------------------------------- detectors


class DetectorUnavailable(RuntimeError):
    """The configured face detector cannot be built (no weights, no such device)."""


def _download(url: str, dest: Path) -> None:
    """Fetch `url` to `dest` (face-alignment's first-use download). Separate so tests can stub it."""
    from torch.hub import download_url_to_file

    dest.parent.mkdir(parents=True, exist_ok=True)
    download_url_to_file(url, str(dest), progress=False)


#: face-alignment's (and torch.hub's) convention: a weights file's name carries the first
#: hex digits of its sha256 after the last dash, ``s3fd-619a316812.pth``; at least 8 here,
#: so that a name like ``model-best.pth`` is not taken for one
HASH_PREFIX_RE = re.compile(r"-([0-9a-f]{8,64})\.[^-]*$")


def hash_prefix(path: str | Path) -> str | None:
    """The sha256 prefix a weights file's name carries, or None."""
    m = HASH_PREFIX_RE.search(Path(path).name)
    return m.group(1) if m else None


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_of(path: str | Path) -> str:
    st = os.stat(path)
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


def verify_weights(path: str | Path) -> str:
    """The sha256 of a weights file, checked against the prefix its name carries.

    Raises DetectorUnavailable when the name says one hash and the bytes give another
    (a partial download, a renamed file, other weights under the usual name).
    """
    digest = sha256_of(path)
    prefix = hash_prefix(path)
    if prefix is not None and not digest.startswith(prefix):
        raise DetectorUnavailable(
            f"{path}: its name says sha256 {prefix}..., its contents hash to {digest[:len(prefix)]}... "
            "(a partial download or other weights under this name?). Delete it and let it be "
            "downloaded again, or copy the right file there, or point faces.weights at it."
        )
    if prefix is None:
        log.info("%s: no sha256 prefix in the name to check against; recording sha256 %s", path, digest)
    return digest


def detector_files_sha256(detector: str, weights: str | None) -> str:
    """sha256 of what the detector is made of: its weights, or the cascade file scikit-image ships."""
    if detector == "cascade":
        from skimage.data import lbp_frontal_face_cascade_filename

        return sha256_of(lbp_frontal_face_cascade_filename())
    return verify_weights(weights)


def cached_weights_path(detector: str) -> Path:
    """Where face-alignment keeps downloaded weights: $TORCH_HOME/hub/checkpoints/<file>."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHT_URLS[detector].rsplit("/", 1)[-1]


def resolve_weights(cfg: FacesConfig) -> str | None:
    """The weights file the detector will load (None for the cascade, which needs none).

    Order: ``faces.weights``; face-alignment's cache; a download into that cache. The
    file is checked against the sha256 prefix its name carries (`verify_weights`).
    Raises DetectorUnavailable with what was tried and what to do instead.
    """
    if cfg.detector == "cascade":
        return None
    if cfg.weights is not None:
        path = Path(cfg.weights)
        if not path.is_file():
            raise DetectorUnavailable(
                f"faces.weights = {cfg.weights}: file not found (faces.detector: {cfg.detector}). "
                f"Point faces.weights at a copy of {WEIGHT_URLS[cfg.detector].rsplit('/', 1)[-1]}, "
                "set faces.weights: null to use face-alignment's download cache, "
                "or use faces.detector: cascade (ships with scikit-image, no download)."
            )
        verify_weights(path)
        return str(path)
    cached = cached_weights_path(cfg.detector)
    if cached.is_file():
        verify_weights(cached)
        return str(cached)
    url = WEIGHT_URLS[cfg.detector]
    try:
        log.info("downloading %s weights from %s to %s", cfg.detector, url, cached)
        _download(url, cached)
        verify_weights(cached)
    except DetectorUnavailable:
        cached.unlink(missing_ok=True)  # never leave a bad download where the next run trusts it
        raise
    except Exception as exc:  # offline: URLError, socket errors, HTTP errors, ...
        raise DetectorUnavailable(
            f"faces.detector: {cfg.detector} needs weights that could not be had: faces.weights is "
            f"null, {cached} does not exist, and downloading {url} failed ({exc}). "
            f"On an offline machine either copy the file to {cached} (or set $TORCH_HOME), "
            "or set faces.weights to a local copy, or use faces.detector: cascade "
            "(ships with scikit-image, no download)."
        ) from None
    return str(cached)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise DetectorUnavailable("faces.device: cuda, but no CUDA device is available; use auto or cpu")
    return device


@dataclasses.dataclass(frozen=True)
class Box:
    """A detected face in view pixels."""

    cx: float
    cy: float
    w: float
    h: float
    score: float


class CascadeDetector:
    """scikit-image's LBP frontal-face cascade, one view at a time, largest face wins."""

    def __init__(self, scale: float = 1.0, min_face_px: int = 40, step_ratio: float = 1.0):
        from skimage.data import lbp_frontal_face_cascade_filename
        from skimage.feature import Cascade

        self.cascade = Cascade(lbp_frontal_face_cascade_filename())
        self.scale = scale
        self.step_ratio = step_ratio
        self.min_window = max(CASCADE_WINDOW_PX, int(round(min_face_px * scale)))

    def detect(self, views: Sequence[np.ndarray]) -> list[Box | None]:
        """Best face per BGR view (H, W, 3) uint8, or None; views in time order.

        After a hit, the next view is first searched only near it (CASCADE_ROI times the
        face's size, faces of similar size): a few times cheaper than the whole view. A
        miss there falls back to the whole view, so a false detection cannot hold on.
        """
        out: list[Box | None] = []
        prev: Box | None = None
        for view in views:
            box = self._search(view, prev) if prev is not None else None
            if box is None:
                box = self._search(view, None)
            out.append(box)
            prev = box or prev
        return out

    def _search(self, view: np.ndarray, near: Box | None) -> Box | None:
        H, W = view.shape[:2]
        x0, y0, x1, y1 = 0, 0, W, H
        lo, hi = self.min_window, None
        if near is not None:
            half = CASCADE_ROI * max(near.w, near.h) / 2
            x0, x1 = max(0, int(near.cx - half)), min(W, int(near.cx + half) + 1)
            y0, y1 = max(0, int(near.cy - half)), min(H, int(near.cy + half) + 1)
            lo = max(lo, int(near.w * self.scale / CASCADE_ROI_SIZES))
            hi = int(math.ceil(near.w * self.scale * CASCADE_ROI_SIZES))
        gray = cv2.cvtColor(view[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)  # (h, w)
        if self.scale != 1.0:
            gray = cv2.resize(gray, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA)
        side = min(gray.shape)
        hi = side if hi is None else min(hi, side)
        if hi < lo:
            return None
        found = self.cascade.detect_multi_scale(
            img=gray,
            scale_factor=CASCADE_SCALE_FACTOR,
            step_ratio=self.step_ratio,
            min_size=(lo, lo),
            max_size=(hi, hi),
        )
        if not found:
            return None
        # largest first; ties broken by position so the choice is deterministic
        best = max(found, key=lambda d: (d["width"] * d["height"], -d["r"], -d["c"]))
        s = self.scale
        return Box(
            cx=x0 + (best["c"] + best["width"] / 2) / s,
            cy=y0 + (best["r"] + best["height"] / 2) / s,
            w=best["width"] / s,
            h=best["height"] / s,
            score=1.0,
        )


class SFDDetector:
    """face-alignment's S3FD network, batched; best box per image by score."""

    #: S3FD's BGR channel means (subtracted before the network)
    MEAN_BGR = (104.0, 117.0, 123.0)
    #: prior-box variances of S3FD's box regression
    VARIANCES = (0.1, 0.2)

    def __init__(self, weights: str, device: str = "cpu", scale: float = 1.0, threshold: float = 0.5, batch: int = 16):
        import torch
        from face_alignment.detection.sfd.net_s3fd import s3fd

        self.torch = torch
        self.device = device
        self.scale = scale
        self.threshold = threshold
        self.batch = batch
        net = s3fd()
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        except Exception as exc:
            raise DetectorUnavailable(f"{weights}: not an S3FD state dict ({exc})") from None
        self.net = net.to(device).eval()
        self.mean = torch.tensor(self.MEAN_BGR, device=device).view(1, 3, 1, 1)

    def detect(self, views: Sequence[np.ndarray]) -> list[Box | None]:
        """Best face per BGR view (H, W, 3) uint8 (all views the same size), or None."""
        out: list[Box | None] = []
        for i in range(0, len(views), self.batch):
            out += self._batch(views[i : i + self.batch])
        return out

    def _batch(self, views: Sequence[np.ndarray]) -> list[Box | None]:
        torch = self.torch
        if self.scale != 1.0:
            views = [cv2.resize(v, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA) for v in views]
        x = torch.from_numpy(np.stack(views)).to(self.device)  # (B, H, W, 3) uint8 BGR
        x = x.permute(0, 3, 1, 2).float() - self.mean  # (B, 3, H, W) BGR, mean removed
        with torch.inference_mode():
            outputs = self.net(x)
            scores, boxes = best_s3fd_boxes(outputs, self.VARIANCES)  # (B,), (B, 4) x1 y1 x2 y2
        scores, boxes = scores.cpu().numpy(), boxes.cpu().numpy() / self.scale
        return [
            Box(
                cx=float(b[0] + b[2]) / 2, cy=float(b[1] + b[3]) / 2, w=float(b[2] - b[0]), h=float(b[3] - b[1]), score=float(s)
            )
            if s > self.threshold
            else None
            for s, b in zip(scores, boxes)
        ]


def best_s3fd_boxes(outputs: Sequence[Any], variances: tuple[float, float] = (0.1, 0.2)):
    """Highest-scoring box per image from S3FD's raw outputs.

    `outputs` alternates class logits (B, 2, H_i, W_i) and box regressions (B, 4, H_i, W_i)
    for six levels of stride 4, 8, ..., 128 with square priors of 4x the stride, as in
    face-alignment's ``get_predictions``; the box with the best score survives its NMS,
    so it is the box face-alignment ranks first. Returns (scores (B,), boxes (B, 4)).
    """
    import torch

    best_score, best_box = None, None
    for level in range(len(outputs) // 2):
        logits, reg = outputs[2 * level], outputs[2 * level + 1]
        stride = 2 ** (level + 2)
        score = torch.softmax(logits, dim=1)[:, 1]  # (B, H, W)
        B, H, W = score.shape
        s, idx = score.reshape(B, -1).max(dim=1)  # (B,), (B,)
        row, col = idx // W, idx % W
        loc = reg.reshape(B, 4, -1)[torch.arange(B), :, idx]  # (B, 4)
        prior_c = torch.stack([col, row], dim=1).float() * stride + stride / 2  # (B, 2) x, y
        prior_wh = float(stride * 4)
        centre = prior_c + loc[:, :2] * variances[0] * prior_wh  # (B, 2)
        wh = prior_wh * torch.exp(loc[:, 2:] * variances[1])  # (B, 2)
        box = torch.cat([centre - wh / 2, centre + wh / 2], dim=1)  # (B, 4)
        if best_score is None:
            best_score, best_box = s, box
        else:
            better = s > best_score
            best_score = torch.where(better, s, best_score)
            best_box = torch.where(better[:, None], box, best_box)
    return best_score, best_box


class RetinaFaceDetector:
    """face-alignment's RetinaFace (MobileNet 0.25), one view at a time; best box by score."""

    def __init__(self, weights: str, device: str = "cpu", scale: float = 1.0, threshold: float = 0.5):
        from face_alignment.detection.retinaface.retinaface_detector import RetinaFaceDetector as FA

        try:
            self.fa = FA(device=device, path_to_detector=weights, confidence_threshold=threshold)
        except Exception as exc:
            raise DetectorUnavailable(f"{weights}: not a RetinaFace state dict ({exc})") from None
        self.scale = scale

    def detect(self, views: Sequence[np.ndarray]) -> list[Box | None]:
        out: list[Box | None] = []
        for v in views:
            if self.scale != 1.0:
                v = cv2.resize(v, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA)
            dets = self.fa.detect_from_image(np.ascontiguousarray(v))  # the net expects BGR
            if not dets:
                out.append(None)
                continue
            x1, y1, x2, y2, s = (float(t) for t in max(dets, key=lambda d: d[4]))
            k = self.scale
            out.append(Box(cx=(x1 + x2) / 2 / k, cy=(y1 + y2) / 2 / k, w=(x2 - x1) / k, h=(y2 - y1) / k, score=s))
        return out


def make_detector(cfg: FacesConfig, weights: str | None = None, device: str | None = None):
    """The configured detector. `weights` defaults to `resolve_weights(cfg)`."""
    if cfg.detector == "cascade":
        return CascadeDetector(scale=cfg.detect_scale, min_face_px=cfg.min_face_px, step_ratio=cfg.cascade_step)
    weights = weights or resolve_weights(cfg)
    device = device or resolve_device(cfg.device)
    if cfg.detector == "sfd":
        return SFDDetector(weights, device=device, scale=cfg.detect_scale, threshold=cfg.threshold, batch=cfg.batch)
    if cfg.detector == "retinaface":
        return RetinaFaceDetector(weights, device=device, scale=cfg.detect_scale, threshold=cfg.threshold)
    raise DetectorUnavailable(f"Invalid faces.detector {cfg.detector!r}. Only {', '.join(DETECTORS)} are supported.")


# ----------------------------------------------------------------------------- track and crop


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


# ----------------------------------------------------------------------------- one utterance


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


# ----------------------------------------------------------------------------- planning


def speaker_view(speaker: str, dialog_letter: str, rule: str = "letter") -> str:
    """The camera view (left | right) that shows the speaker under `rule` (faces.view)."""
    if rule == "letter":
        return "left" if speaker == dialog_letter else "right"
    if rule == "gender":
        return "left" if speaker == "F" else "right"
    raise ValueError(f"Invalid faces.view {rule!r}. Only letter and gender are supported.")


def plan_jobs(
    utterances: pa.Table, labels: pa.Table, audio: AudioConfig, video: VideoConfig, view: str = "letter"
) -> list[FaceJob]:
    """One job per kept utterance (emotion not null), sorted by (session, utterance_id).

    The view is chosen by `view` (faces.view); the first utterance of each speaker in
    each dialog is marked for the contact sheet's view check.
    """
    kept = {
        r["utterance_id"]
        for r in labels.select(["utterance_id", "emotion"]).to_pylist()
        if r["emotion"] is not None
    }
    cols = ["utterance_id", "session", "dialog", "speaker", "dialog_letter", "start", "end", "video_path", "n_samples", "sample_rate"]
    jobs = [
        FaceJob(
            utterance_id=r["utterance_id"],
            session=int(r["session"]),
            dialog=r["dialog"],
            speaker=r["speaker"],
            view=speaker_view(r["speaker"], r["dialog_letter"], view),
            dialog_letter=r["dialog_letter"],
            start=float(r["start"]),
            end=float(r["end"]),
            video_path=r["video_path"],
            n_steps=n_steps_valid(r["n_samples"], r["sample_rate"], audio.seconds, video.fps),
        )
        for r in utterances.select(cols).to_pylist()
        if r["utterance_id"] in kept
    ]
    jobs.sort(key=lambda j: (j.session, j.utterance_id))
    seen: set[tuple[str, str]] = set()
    for i, j in enumerate(jobs):
        if (j.dialog, j.speaker) not in seen:
            seen.add((j.dialog, j.speaker))
            jobs[i] = dataclasses.replace(j, preview=True)
    return jobs


def chunk_jobs(jobs: Sequence[FaceJob], per_chunk: int = CHUNK_UTTERANCES) -> list[list[FaceJob]]:
    """Consecutive runs of one dialog and speaker, at most `per_chunk` long, order kept.

    A video that must be decoded forward (``seek`` false) is one chunk, so it is decoded
    about once rather than once per chunk.
    """
    chunks: list[list[FaceJob]] = []
    for job in jobs:
        last = chunks[-1] if chunks else None
        if last and not job.seek and last[-1].video_path == job.video_path:
            last.append(job)
        elif last and last[-1].seek and len(last) < per_chunk and (last[-1].dialog, last[-1].speaker, last[-1].session) == (
            job.dialog,
            job.speaker,
            job.session,
        ):
            last.append(job)
        else:
            chunks.append([job])
    return chunks


# ----------------------------------------------------------------------------- workers


_WORKER: dict[str, Any] = {}


def die_with_parent(parent: int) -> None:
    """End this worker process as soon as the stage's main process `parent` is gone.

    A main process killed outright (SIGKILL, the OOM killer) runs no cleanup, and pool
    workers blocked on their task queue would otherwise live on forever under PID 1,
    holding GPU memory with sfd, and keeping multiprocessing's resource tracker alive
    (it exits when the last worker holding its pipe does). On Linux the kernel sends the
    worker SIGKILL when its parent dies (prctl PR_SET_PDEATHSIG); everywhere, a daemon
    thread also checks every PARENT_POLL_S seconds that the parent is still the parent.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            PR_SET_PDEATHSIG = 1
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no libc prctl: the thread below still works
            pass
    if os.getppid() != parent:  # died before the line above took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_S)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def _init_worker(
    root: str, cfg: FacesConfig, fps: float, weights: str | None, device: str | None, threads: int, parent: int
) -> None:
    die_with_parent(parent)
    cv2.setNumThreads(threads)
    if cfg.detector != "cascade":
        import torch

        torch.set_num_threads(threads)
    _WORKER.update(root=Path(root), cfg=cfg, fps=fps, detector=make_detector(cfg, weights, device))


def _work(chunk: list[FaceJob]) -> list[FaceResult]:
    w = _WORKER
    return crop_chunk(chunk, w["root"], w["cfg"], w["fps"], w["detector"])


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def iter_results(
    chunks: Sequence[list[FaceJob]],
    root: Path,
    cfg: FacesConfig,
    fps: float,
    weights: str | None,
    device: str | None,
    workers: int,
) -> Iterator[FaceResult]:
    """Results of all chunks, in chunk order, computed by `workers` processes.

    At most IN_FLIGHT_PER_WORKER chunks per worker are pending at a time, so memory does
    not grow with the corpus. With one worker everything runs in this process.
    """
    if workers <= 1:
        detector = make_detector(cfg, weights, device)
        for chunk in chunks:
            yield from crop_chunk(chunk, root, cfg, fps, detector)
        return
    threads = max(1, available_cores() // workers)
    # spawn, not fork: safe with torch/CUDA and OpenMP state in the parent
    ctx = multiprocessing.get_context("spawn")
    pool = cf.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(str(root), cfg, fps, weights, device, threads, os.getpid()),
    )
    try:
        pending: list[cf.Future] = []
        todo = iter(chunks)
        for chunk in todo:
            pending.append(pool.submit(_work, chunk))
            if len(pending) >= workers * IN_FLIGHT_PER_WORKER:
                break
        while pending:
            done = pending.pop(0).result()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(pool.submit(_work, nxt))
            yield from done
    finally:
        # interrupted (Ctrl-C, an error while writing): drop the queued work, not wait for it
        pool.shutdown(wait=True, cancel_futures=True)


# ----------------------------------------------------------------------------- outputs


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


def preview_image(frame: np.ndarray) -> np.ndarray:
    """The picture rows of a whole frame (both views), half size. (h, W/2, 3) uint8 BGR"""
    rows = np.flatnonzero(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).max(axis=1) > BLACK_LEVEL)
    if len(rows):
        frame = frame[rows[0] : rows[-1] + 1]
    return cv2.resize(frame, (frame.shape[1] // 2, max(1, frame.shape[0] // 2)), interpolation=cv2.INTER_AREA)


class ContactSheet:
    """A PNG per session: the speaker-view check, then a grid of crops.

    View check (top): for the first utterance of each speaker in each dialog, one frame
    with both camera views side by side; the view the crops come from (``faces.view``)
    is framed in green, and the label gives the speaker and dialog letters and the view
    each rule picks. The actor with motion-capture markers is the one named by the dialog
    letter: when the speaker letter equals the dialog letter the speaking actor should be
    in the green view wearing markers.

    Crops (below): one row per sampled utterance, a few crops across its length, labelled
    with the utterance id; an utterance where no face was found is framed in red and
    labelled NO FACE; a rejected one shows its reason.
    """

    LABEL_PX = 16
    MIN_CELL_PX = 96
    RED = (0, 0, 255)  # BGR, as cv2 draws
    GREEN = (0, 255, 0)
    TEXT = (255, 255, 255)

    def __init__(self, picks: Iterable[str], out_px: int, frames: int, view_rule: str = "letter"):
        self.picks = set(picks)
        self.frames = frames
        self.view_rule = view_rule
        self.zoom = max(1, math.ceil(self.MIN_CELL_PX / out_px))
        self.cell = out_px * self.zoom
        self.rows: list[tuple[str, np.ndarray]] = []
        self.previews: list[tuple[str, np.ndarray]] = []

    def add_preview(self, r: FaceResult) -> None:
        """Both views of one frame of `r`, the chosen view framed (see the class doc)."""
        if r.preview is None or r.job is None:
            return
        j = r.job
        width = self.frames * self.cell
        img = r.preview
        h = max(1, round(img.shape[0] * width / img.shape[1]))
        img = cv2.resize(img, (width, h), interpolation=cv2.INTER_AREA)
        strip = np.zeros((self.LABEL_PX + h, width, 3), dtype=np.uint8)  # BGR
        strip[self.LABEL_PX :] = img
        half = width // 2
        x0 = 0 if j.view == "left" else half
        cv2.rectangle(strip, (x0 + 2, self.LABEL_PX + 2), (x0 + half - 3, self.LABEL_PX + h - 3), self.GREEN, 3)
        by = {rule: speaker_view(j.speaker, j.dialog_letter, rule) for rule in ("letter", "gender")}
        label = (
            f"{j.utterance_id} speaker {j.speaker}, dialog letter {j.dialog_letter}: cropped {j.view.upper()} "
            f"(faces.view {self.view_rule}; letter->{by['letter']}, gender->{by['gender']})"
        )
        cv2.putText(strip, label, (2, self.LABEL_PX - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, self.TEXT, 1, cv2.LINE_AA)
        self.previews.append((r.utterance_id, strip))

    @staticmethod
    def sample(ids: Sequence[str], k: int) -> list[str]:
        """k ids evenly spread over `ids` (deterministic)."""
        if k <= 0 or not ids:
            return []
        idx = sorted({int(round(i)) for i in np.linspace(0, len(ids) - 1, min(k, len(ids)))})
        return [ids[i] for i in idx]

    def add(self, r: FaceResult) -> None:
        self.add_preview(r)
        if r.utterance_id not in self.picks:
            return
        width = self.frames * self.cell
        strip = np.zeros((self.LABEL_PX + self.cell, width, 3), dtype=np.uint8)  # BGR
        if r.faces is None:
            label = f"{r.utterance_id}  REJECTED: {r.reason}"
            strip[self.LABEL_PX :] = 64
        else:
            n = len(r.faces)
            pick = sorted({int(round(i)) for i in np.linspace(0, n - 1, min(self.frames, n))})
            for j, i in enumerate(pick):
                img = np.repeat(np.repeat(r.faces[i][..., ::-1], self.zoom, axis=0), self.zoom, axis=1)
                strip[self.LABEL_PX :, j * self.cell : (j + 1) * self.cell] = img
                if not r.face_found:
                    cv2.rectangle(
                        strip, (j * self.cell, self.LABEL_PX), ((j + 1) * self.cell - 1, self.LABEL_PX + self.cell - 1), self.RED, 2
                    )
            label = f"{r.utterance_id}  {r.frames_detected}/{r.frames_searched} detected, {n} frames"
            if n < r.n_steps:
                label += f" of {r.n_steps} (video ends)"
            if not r.face_found:
                label = f"{r.utterance_id}  NO FACE (view centre), {n} frames"
        colour = self.TEXT if r.face_found else self.RED
        cv2.putText(strip, label, (2, self.LABEL_PX - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)
        self.rows.append((r.utterance_id, strip))

    def write(self, path: Path) -> None:
        rows = [s for _, s in sorted(self.previews, key=lambda t: t[0])]
        rows += [s for _, s in sorted(self.rows, key=lambda t: t[0])]
        if not rows:
            rows = [np.zeros((self.LABEL_PX + self.cell, self.frames * self.cell, 3), dtype=np.uint8)]
        sheet = np.concatenate(rows, axis=0)
        ok, png = cv2.imencode(".png", sheet)
        if not ok:
            raise RuntimeError(f"{path}: PNG encoding failed")
        with files.atomic_path(path) as tmp:
            tmp.write_bytes(png.tobytes())


# ----------------------------------------------------------------------------- the stage


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
