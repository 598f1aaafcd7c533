"""The face detectors (``faces.detector``): best face per camera view.

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
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import cv2
import numpy as np

from .config import DETECTORS, FacesConfig
from .weights import DetectorUnavailable, resolve_device, resolve_weights

#: LBP cascade search: the window grows by this factor per scale (1.2 is scikit-image's
#: example and finds ~98% of upscaled LFW faces)
CASCADE_SCALE_FACTOR = 1.2
#: the cascade's training window; smaller faces cannot be found at any scale
CASCADE_WINDOW_PX = 24
#: after a hit the cascade searches a square CASCADE_ROI times the face's size around it,
#: for faces between 1/CASCADE_ROI_SIZES and CASCADE_ROI_SIZES times its size
CASCADE_ROI = 2.5
CASCADE_ROI_SIZES = 1.5


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
