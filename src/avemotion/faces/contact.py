"""Contact sheets: a PNG per session to check the chosen camera view and the crops by eye."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from .. import files
from .crop import FaceResult
from .plan import speaker_view


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
