"""The synthetic voice: pitch, formants, syllables and level, carrying arousal and gender."""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import sosfilt

from .layout import SAMPLE_RATE
from .plan import Speaker


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
