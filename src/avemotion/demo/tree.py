"""Writing the tree: every file of a dialog, the dialogs in parallel, the whole corpus atomically."""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy as np
import soundfile as sf

from .config import DemoConfig
from .layout import SAMPLE_RATE
from .plan import SEED_AUDIO, SEED_SIDECAR, Dialog, plan_corpus, plan_speakers, seeded_rng, slot_index
from .text import README, emo_evaluation_text, ignored_files, transcription_text
from .video import render_video
from .voice import synth_voice, to_pcm16

log = logging.getLogger(__name__)


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
    for rel, text in ignored_files(dialog).items():
        _write(emo / rel, text)

    slot = slot_index(dialog)
    kind = 0 if dialog.improvised else 1
    total = int(round(dialog.seconds * SAMPLE_RATE))
    stereo = np.zeros((total, 2), np.int16)  # channel 0: dialog-letter actor, 1: the other
    for k, u in enumerate(dialog.utterances):
        rng = seeded_rng(cfg, SEED_AUDIO, dialog.session, kind, slot, k)
        pcm = to_pcm16(synth_voice(rng, u.n_samples, speakers[u.speaker], u.arousal))
        sf.write(utt_dir / f"{u.uid}.wav", pcm, SAMPLE_RATE, subtype="PCM_16")
        at = int(round(u.start * SAMPLE_RATE))
        stereo[at : at + len(pcm), 0 if u.speaker == dialog.letter else 1] = pcm[: max(0, total - at)]
    sf.write(ses / "dialog" / "wav" / f"{dialog.name}.wav", stereo, SAMPLE_RATE, subtype="PCM_16")
    frames = render_video(ses / "dialog" / "avi" / "DivX" / f"{dialog.name}.avi", dialog, speakers, cfg)

    sidecars = 0
    if dialog.sidecars:
        rng = seeded_rng(cfg, SEED_SIDECAR, dialog.session, kind)
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
