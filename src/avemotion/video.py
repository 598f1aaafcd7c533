"""Dialog videos: reading frames by index, the two camera views, and the time-step grid.

IEMOCAP's ``avi/DivX/<dialog>.avi`` is 720x480 with both actors side by side: the actor
named by the dialog letter (the one wearing markers) on the LEFT, the other on the RIGHT,
black bars above and below. A *view* here is one half of the frame, split at the middle
column, full height (the bars cost nothing but a little padding in a crop).

Alignment of video frames with audio time steps (the model's contract)
----------------------------------------------------------------------
The network cuts the first ``audio.seconds`` of each utterance into
``T = round(audio.seconds * video.fps)`` steps (150 at 6 s and 25 fps: one per 40 ms,
320 samples at 8 kHz after the first pooling). Step ``k`` covers
``[start + k/fps, start + (k+1)/fps)`` seconds of the dialog; its frame is the video frame
shown at the step's centre, ``floor((start + (k + 0.5)/fps) * video_fps)``, with the
video's own frame rate read from the file (IEMOCAP's is about 30 fps, so some video frames
are skipped, never duplicated at 25 fps). Steps that hold real audio are valid:
``n_steps = min(T, ceil(n_samples / sample_rate * fps))``. Frames are stored for the valid
steps only and clipped to the frames the video has; readers pad to ``T`` and mask.
The audio is cropped the same way, from the start of the utterance (see audio.py), so
step ``k`` of the audio and frame ``k`` show the same 40 ms.

    >>> step_frames(start=10.0, steps=3, fps=25.0, video_fps=30.0).tolist()
    [300, 301, 303]
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Iterator, Literal

import cv2
import numpy as np

#: Jumps forward shorter than this are decoded through (grab) instead of seeking: a seek
#: restarts decoding at the previous key frame, which costs as much as a few seconds of
#: sequential decoding. Consecutive utterances of one speaker are usually this close.
SEEK_GAP_S = 4.0

View = Literal["left", "right"]

#: FFmpeg's log line: ``[mpeg4 @ 0x5586cac0bfc0] marker does not match f_code``
FFMPEG_LOG_RE = re.compile(rb"^\[(?P<who>[\w:.-]+) @ (?:0x)?[0-9a-fA-F]+\] ?(?P<msg>.*)$")


@dataclasses.dataclass(frozen=True)
class VideoConfig:
    """Params section ``video``."""

    fps: float = 25.0  # frames (= audio time steps) per second fed to the network

    def validate(self, where: str) -> None:
        from .config import ParamsError

        if not self.fps > 0:
            raise ParamsError(f"params: '{where}.fps' must be > 0, got {self.fps}")


def n_steps_total(seconds: float, fps: float) -> int:
    """T, the number of time steps of a fixed-length utterance."""
    return int(round(seconds * fps))


def n_steps_valid(n_samples: int, sample_rate: int, seconds: float, fps: float) -> int:
    """Time steps that hold real audio (the rest of the T steps are padding)."""
    # the small tolerance keeps an exact multiple (e.g. 2.0 s at 25 fps = 50 steps) from
    # rounding up to 51 through floating point
    steps = math.ceil(n_samples * fps / sample_rate - 1e-9)
    return max(0, min(n_steps_total(seconds, fps), steps))


def step_frames(start: float, steps: int, fps: float, video_fps: float) -> np.ndarray:
    """Video frame index of each time step: the frame shown at the step's centre. (steps,) int64"""
    centres = start + (np.arange(steps) + 0.5) / fps  # (steps,) seconds
    # the epsilon keeps a centre that falls exactly on a frame boundary on the later frame
    return np.floor(centres * video_fps + 1e-6).astype(np.int64)


def view_columns(width: int, view: View) -> tuple[int, int]:
    """Columns [x0, x1) of a camera view in a side-by-side frame."""
    half = width // 2
    if view == "left":
        return 0, half
    if view == "right":
        return half, width
    raise ValueError(f"view must be 'left' or 'right', got {view!r}")


class VideoError(Exception):
    """A video that cannot give the frames asked for; `reason` is a reject reason."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    fps: float
    frame_count: int  # from the container header
    width: int
    height: int

    @property
    def duration(self) -> float:
        return self.frame_count / self.fps


class FrameReader:
    """Frames of one video by increasing index, seeking only where that is cheaper.

    ``shown`` is the name used in error messages (a path relative to the corpus root, so
    reject files do not depend on where the corpus is mounted). Raises VideoError with
    reason ``video_missing`` or ``video_unreadable`` when the file cannot be used at all.

    Damage inside the file: OpenCV gives no per-frame error status, but its FFmpeg
    decoder reports damaged data (at FFmpeg's error level, which OpenCV sets) on the
    process' standard error. While it decodes, the reader points file descriptor 2 at
    a temporary file (`DecoderLog`) and reads back what each frame's decoding wrote; a
    report makes `read` raise VideoError(``video_corrupt``) naming the frame. This
    matters because damage does not stay local: an MPEG-4 stream whose middle is
    overwritten loses frames, and every frame decoded after the damage, by reading on
    or by seeking, is a different frame than the one asked for. The decoder runs on
    one thread so that a report belongs to the frame being decoded, deterministically.

        >>> with FrameReader(path) as reader:                   # doctest: +SKIP
        ...     frames = reader.read([300, 301, 303])           # BGR (H, W, 3) uint8 each
    """

    def __init__(self, path: str | Path, shown: str | None = None, seek: bool = True):
        self.path = Path(path)
        self.shown = shown or str(path)
        #: False: never seek, decode forward (reopening the file to go back); for files
        #: whose seeks do not land on the frame asked for (see `seek_is_exact`)
        self.seek = seek
        if not self.path.is_file():
            raise VideoError("video_missing", f"{self.shown}: file not found")
        self._cap = self._open()
        if not self._cap.isOpened():
            raise VideoError("video_unreadable", f"{self.shown}: cannot be opened as a video")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if not fps > 0 or count <= 0 or width <= 0 or height <= 0:
            self.close()
            raise VideoError(
                "video_unreadable",
                f"{self.shown}: no frames (frame rate {fps:g}, {count} frames, {width}x{height})",
            )
        self.info = VideoInfo(fps=fps, frame_count=count, width=width, height=height)
        self._next = 0  # index of the frame the next grab() returns
        self._seek_gap = max(1, int(SEEK_GAP_S * fps))

    def _open(self) -> cv2.VideoCapture:
        # one decoder thread: a damage report belongs to the frame being decoded
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
        return cap if cap.isOpened() else cv2.VideoCapture(str(self.path))

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def read(self, indices: np.ndarray | list[int], columns: tuple[int, int] | None = None) -> list[np.ndarray]:
        """BGR frames (H, W, 3) uint8 at `indices` (non-decreasing, within the header's count).

        With `columns` (x0, x1) only those columns of each frame are kept (a copy, so the
        whole frame is freed at once: half the memory for one camera view).
        Raises VideoError(``video_decode``) naming the first frame that could not be
        decoded (a truncated file), or VideoError(``video_corrupt``) naming the first
        frame whose decoding (or the seeking and decoding on the way to it) made the
        decoder report damaged data.
        """
        frames: list[np.ndarray] = []
        last_index, last_frame = -1, None
        with DecoderLog() as log:
            for index in (int(i) for i in indices):
                if index == last_index:  # two steps on one video frame
                    frames.append(last_frame)
                    continue
                if not 0 <= index < self.info.frame_count:
                    raise IndexError(f"{self.shown}: frame {index} outside 0..{self.info.frame_count - 1}")
                if not self.seek:
                    if index < self._next:
                        self._rewind()
                elif index < self._next or index - self._next > self._seek_gap:
                    self._cap.set(cv2.CAP_PROP_POS_FRAMES, index)
                    self._next = index
                while self._next < index:
                    if not self._cap.grab():
                        self._fail(self._next)
                    self._next += 1
                ok, frame = self._cap.read()
                if not ok or frame is None:
                    self._fail(index)
                self._next += 1
                damage = log.take()
                if damage:
                    self._corrupt(index, damage)
                if columns is not None:
                    frame = frame[:, columns[0] : columns[1]].copy()  # (H, x1 - x0, 3)
                frames.append(frame)
                last_index, last_frame = index, frame
        return frames

    def _rewind(self) -> None:
        """Back to frame 0 by reopening the file (no seek)."""
        self._cap.release()
        self._cap = self._open()
        self._next = 0

    def _corrupt(self, index: int, damage: list[str]) -> None:
        # frames decoded after damage are other frames than asked for: seek next time, and
        # the seek will meet (and report) the damage again if it has to decode through it
        self._next = self.info.frame_count + 1
        first = damage[0]
        more = f" and {len(damage) - 1} more report(s)" if len(damage) > 1 else ""
        raise VideoError(
            "video_corrupt",
            f"{self.shown}: the decoder reported damaged data at frame {index} of {self.info.frame_count} "
            f"({first!r}{more}); this frame and the ones after it are not trustworthy (corrupt file?)",
        )

    def _fail(self, index: int) -> None:
        # force a seek next time: the decoder's position is unknown after a failure
        self._next = self.info.frame_count + 1
        raise VideoError(
            "video_decode",
            f"{self.shown}: frame {index} of {self.info.frame_count} could not be decoded "
            "(truncated or corrupt file?)",
        )


def seek_is_exact(path: str | Path, indices: np.ndarray | list[int], shown: str | None = None) -> bool:
    """Do frames reached by seeking equal the same frames reached by decoding forward?

    A container whose index or B-frames make OpenCV's seek land a few frames off would
    misalign faces and audio without any error; comparing the pixels of the frames an
    utterance needs, read both ways, catches it. Decodes forward from frame 0 up to the
    last index, so call it with an early utterance. Raises VideoError like FrameReader.
    """
    indices = [int(i) for i in indices]
    with FrameReader(path, shown, seek=False) as forward:
        wanted = forward.read(indices)
    with FrameReader(path, shown) as seeking:
        seeking._cap.set(cv2.CAP_PROP_POS_FRAMES, indices[0])  # always seek, however close
        seeking._next = indices[0]
        got = seeking.read(indices)
    return all(np.array_equal(a, b) for a, b in zip(wanted, got))


class DecoderLog:
    """FFmpeg's error reports while frames are decoded, read back from file descriptor 2.

    OpenCV keeps FFmpeg's log at error level and prints it on standard error; it has
    no other per-frame error status. Inside the ``with`` block fd 2 points at a
    temporary file; `take` returns the FFmpeg reports written since the last call,
    without the decoder's memory address (so messages are the same on every run). Other
    lines are passed on to the real standard error. Where fd 2 cannot be duplicated
    (closed), nothing is captured.
    """

    def __init__(self) -> None:
        self._saved: int | None = None
        self._file = None
        self._pos = 0

    def __enter__(self) -> DecoderLog:
        try:
            saved = os.dup(2)
        except OSError:
            return self
        self._file = tempfile.TemporaryFile(buffering=0)
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(self._file.fileno(), 2)
        self._saved = saved
        return self

    def __exit__(self, *exc) -> None:
        if self._saved is None:
            return
        rest = self._read_new()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._saved = None
        self._file.close()
        self._file = None
        self._pass_on(rest)

    def _read_new(self) -> bytes:
        fd = self._file.fileno()
        end = os.lseek(fd, 0, os.SEEK_CUR)  # fd 2 shares this offset: it is where writes go
        if end <= self._pos:
            return b""
        data = os.pread(fd, end - self._pos, self._pos)
        self._pos = end
        return data

    def take(self) -> list[str]:
        """FFmpeg's reports since the last call, as ``"<component>: <message>"``."""
        if self._saved is None:
            return []
        reports, others = [], []
        for line in self._read_new().splitlines():
            m = FFMPEG_LOG_RE.match(line.strip())
            if m:
                reports.append(f"{m['who'].decode(errors='replace')}: {m['msg'].decode(errors='replace').strip()}")
            elif line.strip():
                others.append(line)
        if others:
            self._pass_on(b"\n".join(others) + b"\n")
        return reports

    def _pass_on(self, data: bytes) -> None:
        if data and self._saved is not None:
            os.write(self._saved, data)
        elif data:
            os.write(2, data)
