"""Faces: an LFW face per speaker, tinted, with the emotion's cue drawn on it."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from .plan import Speaker

#: face cue: drawn shapes and their weight (valence: smile vs. brows; sadness faint)
FACE_CUES: dict[str, tuple[tuple[str, float], ...]] = {
    "ang": (("flush", 1.0), ("brows_down", 1.0), ("mouth_tight", 1.0)),
    "fru": (("brows_down", 0.5), ("mouth_tight", 0.4)),
    "hap": (("smile", 1.0),),
    "exc": (("smile", 1.0), ("brows_up", 0.3)),
    "sad": (("brows_sad", 0.35), ("frown", 0.35)),
    "sur": (("brows_up", 0.8), ("mouth_open", 0.8)),
    "fea": (("brows_up", 0.6), ("mouth_open", 0.3)),
    "dis": (("mouth_tight", 0.6), ("brows_down", 0.3)),
    "neu": (),
    "oth": (),
}


@lru_cache(maxsize=None)
def _lfw() -> np.ndarray:
    from skimage.data import lfw_subset

    return lfw_subset()  # (200, 25, 25) float in [0, 1]; the first 100 are faces


def face_image(speaker: Speaker, emotion: str = "neu", intensity: float = 0.0) -> np.ndarray:
    """The speaker's face (face_px, face_px, 3) uint8 BGR with the emotion's cue drawn on."""
    size = speaker.face_px
    gray = cv2.resize(_lfw()[speaker.face_index].astype(np.float32), (size, size),
                      interpolation=cv2.INTER_CUBIC)
    face = np.clip(gray, 0, 1)[..., None] * np.array(speaker.tint, np.float32) * 255  # (S, S, 3)
    face = np.clip(face, 0, 255)
    s = size / 140  # cue coordinates below are for a 140 px face

    def p(x: float, y: float) -> tuple[int, int]:
        return int(round(x * s)), int(round(y * s))

    th = max(2, int(round(5 * s)))
    dark = (25, 25, 35)
    for shape, weight in FACE_CUES[emotion]:
        alpha = float(np.clip(weight * intensity, 0, 1))
        if alpha <= 0:
            continue
        over = face.copy()
        if shape == "flush":
            over[..., 2] = np.minimum(255, over[..., 2] * 1.15 + 45)
            over[..., 0] *= 0.8
        elif shape == "brows_down":
            cv2.line(over, p(38, 34), p(62, 48), dark, th, cv2.LINE_AA)
            cv2.line(over, p(102, 34), p(78, 48), dark, th, cv2.LINE_AA)
        elif shape == "brows_sad":
            cv2.line(over, p(38, 46), p(62, 36), dark, th, cv2.LINE_AA)
            cv2.line(over, p(102, 46), p(78, 36), dark, th, cv2.LINE_AA)
        elif shape == "brows_up":
            cv2.ellipse(over, p(50, 36), p(14, 6), 0, 180, 360, dark, th, cv2.LINE_AA)
            cv2.ellipse(over, p(90, 36), p(14, 6), 0, 180, 360, dark, th, cv2.LINE_AA)
        elif shape == "mouth_tight":
            cv2.line(over, p(52, 108), p(88, 108), (30, 30, 70), th, cv2.LINE_AA)
        elif shape == "smile":
            cv2.ellipse(over, p(70, 100), p(28, 14), 0, 10, 170, (245, 250, 250), th + 1, cv2.LINE_AA)
        elif shape == "frown":
            cv2.ellipse(over, p(70, 116), p(22, 10), 0, 190, 350, dark, th, cv2.LINE_AA)
        elif shape == "mouth_open":
            cv2.ellipse(over, p(70, 106), p(10, 14), 0, 0, 360, (20, 20, 20), -1, cv2.LINE_AA)
        face = face * (1 - alpha) + over * alpha
    return np.round(face).astype(np.uint8)
