"""Utterance audio: the wav check and the fixed-length int16 waveform the network reads.

The audio stream takes exactly ``audio.seconds`` of raw 16 kHz audio (paper: 6 s = 96,000
samples). Longer utterances are cropped to their FIRST ``audio.seconds`` (the frames are
taken from the same span, see video.py, so audio steps and frames line up); shorter ones
are zero-padded at the end. The number of real samples is returned beside the waveform
so the model can mask the padding. Samples stay int16 (as on disk); normalisation is the
model's business.

Nothing is ever resampled: a wav at another rate, with more than one channel or not in
16-bit PCM is refused with an error that names the file.

    >>> x, n = load_fixed("Ses01F_impro01_F000.wav", seconds=6.0)   # doctest: +SKIP
    >>> x.dtype, x.shape, n                                          # doctest: +SKIP
    (dtype('int16'), (96000,), 31131)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import soundfile as sf

from .corpus import SAMPLE_RATE, WAV_SUBTYPE

#: What the network's audio stream is built for (IEMOCAP's sentence wavs); `extract`
#: already rejects any other format, this is the reader's own guard.
SUBTYPE = WAV_SUBTYPE


@dataclasses.dataclass(frozen=True)
class AudioConfig:
    """Params section ``audio`` (the sample rate is fixed at 16 kHz and checked, not configured)."""

    seconds: float = 6.0  # fixed utterance length fed to the network

    def validate(self, where: str) -> None:
        from .config import ParamsError

        if not self.seconds > 0:
            raise ParamsError(f"params: '{where}.seconds' must be > 0, got {self.seconds}")

    def samples(self, sample_rate: int = SAMPLE_RATE) -> int:
        return n_samples_fixed(self.seconds, sample_rate)


class AudioFormatError(ValueError):
    """A wav the pipeline refuses to read (wrong rate, channels or sample format)."""


def n_samples_fixed(seconds: float, sample_rate: int = SAMPLE_RATE) -> int:
    return int(round(seconds * sample_rate))


def check(path: str | Path, sample_rate: int = SAMPLE_RATE):
    """The header of `path` if it is a mono 16-bit PCM wav at `sample_rate`; else raise.

    Raises FileNotFoundError for a missing file and AudioFormatError for a wrong one.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise AudioFormatError(f"{path}: not a readable sound file ({exc})") from None
    if info.samplerate != sample_rate:
        raise AudioFormatError(
            f"{path}: {info.samplerate} Hz, expected {sample_rate} Hz; the pipeline never "
            "resamples silently, resample the file first"
        )
    if info.channels != 1:
        raise AudioFormatError(f"{path}: {info.channels} channels, expected mono")
    if info.subtype != SUBTYPE:
        raise AudioFormatError(f"{path}: sample format {info.subtype}, expected {SUBTYPE} (16-bit PCM)")
    return info


def fix_length(samples: np.ndarray, length: int) -> tuple[np.ndarray, int]:
    """Crop `samples` (S,) to its first `length` samples or zero-pad it at the end.

    Returns (fixed (length,), number of real samples in it).
    """
    real = min(len(samples), length)
    out = np.zeros(length, dtype=samples.dtype)  # (length,)
    out[:real] = samples[:real]
    return out, real


def load_fixed(path: str | Path, seconds: float, sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, int]:
    """The first `seconds` of a wav as int16 (round(seconds * sample_rate),), zero-padded.

    Returns (samples, true length): the number of real (not padding) samples, at most
    the fixed length. Raises FileNotFoundError or AudioFormatError (a ValueError) naming
    the file when it is missing or not 16 kHz mono 16-bit PCM.
    """
    check(path, sample_rate)
    length = n_samples_fixed(seconds, sample_rate)
    # read no more than needed: long utterances (up to 34 s) are cropped anyway
    samples, _ = sf.read(str(path), frames=length, dtype="int16", always_2d=False)  # (<=length,)
    return fix_length(samples, length)
