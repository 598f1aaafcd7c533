"""Utterance wavs: the header check (rate, channels, format, length against the label range)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import soundfile as sf

#: The only sample rate the network's audio stream is built for. Checked, never configured.
SAMPLE_RATE = 16000
#: The only sample format read (soundfile's name for 16-bit PCM), as IEMOCAP ships it.
WAV_SUBTYPE = "PCM_16"
#: A wav shorter than its label range by more than this many seconds, or this fraction
#: of the range if that is more, is rejected as truncated (see wav_shortfall_tolerance).
WAV_SHORT_TOLERANCE_S = 0.25
WAV_SHORT_TOLERANCE_FRACTION = 0.05


@dataclasses.dataclass(frozen=True)
class WavInfo:
    frames: int
    sample_rate: int
    channels: int
    subtype: str

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


def wav_shortfall_tolerance(label_seconds: float) -> float:
    """How much shorter than its label range a wav may be before it counts as truncated.

    IEMOCAP's sentence wavs are cut at the label range, so their length equals
    ``end - start`` to a few milliseconds. The tolerance (WAV_SHORT_TOLERANCE_S, or
    WAV_SHORT_TOLERANCE_FRACTION of the range if that is more) leaves room for rounding
    and for a copy that trimmed a little silence, and still catches a file cut short by
    an interrupted copy (a third of a 2.66 s utterance is 1.77 s short).
    """
    return max(WAV_SHORT_TOLERANCE_S, WAV_SHORT_TOLERANCE_FRACTION * label_seconds)


def check_wav(
    path: Path, shown: str | None = None, label_seconds: float | None = None
) -> tuple[WavInfo | None, tuple[str, str] | None]:
    """Header check of one utterance wav: (info, None) if usable, else (info?, (reason, detail)).

    Usable means: readable, 16 kHz, mono, 16-bit PCM (what the shard stage reads), not
    empty, and, given `label_seconds` (the label range ``end - start``), not clearly
    shorter than it (see `wav_shortfall_tolerance`). `shown` is the name used in
    messages (the path relative to the corpus root, so that reject files do not depend
    on where the corpus is mounted).
    """
    shown = shown or str(path)
    if not path.is_file():
        return None, ("wav_missing", f"{shown}: file not found")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises LibsndfileError/RuntimeError for bad files
        return None, ("wav_unreadable", f"{shown}: {str(exc).replace(str(path), shown)}")
    w = WavInfo(info.frames, info.samplerate, info.channels, info.subtype)
    if w.frames <= 0:
        return w, ("wav_empty", f"{shown}: no samples")
    if w.sample_rate != SAMPLE_RATE:
        return w, (
            "wav_rate",
            f"{shown}: {w.sample_rate} Hz, expected {SAMPLE_RATE} Hz (IEMOCAP sentence wavs are "
            "16 kHz; resample the file, the pipeline never resamples silently)",
        )
    if w.channels != 1:
        return w, ("wav_channels", f"{shown}: {w.channels} channels, expected mono")
    if w.subtype != WAV_SUBTYPE:
        return w, (
            "wav_format",
            f"{shown}: sample format {w.subtype}, expected {WAV_SUBTYPE} (16-bit PCM, as IEMOCAP's "
            "sentence wavs are); convert the file, the pipeline never converts silently",
        )
    if label_seconds is not None and w.seconds < label_seconds - wav_shortfall_tolerance(label_seconds):
        return w, (
            "wav_truncated",
            f"{shown}: {w.seconds:.3f} s of audio ({w.frames} samples) for a label range of "
            f"{label_seconds:.3f} s; the file looks cut short (an interrupted copy?): restore it "
            "from the original corpus",
        )
    return w, None
