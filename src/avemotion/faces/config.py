"""Params section ``faces``: which detector, crop sizes, tracking, workers, contact sheets."""

from __future__ import annotations

import dataclasses
from typing import Literal

from ..config import ParamsError

Detector = Literal["sfd", "retinaface", "cascade"]
DETECTORS: tuple[str, ...] = ("sfd", "retinaface", "cascade")


@dataclasses.dataclass(frozen=True)
class FacesConfig:
    """Params section ``faces``."""

    detector: Detector = "sfd"
    #: which camera view shows the speaker: ``letter`` (speaker letter = dialog letter ->
    #: left, as three public preprocessors do) or ``gender`` (female left, as the paper's
    #: code does); the two disagree in every Ses0xM dialog: check the contact sheets
    view: Literal["letter", "gender"] = "letter"
    weights: str | None = None  # local detector weights (offline machines); null = download cache
    device: Literal["auto", "cpu", "cuda"] = "auto"  # where sfd/retinaface run; auto = cuda if present; cuda: every visible GPU, worker k on cuda:(k mod n)
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
