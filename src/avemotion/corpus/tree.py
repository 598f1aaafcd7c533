"""Walking the tree: the corpus root, the selected label files, where wavs and videos are."""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from pathlib import Path

from .config import CorpusConfig, CorpusError
from .emo_evaluation import DIALOG_RE, Utterance

IGNORED_SUBFOLDERS = ("Categorical", "Attribute", "Self-evaluation")


@dataclasses.dataclass
class CorpusFiles:
    """The label files selected for extraction, and what was skipped on the way."""

    root: Path
    files: list[tuple[int, Path]]  # (session, EmoEvaluation file), sorted
    ignored: Counter  # what was seen and deliberately not parsed, by kind
    #: (session, file, reason): .txt files in EmoEvaluation/ that are not label files of
    #: that session; reported per file, never a stopped stage
    stray: list[tuple[int, Path, str]] = dataclasses.field(default_factory=list)


def check_root(root: str | Path) -> Path:
    """`root` as a Path if it looks like an IEMOCAP_full_release folder, else CorpusError."""
    root = Path(root)
    expected = "<root>/Session1 ... Session5/dialog/EmoEvaluation/<dialog>.txt"
    if not root.is_dir():
        link = f" (a link to {os.readlink(root)})" if root.is_symlink() else ""
        raise CorpusError(
            f"corpus '{root}'{link} does not exist or is not a directory. Point it at your "
            f"IEMOCAP_full_release folder with `make corpus ROOT=/path/to/IEMOCAP_full_release` "
            f"(expected {expected}), or at the generated demo corpus with `make corpus` "
            "(then `dvc repro demo` creates it)."
        )
    if not any(p.is_dir() for p in root.glob("Session*")):
        nested = [p for p in root.glob("*/Session1") if p.is_dir()]
        hint = f" Did you mean `make corpus ROOT={nested[0].parent}`?" if nested else ""
        raise CorpusError(
            f"corpus '{root}' is not an IEMOCAP tree: it has no Session1..Session5 "
            f"folders (expected {expected}).{hint}"
        )
    return root


def find_label_files(root: str | Path, cfg: CorpusConfig) -> CorpusFiles:
    """Locate ``SessionN/dialog/EmoEvaluation/<dialog>.txt`` for the selected sessions/dialogs.

    Names starting with ``.`` (macOS ``._*`` sidecars, ``.DS_Store``) are skipped without
    being counted: they are not part of the corpus, and the pipeline's dependency on the
    corpus ignores them too (.dvcignore), so they must not change any output.
    """
    root = check_root(root)
    sessions_present = sorted(p.name for p in root.glob("Session*") if p.is_dir())
    files: list[tuple[int, Path]] = []
    ignored: Counter = Counter()
    stray: list[tuple[int, Path, str]] = []
    for session in sorted(cfg.sessions):
        emo_dir = root / f"Session{session}" / "dialog" / "EmoEvaluation"
        if not (root / f"Session{session}").is_dir():
            raise CorpusError(
                f"corpus.sessions asks for session {session}, but '{root / f'Session{session}'}' "
                f"is missing (found: {', '.join(sessions_present)}). Restore the folder or "
                "remove the session from corpus.sessions."
            )
        if not emo_dir.is_dir():
            raise CorpusError(
                f"'{emo_dir}' is missing: every IEMOCAP session has its labels in "
                "dialog/EmoEvaluation/<dialog>.txt. Is the session folder complete?"
            )
        for entry in sorted(emo_dir.iterdir()):
            name = entry.name
            if name.startswith("."):
                continue  # not counted: see the docstring
            if entry.is_dir():
                kind = "subfolder " + name if name in IGNORED_SUBFOLDERS else "other subfolder"
                ignored[kind] += 1
            elif entry.suffix != ".txt":
                ignored["non-.txt file"] += 1
            else:
                m = DIALOG_RE.match(entry.stem)
                if m is None:
                    stray.append((session, entry, (
                        f"'{entry.stem}' is not an IEMOCAP dialog name (expected e.g. Ses01F_impro01 "
                        "or Ses05M_script01_1b); not read as labels"
                    )))
                    continue
                if int(m["session"]) != session:
                    stray.append((session, entry, (
                        f"dialog of session {int(m['session'])} inside Session{session}; not read as "
                        "labels (is the tree mixed up?)"
                    )))
                    continue
                improvised = m["kind"] == "impro"
                if cfg.dialogs == "improvised" and not improvised:
                    ignored["scripted dialog (corpus.dialogs)"] += 1
                    continue
                if cfg.dialogs == "scripted" and improvised:
                    ignored["improvised dialog (corpus.dialogs)"] += 1
                    continue
                files.append((session, entry))
    return CorpusFiles(root=root, files=files, ignored=ignored, stray=stray)


def wav_relpath(u: Utterance) -> str:
    return f"Session{u.session}/sentences/wav/{u.dialog}/{u.utterance_id}.wav"


def video_relpath(u: Utterance) -> str:
    return f"Session{u.session}/dialog/avi/DivX/{u.dialog}.avi"
