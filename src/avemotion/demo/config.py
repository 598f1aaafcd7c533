"""Params section ``demo``: what the generated corpus holds and how strong its cues are."""

from __future__ import annotations

import dataclasses

from ..config import ParamsError
from .layout import improvised_names, scripted_names


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Params section ``demo``: what the generated corpus holds and how strong its cues are."""

    seed: int = 2018  # everything is drawn from generators seeded by this
    sessions: tuple[int, ...] = (1, 2, 3, 4, 5)  # which of Session1..Session5 to write
    improvised_per_session: int = 2  # Ses0N{F,M}_impro.. dialogs per session (odd names first)
    scripted_per_session: int = 1  # Ses0N{F,M}_script.. dialogs per session
    utterances_per_dialog: int = 15
    min_seconds: float = 1.5  # utterance length, uniform in [min_seconds, max_seconds]
    max_seconds: float = 4.0
    min_gap_seconds: float = 0.15  # silence between turns, uniform in [min, max]
    max_gap_seconds: float = 0.6
    audio_cue: float = 1.0  # 0..2: how strongly the voice follows the emotion's arousal
    face_cue: float = 1.0  # 0..1: how strongly the speaker's face shows the emotion
    rater_noise: float = 0.3  # 0..1: chance an external rater picks another category
    multi_category: float = 0.08  # 0..1: chance a rater lists a second category
    fps: float = 29.97  # frame rate of the dialog videos
    face_px: int = 140  # mean side of a drawn face (each speaker varies by up to +-10 px)
    workers: int = 0  # processes writing dialogs in parallel; 0 = one per core (same bytes)

    def validate(self, where: str = "demo") -> None:
        def fail(key: str, msg: str) -> None:
            raise ParamsError(f"params: '{where}.{key}' {msg}")

        if self.seed < 0:
            fail("seed", f"must be >= 0, got {self.seed}")
        if not self.sessions or len(set(self.sessions)) != len(self.sessions) or not all(
            1 <= s <= 5 for s in self.sessions
        ):
            fail("sessions", f"must be distinct numbers from 1 to 5, got {list(self.sessions)}")
        for s in self.sessions:
            n_impro, n_script = len(improvised_names(s)), len(scripted_names(s))
            if not 0 <= self.improvised_per_session <= n_impro:
                fail("improvised_per_session",
                     f"must be in [0, {n_impro}], got {self.improvised_per_session}")
            if not 0 <= self.scripted_per_session <= n_script:
                fail("scripted_per_session",
                     f"must be in [0, {n_script}], got {self.scripted_per_session}")
        if self.improvised_per_session + self.scripted_per_session < 1:
            fail("improvised_per_session", "and scripted_per_session must not both be 0")
        if not 1 <= self.utterances_per_dialog <= 1000:
            fail("utterances_per_dialog", f"must be in [1, 1000], got {self.utterances_per_dialog}")
        if not 0.3 <= self.min_seconds <= self.max_seconds <= 60:
            fail("min_seconds", f"and max_seconds must satisfy 0.3 <= min <= max <= 60, "
                                f"got {self.min_seconds}, {self.max_seconds}")
        if not 0 <= self.min_gap_seconds <= self.max_gap_seconds <= 10:
            fail("min_gap_seconds", f"and max_gap_seconds must satisfy 0 <= min <= max <= 10, "
                                    f"got {self.min_gap_seconds}, {self.max_gap_seconds}")
        if not 0 <= self.audio_cue <= 2:
            fail("audio_cue", f"must be in [0, 2], got {self.audio_cue}")
        for key in ("face_cue", "rater_noise", "multi_category"):
            if not 0 <= getattr(self, key) <= 1:
                fail(key, f"must be in [0, 1], got {getattr(self, key)}")
        if not 5 <= self.fps <= 120:
            fail("fps", f"must be in [5, 120], got {self.fps}")
        if not 70 <= self.face_px <= 200:
            fail("face_px", f"must be in [70, 200] (the views are 238 px high), got {self.face_px}")
        if self.workers < 0:
            fail("workers", f"must be >= 0, got {self.workers}")
