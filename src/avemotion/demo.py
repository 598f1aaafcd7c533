"""Demo corpus: a small generated tree in IEMOCAP_full_release's exact on-disk layout.

IEMOCAP is licensed, so the pipeline cannot ship it; this module writes a stand-in that
has the real layout and file formats (as described in IEMOCAP.md) and signals a network
can learn, so that every stage runs end to end on any machine and the model comparison
means something.

What a dialog holds:

- ``SessionN/dialog/EmoEvaluation/<dialog>.txt`` in the corpus' format: header line,
  blank-line-separated blocks, TAB separators, LF endings; three external raters
  (``C-E<n>``, three of E1..E6) per utterance, self ratings by the speaking actor
  (``C-F<n>``/``C-M<n>``), dimensional ``A-`` lines (``dom  2`` with two spaces, a few
  without ``dom``), multi-category and empty ratings, ``Neutral state``, free comments.
  Utterances are numbered per speaker (``_F000, _F001, ..``, ``_M000, ..``), in time
  order. The summary code is the category listed by at least two of the three external
  raters (``Neutral state`` counts as Neutral; an empty rating counts for nothing), else
  ``xxx`` (a split vote); two categories with two votes each are never drawn.
- ``SessionN/sentences/wav/<dialog>/<utterance>.wav``: 16 kHz mono PCM16, exactly
  ``round((end - start) * 16000)`` samples.
- ``SessionN/dialog/wav/<dialog>.wav``: stereo, channel 0 the actor named by the dialog
  letter, channel 1 the other one.
- ``SessionN/dialog/avi/DivX/<dialog>.avi``: 720x480 MPEG-4 (fourcc DIVX), two camera
  views side by side between black bars; the dialog-letter actor (the mocap wearer) in
  the LEFT view, the other in the RIGHT; each view shows its actor's face (a real face
  from scikit-image's LFW subset, upscaled and tinted) drifting slowly on a smooth path.
- ``SessionN/dialog/transcriptions/<dialog>.txt``, ignored ``EmoEvaluation/Categorical/``,
  ``Attribute/``, ``Self-evaluation/`` files, and a few macOS ``._<name>`` sidecars of
  garbage bytes beside real files, so a parser's skipping is exercised.

The signals. Each utterance has a true emotion that drives the raters' votes, the audio
and the face. The audio (a harmonic voice with formants, syllables and pauses) carries
mostly arousal: anger, happiness and excitement are high, fast and loud with a wide pitch
range, sadness low, slow and quiet, neutral in between, so anger and happiness sound
alike. The face carries mostly valence: a smile for happiness/excitement, lowered brows,
a tight mouth and a red flush for anger, only a faint frown for sadness, nothing for
neutral. So neither modality alone separates the four classes; both together do. Gender
comes from the voice (F0 about 200-240 Hz female, 100-130 Hz male, per speaker) and from
the face (one identity per speaker, warm tints for women and cool tints for men). The
listener's face stays neutral.

Everything is drawn from numpy Generators seeded by ``DemoConfig.seed`` and the item's
identity (session, dialog, utterance), never from global state or time: the same config
gives the same bytes, and asking for more dialogs leaves the existing ones unchanged.

Example (what the ``demo`` stage runs)::

    summary = write_demo_corpus(Path("data/demo/IEMOCAP_full_release"), DemoConfig())
    summary["utterances"]  # 225: 5 sessions x 3 dialogs x 15
"""

from __future__ import annotations

import dataclasses
import logging
import math
import multiprocessing
import os
import shutil
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy as np
import soundfile as sf
from scipy.signal import sosfilt

from .config import ParamsError

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- corpus facts
# Properties of IEMOCAP's files (IEMOCAP.md), not tunable: the pipeline checks them.

SAMPLE_RATE = 16000
FRAME_WIDTH, FRAME_HEIGHT = 720, 480
#: rows [top, bottom) holding picture between the black bars
CONTENT_ROWS = (122, 360)
#: columns [left, right) of the two camera views
LEFT_COLS = (7, 354)
RIGHT_COLS = (365, 714)
FOURCC = "DIVX"

#: summary codes and the category word each stands for in ``C-`` lines
CATEGORY_WORDS = {
    "neu": "Neutral",
    "fru": "Frustration",
    "ang": "Anger",
    "sad": "Sadness",
    "hap": "Happiness",
    "exc": "Excited",
    "sur": "Surprise",
    "fea": "Fear",
    "dis": "Disgust",
    "oth": "Other",
}
WORD_CODES = {word: code for code, word in CATEGORY_WORDS.items()} | {"Neutral state": "neu"}

#: dialog names that break fixed-position slicing; they come first in their session's
#: list so that even a small demo contains them
ODD_IMPROVISED = {3: ("Ses03M_impro05a", "Ses03M_impro05b", "Ses03M_impro08a", "Ses03M_impro08b")}
ODD_SCRIPTED = {5: ("Ses05M_script01_1b",)}
SCRIPTS = ((1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (3, 1), (3, 2))

# ----------------------------------------------------------------------------- the emotions

#: how often each emotion is the true one: the four classes about balanced once Excited
#: is merged into Happiness, plus the frustration and rarer categories the label stage drops
EMOTION_WEIGHTS = {
    "neu": 0.22,
    "ang": 0.17,
    "sad": 0.17,
    "hap": 0.10,
    "exc": 0.10,
    "fru": 0.14,
    "sur": 0.04,
    "fea": 0.03,
    "dis": 0.02,
    "oth": 0.01,
}
#: what a rater who does not pick the true category picks instead (mostly the first)
CONFUSIONS = {
    "neu": ("fru", "sad", "exc", "oth"),
    "fru": ("ang", "neu", "oth", "sad"),
    "ang": ("fru", "dis", "neu"),
    "sad": ("neu", "fru", "fea"),
    "hap": ("exc", "neu", "sur"),
    "exc": ("hap", "sur", "neu"),
    "sur": ("exc", "hap", "fea"),
    "fea": ("sad", "sur", "fru"),
    "dis": ("ang", "fru", "oth"),
    "oth": ("neu", "fru", "sur"),
}
#: audio arousal: -1 (sad: low, slow, quiet) .. +1 (angry/excited: high, fast, loud)
AROUSAL = {
    "ang": 1.0,
    "exc": 1.0,
    "hap": 0.85,
    "sur": 0.9,
    "fea": 0.6,
    "fru": 0.5,
    "dis": 0.3,
    "oth": 0.1,
    "neu": 0.0,
    "sad": -1.0,
}
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
#: mean valence, activation, dominance (1..5) the dimensional raters give
VAD_MEANS = {
    "neu": (3.0, 2.6, 2.8),
    "fru": (2.0, 3.2, 3.1),
    "ang": (1.8, 3.9, 3.9),
    "sad": (2.1, 2.2, 2.1),
    "hap": (4.0, 3.2, 3.1),
    "exc": (3.9, 3.8, 3.3),
    "sur": (3.4, 3.8, 2.8),
    "fea": (2.0, 3.6, 2.0),
    "dis": (1.9, 3.1, 3.3),
    "oth": (2.9, 2.9, 2.9),
}
COMMENTS = ("curious", "disbelief", "sarcastic", "mild", "tired", "attitude", "raised voice",
            "laughing", "annoyed", "bored")
WORDS = ("yeah", "well", "I", "you", "know", "what", "just", "can't", "believe", "this", "okay",
         "so", "really", "the", "flight", "job", "we", "it's", "fine", "no", "look", "maybe",
         "tomorrow", "again", "sorry", "right", "now", "please", "that", "was")

# ----------------------------------------------------------------------------- speakers
#: LFW-subset faces (skimage.data.lfw_subset indices) per session, vetted for the LBP
#: frontal-face cascade with every expression cue drawn on them
FEMALE_FACES = (31, 46, 57, 75, 99)
MALE_FACES = (3, 7, 15, 41, 73)

# purposes mixed into the seeds, so each kind of draw has its own stream
_SPEAKER, _DIALOG, _UTTERANCE, _AUDIO, _VIDEO, _SESSION, _SIDECAR = range(7)


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


# ----------------------------------------------------------------------------- records


@dataclasses.dataclass(frozen=True)
class Speaker:
    """One actor: voice and face."""

    session: int
    letter: str  # "F" or "M": the gender
    f0: float  # mean pitch of a neutral utterance, Hz
    formant_scale: float  # vocal tract: multiplies all formant frequencies
    face_index: int  # into skimage.data.lfw_subset()
    face_px: int
    tint: tuple[float, float, float]  # B, G, R multipliers of the gray face


@dataclasses.dataclass(frozen=True)
class Rating:
    """One ``C-`` line: rater id (``E2``, ``F1``), category words as written, comment."""

    rater: str
    words: tuple[str, ...]
    comment: str = ""

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(WORD_CODES[w] for w in self.words)


@dataclasses.dataclass(frozen=True)
class Attribute:
    """One ``A-`` line: valence, activation, dominance (None: the line has no ``dom``)."""

    rater: str
    val: int
    act: int
    dom: int | None
    comment: str = ""


@dataclasses.dataclass(frozen=True)
class Utterance:
    uid: str
    speaker: str  # "F" or "M"
    start: float  # seconds within the dialog, 4 decimals
    end: float
    emotion: str  # the true emotion: drives votes, voice and face
    code: str  # summary code written in the EmoEvaluation file
    ratings: tuple[Rating, ...]
    attributes: tuple[Attribute, ...]
    arousal: float  # effective audio arousal (cue plus per-utterance variation)
    face_intensity: float  # 0..1 multiplier of the face cue's weights
    text: str

    @property
    def n_samples(self) -> int:
        return int(round((self.end - self.start) * SAMPLE_RATE))

    @property
    def vad(self) -> tuple[float, float, float]:
        """Mean valence, activation, dominance of the external dimensional raters."""
        ext = [a for a in self.attributes if a.rater.startswith("E")]
        doms = [a.dom for a in ext if a.dom is not None]
        return (
            float(np.mean([a.val for a in ext])),
            float(np.mean([a.act for a in ext])),
            float(np.mean(doms)) if doms else 0.0,
        )


@dataclasses.dataclass(frozen=True)
class Dialog:
    name: str
    session: int
    improvised: bool
    letter: str  # the mocap actor, shown in the LEFT view
    utterances: tuple[Utterance, ...]
    seconds: float  # length of the dialog's audio and video
    sidecars: bool  # write ``._`` files beside this dialog's files

    @property
    def other(self) -> str:
        return "M" if self.letter == "F" else "F"


# ----------------------------------------------------------------------------- names


def improvised_names(session: int) -> list[str]:
    """Improvised dialog names of a session, odd ones (``Ses03M_impro05a``) first."""
    odd = ODD_IMPROVISED.get(session, ())
    regular = [f"Ses0{session}{letter}_impro{n:02d}" for n in range(1, 9) for letter in "FM"]
    regular = [n for n in regular if not any(o.startswith(n) for o in odd)]
    return [*odd, *regular]


def scripted_names(session: int) -> list[str]:
    """Scripted dialog names of a session, odd ones (``Ses05M_script01_1b``) first."""
    regular = [f"Ses0{session}{letter}_script{a:02d}_{b}" for a, b in SCRIPTS for letter in "FM"]
    return [*ODD_SCRIPTED.get(session, ()), *regular]


def dialog_names(cfg: DemoConfig) -> list[str]:
    """The dialogs `write_demo_corpus` writes, in writing order."""
    return [d[0] for d in _dialog_slots(cfg)]


def _dialog_slots(cfg: DemoConfig) -> list[tuple[str, int, bool, int]]:
    """(name, session, improvised, index in its candidate list) per dialog to write."""
    slots = []
    for s in sorted(cfg.sessions):
        for i, name in enumerate(improvised_names(s)[: cfg.improvised_per_session]):
            slots.append((name, s, True, i))
        for i, name in enumerate(scripted_names(s)[: cfg.scripted_per_session]):
            slots.append((name, s, False, i))
    return slots


# ----------------------------------------------------------------------------- planning


def _rng(cfg: DemoConfig, *key: int) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, *key])


def plan_speakers(cfg: DemoConfig, session: int) -> dict[str, Speaker]:
    """The female and the male actor of a session."""
    out = {}
    for g, letter in enumerate("FM"):
        rng = _rng(cfg, _SPEAKER, session, g)
        if letter == "F":
            f0 = rng.uniform(200, 240)
            tint = (0.80, 0.92, 1.12)  # B, G, R: warm
            face = FEMALE_FACES[session - 1]
        else:
            f0 = rng.uniform(100, 130)
            tint = (1.12, 0.95, 0.82)  # cool
            face = MALE_FACES[session - 1]
        tint = tuple(float(t + d) for t, d in zip(tint, rng.uniform(-0.07, 0.07, 3)))
        out[letter] = Speaker(
            session=session,
            letter=letter,
            f0=float(f0),
            formant_scale=float(rng.uniform(1.08, 1.18) if letter == "F" else rng.uniform(0.92, 1.0)),
            face_index=face,
            face_px=int(np.clip(cfg.face_px + rng.integers(-10, 11), 60, 220)),
            tint=tint,  # type: ignore[arg-type]
        )
    return out


def _draw_ratings(rng: np.random.Generator, emotion: str, cfg: DemoConfig, pool: list[int],
                  speaker: str, self_number: int) -> tuple[list[Rating], str]:
    """Three external ratings (and maybe a self rating) and the summary code they imply."""
    raters = sorted(rng.choice(pool, size=3, replace=False).tolist())
    for _ in range(50):  # redraw the rare 2-2 split that multi-category lists can make
        ext = []
        for r in raters:
            if rng.random() < cfg.rater_noise:
                alts = CONFUSIONS[emotion]
                first = alts[0] if rng.random() < 0.5 else alts[int(rng.integers(len(alts)))]
            else:
                first = emotion
            codes = [first]
            if rng.random() < cfg.multi_category:
                extra = CONFUSIONS[first][int(rng.integers(len(CONFUSIONS[first])))]
                codes.append(extra)
            if rng.random() < 0.01:  # an external rater who ticked nothing
                codes = []
            ext.append((r, codes))
        code = summary_code([c for _, c in ext])
        if code is not None:
            break
    else:  # pragma: no cover - 50 ambiguous draws in a row do not happen at sane settings
        ext = [(r, [emotion]) for r in raters]
        code = emotion
    ratings = [Rating(f"E{r}", tuple(_word(rng, c) for c in codes), _comment(rng)) for r, codes in ext]
    if rng.random() < 0.65:  # the speaking actor rated this utterance too
        alts = CONFUSIONS[emotion]
        own = emotion if rng.random() < 0.7 else alts[int(rng.integers(len(alts)))]
        codes = [own]
        if rng.random() < 0.2:
            codes.append("oth" if own != "oth" else "neu")
        if rng.random() < 0.08:
            codes = []
        words = tuple(_word(rng, c) for c in codes)
        ratings.append(Rating(f"{speaker}{self_number}", words, _comment(rng, 0.3)))
    return ratings, code


def summary_code(votes: list[list[str]]) -> str | None:
    """The code listed by at least two raters, ``xxx`` if none; None if two codes are."""
    counts = Counter(c for codes in votes for c in dict.fromkeys(codes))
    top = sorted(c for c, n in counts.items() if n >= 2)
    if not top:
        return "xxx"
    return top[0] if len(top) == 1 else None


def _word(rng: np.random.Generator, code: str) -> str:
    if code == "neu" and rng.random() < 0.25:
        return "Neutral state"
    return CATEGORY_WORDS[code]


def _comment(rng: np.random.Generator, p: float = 0.12) -> str:
    return COMMENTS[int(rng.integers(len(COMMENTS)))] if rng.random() < p else ""


def _draw_attributes(rng: np.random.Generator, emotion: str, raters: list[int], self_rater: str | None
                     ) -> list[Attribute]:
    out = []
    ids = [f"E{r}" for r in raters] + ([self_rater] if self_rater else [])
    no_dom = int(rng.integers(len(raters))) if rng.random() < 0.06 else -1  # never all externals
    for i, rater in enumerate(ids):
        v, a, d = (int(np.clip(round(m + rng.normal(0, 0.6)), 1, 5)) for m in VAD_MEANS[emotion])
        out.append(Attribute(rater, v, a, None if i == no_dom else d, _comment(rng, 0.08)))
    return out


def plan_dialog(cfg: DemoConfig, name: str, session: int, improvised: bool, index: int) -> Dialog:
    """Timing, speakers, true emotions and ratings of one dialog."""
    kind = 0 if improvised else 1
    rng = _rng(cfg, _DIALOG, session, kind, index)
    letter = name[5]  # names are generated here, so the position is known
    pool = sorted(rng.choice(np.arange(1, 7), size=4, replace=False).tolist())  # this dialog's raters
    self_numbers = {"F": int(rng.integers(1, 3)), "M": int(rng.integers(1, 3))}
    emotions = list(EMOTION_WEIGHTS)
    weights = np.array([EMOTION_WEIGHTS[e] for e in emotions])
    speaker = "F" if rng.random() < 0.5 else "M"
    counters = {"F": 0, "M": 0}
    t = rng.uniform(0.3, 1.0)
    utterances = []
    for k in range(cfg.utterances_per_dialog):
        urng = _rng(cfg, _UTTERANCE, session, kind, index, k)
        if k > 0 and urng.random() < 0.85:  # turns mostly alternate
            speaker = "M" if speaker == "F" else "F"
        uid = f"{name}_{speaker}{counters[speaker]:03d}"
        counters[speaker] += 1
        start = round(t, 4)
        end = round(start + urng.uniform(cfg.min_seconds, cfg.max_seconds), 4)
        t = end + urng.uniform(cfg.min_gap_seconds, cfg.max_gap_seconds)
        emotion = emotions[int(urng.choice(len(emotions), p=weights / weights.sum()))]
        ratings, code = _draw_ratings(urng, emotion, cfg, pool, speaker, self_numbers[speaker])
        self_rater = next((r.rater for r in ratings if not r.rater.startswith("E")), None)
        ext = sorted(int(r.rater[1:]) for r in ratings if r.rater.startswith("E"))
        a_raters = sorted(urng.choice(ext, size=2, replace=False).tolist())
        attributes = _draw_attributes(urng, emotion, a_raters, self_rater)
        utterances.append(
            Utterance(
                uid=uid,
                speaker=speaker,
                start=start,
                end=end,
                emotion=emotion,
                code=code,
                ratings=tuple(ratings),
                attributes=tuple(attributes),
                arousal=float(cfg.audio_cue * AROUSAL[emotion] + urng.normal(0, 0.25)),
                face_intensity=float(cfg.face_cue * urng.uniform(0.6, 1.0)),
                text=_sentence(urng),
            )
        )
    seconds = t + rng.uniform(0.4, 1.0)
    return Dialog(name, session, improvised, letter, tuple(utterances), float(seconds),
                  sidecars=index == 0 and (improvised or cfg.improvised_per_session == 0))


def _sentence(rng: np.random.Generator) -> str:
    words = rng.integers(len(WORDS), size=int(rng.integers(2, 9)))
    return " ".join(WORDS[i] for i in words).capitalize() + "."


def plan_corpus(cfg: DemoConfig) -> list[Dialog]:
    """Every dialog the config asks for, planned (no files written)."""
    return [plan_dialog(cfg, name, s, impro, i) for name, s, impro, i in _dialog_slots(cfg)]


# ----------------------------------------------------------------------------- text files

HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]"


def emo_evaluation_text(dialog: Dialog) -> str:
    """The dialog's ``EmoEvaluation/<dialog>.txt``, byte for byte (LF, TABs)."""
    blocks = []
    for u in dialog.utterances:
        v, a, d = u.vad
        lines = [f"[{u.start:.4f} - {u.end:.4f}]\t{u.uid}\t{u.code}\t[{v:.4f}, {a:.4f}, {d:.4f}]"]
        for r in u.ratings:
            cats = "".join(f"{w}; " for w in r.words).rstrip() or ";"
            lines.append(f"C-{r.rater}:\t{cats}\t({r.comment})")
        for at in u.attributes:
            dims = f"val {at.val}; act {at.act};" + (f" dom  {at.dom};" if at.dom is not None else "")
            lines.append(f"A-{at.rater}:\t{dims}\t({at.comment})")
        blocks.append("\n".join(lines) + "\n")
    return HEADER + "\n\n" + "\n".join(blocks) + "\n"


def transcription_text(dialog: Dialog) -> str:
    return "".join(f"{u.uid} [{u.start:08.4f}-{u.end:08.4f}]: {u.text}\n" for u in dialog.utterances)


def _ignored_files(dialog: Dialog) -> dict[str, str]:
    """Small files in the EmoEvaluation subfolders a parser must not read as labels."""
    ext = sorted({r.rater for u in dialog.utterances for r in u.ratings if r.rater.startswith("E")})
    cat = "".join(
        f"{u.uid} :{''.join(w + '; ' for w in r.words).rstrip() or ';'} ({r.comment})\n"
        for u in dialog.utterances for r in u.ratings if r.rater == ext[0]
    )
    atr = "".join(
        f"{u.uid} :act {a.act}; val {a.val}; dom {a.dom or 3}; ({a.comment})\n"
        for u in dialog.utterances for a in u.attributes[:1]
    )
    own = "".join(
        f"{u.uid} :{''.join(w + '; ' for w in r.words).rstrip() or ';'} ({r.comment})\n"
        for u in dialog.utterances for r in u.ratings if not r.rater.startswith("E")
    )
    return {
        f"Categorical/{dialog.name}_{ext[0].lower()}_cat.txt": cat,
        f"Attribute/{dialog.name}_{ext[0].lower()}_atr.txt": atr,
        f"Self-evaluation/{dialog.name}.txt": own or "\n",
    }


README = """IEMOCAP_full_release: GENERATED DEMO CORPUS

This is NOT the IEMOCAP corpus. It was generated by avemotion.demo (the `demo` stage of
this project) so that the pipeline runs end to end where the licensed corpus is absent.
It copies IEMOCAP's layout and file formats; its voices are synthetic, its faces come
from scikit-image's LFW subset, and its labels were drawn at random.

Sessions: {sessions}
Dialogs: {dialogs} ({improvised} improvised, {scripted} scripted)
Utterances: {utterances}
Seed: {seed}
"""


# ----------------------------------------------------------------------------- audio


def _resonators(formants: list[tuple[float, float]]) -> np.ndarray:
    """Second-order sections of a cascade of formant resonators (frequency, bandwidth Hz)."""
    sos = []
    for f, bw in formants:
        r = math.exp(-math.pi * bw / SAMPLE_RATE)
        c = 2 * r * math.cos(2 * math.pi * f / SAMPLE_RATE)
        sos.append([1 - r, 0.0, 0.0, 1.0, -c, r * r])
    return np.array(sos)


VOWELS = (  # (F1, F2, F3) of a male voice, Hz; scaled per speaker
    (730, 1090, 2440),  # a
    (270, 2290, 3010),  # i
    (530, 1840, 2480),  # e
    (300, 870, 2240),  # u
)


def synth_voice(rng: np.random.Generator, n: int, speaker: Speaker, arousal: float) -> np.ndarray:
    """``n`` samples of a voiced utterance, float32 in [-1, 1].

    Arousal (about -1.3 .. 1.3) raises pitch (2.5 semitones per unit), widens the pitch range,
    speeds up the syllable rate and raises the level, as an aroused voice does.
    """
    fs = SAMPLE_RATE
    level_db = -22.0 + 6.0 * arousal  # RMS of the voiced part, dBFS
    f0_level = speaker.f0 * 2 ** (2.5 * arousal / 12)
    range_st = 2.0 * 2 ** (0.8 * arousal)
    rate = 4.5 * 2 ** (0.45 * arousal)  # syllables per second
    # syllables: voiced bumps with short breaks, a longer pause every few syllables
    env = np.zeros(n, np.float32)
    vowel_of = np.zeros(n, np.int8)
    knots_t, knots_v = [0], [rng.normal(0, range_st)]
    t = int(rng.uniform(0.03, 0.12) * fs)
    end = n - int(0.05 * fs)
    until_pause = int(rng.integers(3, 7))
    while t < end:
        dur = int(fs / rate * rng.uniform(0.6, 1.4))
        voiced = min(int(dur * rng.uniform(0.55, 0.8)), end - t)
        if voiced > 16:
            env[t : t + voiced] = np.hanning(voiced) ** 0.7
            vowel_of[t : t + voiced] = rng.integers(len(VOWELS))
            knots_t.append(t + voiced // 2)
            knots_v.append(rng.normal(0, range_st))
        t += dur
        until_pause -= 1
        if until_pause == 0:
            t += int(rng.uniform(0.1, 0.3) * fs)
            until_pause = int(rng.integers(3, 7))
    knots_t.append(n - 1)
    knots_v.append(rng.normal(0, range_st))
    st = np.interp(np.arange(n), knots_t, knots_v)
    st += np.linspace(range_st / 2, -range_st / 2, n)  # declination
    st = _moving_average(st, int(0.06 * fs))
    f0 = f0_level * 2 ** (st / 12) * (1 + 0.004 * np.sin(2 * np.pi * 5.5 * np.arange(n) / fs))
    phase = 2 * np.pi * np.cumsum(f0) / fs
    # sum of sin(k * phase) / k up to 3.8 kHz, by the recurrence
    # sin(k x) = 2 cos(x) sin((k - 1) x) - sin((k - 2) x): one sin and cos, then products
    harmonics = max(1, int(3800 / f0.max()))
    two_cos = 2 * np.cos(phase)
    prev, cur = np.zeros(n), np.sin(phase)
    source = cur.copy()
    for k in range(2, harmonics + 1):
        prev, cur = cur, two_cos * cur - prev
        source += cur / k
    source += 0.05 * rng.normal(size=n)  # breath
    out = np.zeros(n)
    for v, formants in enumerate(VOWELS):
        mask = vowel_of == v
        if mask.any():
            sos = _resonators([(f * speaker.formant_scale, 80 + 0.06 * f) for f in formants])
            out[mask] = sosfilt(sos, source)[mask]
    out *= env
    voiced = env > 0.1
    rms = math.sqrt(float(np.mean(out[voiced] ** 2))) if voiced.any() else 1.0
    out *= 10 ** (level_db / 20) / max(rms, 1e-9)
    out += 10 ** (-62 / 20) * rng.normal(size=n)  # room noise
    return np.clip(out, -1, 1).astype(np.float32)


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average of ``x`` over ``width`` samples (edges averaged over fewer)."""
    if width < 2:
        return x
    c = np.concatenate([[0.0], np.cumsum(x)])
    i = np.arange(len(x))
    lo = np.clip(i - width // 2, 0, len(x))
    hi = np.clip(i - width // 2 + width, 0, len(x))
    return (c[hi] - c[lo]) / (hi - lo)


def to_pcm16(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)


# ----------------------------------------------------------------------------- video


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
    rng = _rng(cfg, _VIDEO, dialog.session, 0 if dialog.improvised else 1, _slot_index(dialog))
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
    srng = _rng(cfg, _SESSION, dialog.session)
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


def _slot_index(dialog: Dialog) -> int:
    names = improvised_names(dialog.session) if dialog.improvised else scripted_names(dialog.session)
    return names.index(dialog.name)


# ----------------------------------------------------------------------------- writing


def _sidecar_bytes(rng: np.random.Generator) -> bytes:
    """An AppleDouble-looking ``._`` file: magic, version, then garbage."""
    return b"\x00\x05\x16\x07\x00\x02\x00\x00" + rng.integers(0, 256, int(rng.integers(64, 512)),
                                                            dtype=np.uint8).tobytes()


def write_dialog(root: Path, dialog: Dialog, cfg: DemoConfig) -> dict[str, Any]:
    """Write every file of one dialog under ``root``; returns its counts."""
    speakers = plan_speakers(cfg, dialog.session)
    ses = root / f"Session{dialog.session}"
    emo = ses / "dialog" / "EmoEvaluation"
    utt_dir = ses / "sentences" / "wav" / dialog.name
    for d in (emo / "Categorical", emo / "Attribute", emo / "Self-evaluation", utt_dir,
              ses / "dialog" / "wav", ses / "dialog" / "avi" / "DivX", ses / "dialog" / "transcriptions"):
        d.mkdir(parents=True, exist_ok=True)
    _write(emo / f"{dialog.name}.txt", emo_evaluation_text(dialog))
    _write(ses / "dialog" / "transcriptions" / f"{dialog.name}.txt", transcription_text(dialog))
    for rel, text in _ignored_files(dialog).items():
        _write(emo / rel, text)

    slot = _slot_index(dialog)
    kind = 0 if dialog.improvised else 1
    total = int(round(dialog.seconds * SAMPLE_RATE))
    stereo = np.zeros((total, 2), np.int16)  # channel 0: dialog-letter actor, 1: the other
    for k, u in enumerate(dialog.utterances):
        rng = _rng(cfg, _AUDIO, dialog.session, kind, slot, k)
        pcm = to_pcm16(synth_voice(rng, u.n_samples, speakers[u.speaker], u.arousal))
        sf.write(utt_dir / f"{u.uid}.wav", pcm, SAMPLE_RATE, subtype="PCM_16")
        at = int(round(u.start * SAMPLE_RATE))
        stereo[at : at + len(pcm), 0 if u.speaker == dialog.letter else 1] = pcm[: max(0, total - at)]
    sf.write(ses / "dialog" / "wav" / f"{dialog.name}.wav", stereo, SAMPLE_RATE, subtype="PCM_16")
    frames = render_video(ses / "dialog" / "avi" / "DivX" / f"{dialog.name}.avi", dialog, speakers, cfg)

    sidecars = 0
    if dialog.sidecars:
        rng = _rng(cfg, _SIDECAR, dialog.session, kind)
        first = dialog.utterances[0].uid
        for path in (
            emo / f"._{dialog.name}.txt",
            utt_dir / f"._{first}.wav",
            ses / "sentences" / "wav" / f"._{dialog.name}",
            ses / "dialog" / "wav" / f"._{dialog.name}.wav",
            ses / "dialog" / "avi" / "DivX" / f"._{dialog.name}.avi",
        ):
            path.write_bytes(_sidecar_bytes(rng))
            sidecars += 1
    return _dialog_counts(dialog, frames, sidecars)


def _write(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)


def _dialog_counts(dialog: Dialog, frames: int, sidecars: int) -> dict[str, Any]:
    ratings = [r for u in dialog.utterances for r in u.ratings]
    return {
        "dialog": dialog.name,
        "session": dialog.session,
        "improvised": dialog.improvised,
        "utterances": len(dialog.utterances),
        "codes": Counter(u.code for u in dialog.utterances),
        "emotions": Counter(u.emotion for u in dialog.utterances),
        "frames": frames,
        "seconds": sum(u.end - u.start for u in dialog.utterances),
        "sidecars": sidecars,
        "multi_category_ratings": sum(len(r.words) > 1 for r in ratings),
        "empty_ratings": sum(not r.words for r in ratings),
        "neutral_state_words": sum(w == "Neutral state" for r in ratings for w in r.words),
        "attributes_without_dom": sum(a.dom is None for u in dialog.utterances for a in u.attributes),
        "speaker_not_dialog_letter": sum(u.speaker != dialog.letter for u in dialog.utterances),
    }


FOUR_CLASS = ("neu", "ang", "sad", "hap", "exc")


def _summarize(cfg: DemoConfig, counts: list[dict[str, Any]]) -> dict[str, Any]:
    codes: Counter = Counter()
    impro_codes: Counter = Counter()
    emotions: Counter = Counter()
    per_session: Counter = Counter()
    for c in counts:
        codes.update(c["codes"])
        emotions.update(c["emotions"])
        per_session[f"Session{c['session']}"] += c["utterances"]
        if c["improvised"]:
            impro_codes.update(c["codes"])
    names = [c["dialog"] for c in counts]
    summed = ("frames", "sidecars", "multi_category_ratings", "empty_ratings", "neutral_state_words",
              "attributes_without_dom", "speaker_not_dialog_letter")
    return {
        "sessions": len(cfg.sessions),
        "dialogs": len(counts),
        "improvised_dialogs": sum(c["improvised"] for c in counts),
        "scripted_dialogs": sum(not c["improvised"] for c in counts),
        "utterances": sum(c["utterances"] for c in counts),
        "improvised_utterances": sum(c["utterances"] for c in counts if c["improvised"]),
        "utterances_per_session": dict(sorted(per_session.items())),
        "codes": dict(sorted(codes.items())),
        "improvised_codes": dict(sorted(impro_codes.items())),
        "true_emotions": dict(sorted(emotions.items())),
        "four_class_improvised": sum(impro_codes[c] for c in FOUR_CLASS),
        "four_class_all": sum(codes[c] for c in FOUR_CLASS),
        "odd_names": [n for n in names if n.endswith(("a", "b"))],
        "speech_seconds": round(sum(c["seconds"] for c in counts), 4),
        **{k: sum(c[k] for c in counts) for k in summed},
    }


def _write_dialog_job(args: tuple[str, Dialog, DemoConfig]) -> dict[str, Any]:
    root, dialog, cfg = args
    cv2.setNumThreads(1)
    return write_dialog(Path(root), dialog, cfg)


def _workers(cfg: DemoConfig, jobs: int) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(jobs, cfg.workers or cores))


def _write_tree(tmp: Path, cfg: DemoConfig, progress: Callable[[str], None] | None) -> dict[str, Any]:
    dialogs = plan_corpus(cfg)
    workers = _workers(cfg, len(dialogs))
    log.info("writing %d dialogs to %s with %d worker(s)", len(dialogs), tmp, workers)
    counts = []
    if workers == 1:
        results: Iterator[dict[str, Any]] = (write_dialog(tmp, d, cfg) for d in dialogs)
        for c in results:
            counts.append(c)
            if progress:
                progress(c["dialog"])
    else:
        # spawn, not fork: a forked child can inherit a lock held by another thread
        # (OpenCV's, BLAS's) and hang
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=spawn) as pool:
            for c in pool.map(_write_dialog_job, [(str(tmp), d, cfg) for d in dialogs]):
                counts.append(c)
                if progress:
                    progress(c["dialog"])
    summary = _summarize(cfg, counts)
    doc = tmp / "Documentation"
    doc.mkdir()
    _write(doc / "README.txt", README.format(
        sessions=", ".join(f"Session{s}" for s in sorted(cfg.sessions)), dialogs=summary["dialogs"],
        improvised=summary["improvised_dialogs"], scripted=summary["scripted_dialogs"],
        utterances=summary["utterances"], seed=cfg.seed))
    return summary


def write_demo_corpus(root: Path, cfg: DemoConfig, progress: Callable[[str], None] | None = None
                      ) -> dict[str, Any]:
    """Write the demo corpus to ``root`` (an ``IEMOCAP_full_release`` folder); return counts.

    The tree is built in a temporary sibling (``<root>.tmp``) and renamed into place,
    replacing any old tree, so a killed run never leaves a half corpus that looks whole.
    ``progress`` is called with each dialog's name once its files are written.
    With ``cfg.workers`` other than 1 the dialogs are written by spawned processes, so a
    calling script needs the usual ``if __name__ == "__main__":`` guard.
    """
    cfg.validate()
    root = Path(root)
    tmp = root.with_name(root.name + ".tmp")
    old = root.with_name(root.name + ".old")
    for stale in (tmp, old):
        if stale.exists():
            shutil.rmtree(stale)
    tmp.mkdir(parents=True)
    try:
        summary = _write_tree(tmp, cfg, progress)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if root.exists():
        root.rename(old)
    tmp.rename(root)
    if old.exists():
        shutil.rmtree(old)
    log.info("demo corpus: %d dialogs, %d utterances", summary["dialogs"], summary["utterances"])
    return summary
