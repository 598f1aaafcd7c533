"""Planning: one job per kept utterance, its camera view, chunks of work."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import pyarrow as pa

from ..audio import AudioConfig
from ..video import VideoConfig, n_steps_valid
from .crop import FaceJob

#: utterances per unit of work; a unit decodes one speaker's consecutive utterances of
#: one dialog with one open video, in order, and is what a worker process gets
CHUNK_UTTERANCES = 4


def speaker_view(speaker: str, dialog_letter: str, rule: str = "letter") -> str:
    """The camera view (left | right) that shows the speaker under `rule` (faces.view)."""
    if rule == "letter":
        return "left" if speaker == dialog_letter else "right"
    if rule == "gender":
        return "left" if speaker == "F" else "right"
    raise ValueError(f"Invalid faces.view {rule!r}. Only letter and gender are supported.")


def plan_jobs(
    utterances: pa.Table, labels: pa.Table, audio: AudioConfig, video: VideoConfig, view: str = "letter"
) -> list[FaceJob]:
    """One job per kept utterance (emotion not null), sorted by (session, utterance_id).

    The view is chosen by `view` (faces.view); the first utterance of each speaker in
    each dialog is marked for the contact sheet's view check.
    """
    kept = {
        r["utterance_id"]
        for r in labels.select(["utterance_id", "emotion"]).to_pylist()
        if r["emotion"] is not None
    }
    cols = ["utterance_id", "session", "dialog", "speaker", "dialog_letter", "start", "end", "video_path", "n_samples", "sample_rate"]
    jobs = [
        FaceJob(
            utterance_id=r["utterance_id"],
            session=int(r["session"]),
            dialog=r["dialog"],
            speaker=r["speaker"],
            view=speaker_view(r["speaker"], r["dialog_letter"], view),
            dialog_letter=r["dialog_letter"],
            start=float(r["start"]),
            end=float(r["end"]),
            video_path=r["video_path"],
            n_steps=n_steps_valid(r["n_samples"], r["sample_rate"], audio.seconds, video.fps),
        )
        for r in utterances.select(cols).to_pylist()
        if r["utterance_id"] in kept
    ]
    jobs.sort(key=lambda j: (j.session, j.utterance_id))
    seen: set[tuple[str, str]] = set()
    for i, j in enumerate(jobs):
        if (j.dialog, j.speaker) not in seen:
            seen.add((j.dialog, j.speaker))
            jobs[i] = dataclasses.replace(j, preview=True)
    return jobs


def chunk_jobs(jobs: Sequence[FaceJob], per_chunk: int = CHUNK_UTTERANCES) -> list[list[FaceJob]]:
    """Consecutive runs of one dialog and speaker, at most `per_chunk` long, order kept.

    A video that must be decoded forward (``seek`` false) is one chunk, so it is decoded
    about once rather than once per chunk.
    """
    chunks: list[list[FaceJob]] = []
    for job in jobs:
        last = chunks[-1] if chunks else None
        if last and not job.seek and last[-1].video_path == job.video_path:
            last.append(job)
        elif last and last[-1].seek and len(last) < per_chunk and (last[-1].dialog, last[-1].speaker, last[-1].session) == (
            job.dialog,
            job.speaker,
            job.session,
        ):
            last.append(job)
        else:
            chunks.append([job])
    return chunks
