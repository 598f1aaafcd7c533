"""Planning: speakers, dialogs, utterances, true emotions and ratings, drawn from seeded generators."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np

from .config import DemoConfig
from .layout import CATEGORY_WORDS, SAMPLE_RATE, WORD_CODES, improvised_names, scripted_names

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

#: purposes mixed into the seeds (`seeded_rng`), so each kind of draw has its own stream
SEED_SPEAKER, SEED_DIALOG, SEED_UTTERANCE, SEED_AUDIO, SEED_VIDEO, SEED_SESSION, SEED_SIDECAR = range(7)


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


def seeded_rng(cfg: DemoConfig, *key: int) -> np.random.Generator:
    """The generator of one draw: ``demo.seed``, a SEED_* purpose, then the item's identity."""
    return np.random.default_rng([cfg.seed, *key])


def plan_speakers(cfg: DemoConfig, session: int) -> dict[str, Speaker]:
    """The female and the male actor of a session."""
    out = {}
    for g, letter in enumerate("FM"):
        rng = seeded_rng(cfg, SEED_SPEAKER, session, g)
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
    rng = seeded_rng(cfg, SEED_DIALOG, session, kind, index)
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
        urng = seeded_rng(cfg, SEED_UTTERANCE, session, kind, index, k)
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


def slot_index(dialog: Dialog) -> int:
    """The dialog's index in its session's list of improvised or scripted names (a seed key)."""
    names = improvised_names(dialog.session) if dialog.improvised else scripted_names(dialog.session)
    return names.index(dialog.name)


def plan_corpus(cfg: DemoConfig) -> list[Dialog]:
    """Every dialog the config asks for, planned (no files written)."""
    return [plan_dialog(cfg, name, s, impro, i) for name, s, impro, i in _dialog_slots(cfg)]
