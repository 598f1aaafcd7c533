"""The IEMOCAP tree on disk: walking it, parsing EmoEvaluation files, checking wavs.

Layout (see IEMOCAP.md)::

    IEMOCAP_full_release/
      Session1/ ... Session5/
        dialog/EmoEvaluation/<dialog>.txt       labels, one block per utterance
        dialog/avi/DivX/<dialog>.avi            both actors side by side
        sentences/wav/<dialog>/<utterance>.wav  16 kHz mono, one per utterance

Facts this module relies on, and why:

- Names are parsed with regular expressions, never by character index: five dialog
  names (``Ses03M_impro05a``, ``Ses05M_script01_1b``, ...) break fixed positions.
- The speaker's gender is the letter of the utterance suffix (``..._F000``). The letter
  after ``Ses0N`` names the actor wearing motion-capture markers, who sits in the LEFT
  camera view; so the speaker is in the left view when the two letters agree.
- ``C-E<n>`` lines are the external annotators; ``C-F<n>``/``C-M<n>`` are the speaking
  actor rating themself and are kept apart (labels count only external votes).
- Only ``EmoEvaluation/*.txt`` at the top level are label files; the subfolders
  ``Categorical/``, ``Attribute/``, ``Self-evaluation/`` and macOS ``._*`` sidecars are
  ignored (and counted, so nothing disappears unexplained).

Example::

    >>> cfg = CorpusConfig(sessions=(1, 2, 3, 4, 5), dialogs="improvised")
    >>> result = extract("data/corpus", cfg)   # doctest: +SKIP
    >>> result.table.num_rows, len(result.rejects)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Literal

import pyarrow as pa
import soundfile as sf

log = logging.getLogger(__name__)

#: The only sample rate the network's audio stream is built for. Checked, never configured.
SAMPLE_RATE = 16000
#: The only sample format read (soundfile's name for 16-bit PCM), as IEMOCAP ships it.
WAV_SUBTYPE = "PCM_16"
#: A wav shorter than its label range by more than this many seconds, or this fraction
#: of the range if that is more, is rejected as truncated (see wav_shortfall_tolerance).
WAV_SHORT_TOLERANCE_S = 0.25
WAV_SHORT_TOLERANCE_FRACTION = 0.05

#: Dialog names: Ses01F_impro01, Ses03M_impro05a, Ses01F_script01_1, Ses05M_script01_1b.
DIALOG_RE = re.compile(
    r"^Ses(?P<session>\d{2})(?P<dialog_letter>[FM])_(?P<kind>impro|script)[A-Za-z0-9_]*$"
)
#: Utterance ids: <dialog>_<speaker letter><3 digits>. The dialog part is matched greedily
#: and backtracks, so underscores inside dialog names (script01_1b) are fine.
UTTERANCE_RE = re.compile(
    r"^(?P<dialog>Ses\d{2}[FM]_(?:impro|script)[A-Za-z0-9_]*)_(?P<speaker>[FM])(?P<index>\d{3})$"
)
_NUM = r"[-+]?\d+(?:\.\d+)?"
SUMMARY_RE = re.compile(
    rf"^\[(?P<start>{_NUM})\s+-\s+(?P<end>{_NUM})\]\s+(?P<utt>\S+)\s+(?P<code>[a-z]+)\s+"
    rf"\[(?P<val>{_NUM}),\s*(?P<act>{_NUM}),\s*(?P<dom>{_NUM})\]\s*$"
)
#: ``C-E2:<TAB>Frustration; Other;<TAB>(comment)``; a space before the colon is accepted.
CATEGORICAL_RE = re.compile(r"^C-(?P<rater>[A-Z]+\d*)\s*:(?P<body>.*)$")
DIMENSIONAL_RE = re.compile(
    r"^A-(?P<rater>[A-Z]+\d*)\s*:\s*(?P<body>[^()]*?)\s*(?:\((?P<comment>.*)\))?\s*$"
)
_DIM_ITEM_RE = re.compile(rf"(?P<name>val|act|dom)\s+(?P<value>{_NUM})")
_UTT_ANYWHERE_RE = re.compile(r"Ses\d{2}[FM]_(?:impro|script)[A-Za-z0-9_]*_[FM]\d{3}")

#: Summary codes and the category word each stands for; xxx = no majority.
SUMMARY_CODES = {
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
    "xxx": None,
}
#: Category words as some copies write them -> the canonical word.
CATEGORY_ALIASES = {"Neutral state": "Neutral"}
KNOWN_CATEGORIES = frozenset(c for c in SUMMARY_CODES.values() if c)
IGNORED_SUBFOLDERS = ("Categorical", "Attribute", "Self-evaluation")


class CorpusError(ValueError):
    """The corpus tree or one of its files cannot be used; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class CorpusConfig:
    """params.yaml `corpus`: which sessions and dialogs.

    Where the corpus lives is not a param: it is a property of each machine, set by the
    link ``data/corpus`` (``make corpus ROOT=...``), so that the stages depend on the
    corpus' content, not on its location (see manifest.py).
    """

    sessions: tuple[int, ...] = (1, 2, 3, 4, 5)
    dialogs: Literal["improvised", "scripted", "all"] = "improvised"

    def validate(self, where: str = "corpus") -> None:
        from .config import ParamsError

        if not self.sessions:
            raise ParamsError(f"params: '{where}.sessions' is empty; list at least one of 1-5")
        if len(set(self.sessions)) != len(self.sessions) or any(s < 1 for s in self.sessions):
            raise ParamsError(
                f"params: '{where}.sessions' must list distinct positive session numbers, "
                f"got {list(self.sessions)}"
            )


@dataclasses.dataclass(frozen=True)
class Rating:
    """One rater's line: categorical (C-) or dimensional (A-)."""

    rater: str  # E2, F1, M3 ...
    external: bool  # True for C-E*/A-E* (annotators), False for self ratings
    categories: tuple[str, ...] = ()  # categorical only, canonical words, as listed
    valence: float | None = None  # dimensional only
    activation: float | None = None
    dominance: float | None = None
    comment: str = ""


@dataclasses.dataclass
class Utterance:
    """One block of an EmoEvaluation file, with where it came from."""

    utterance_id: str
    dialog: str
    session: int
    improvised: bool
    speaker: str  # F/M: the utterance suffix letter, i.e. the speaker's gender
    dialog_letter: str  # F/M: the actor wearing markers, shown in the left view
    start: float
    end: float
    summary_code: str
    valence: float
    activation: float
    dominance: float
    source: str  # "<relative file>:<line>" of the summary line
    categorical: list[Rating] = dataclasses.field(default_factory=list)
    dimensional: list[Rating] = dataclasses.field(default_factory=list)
    problem: tuple[str, str] | None = None  # (reason, detail) if the block is unusable
    notes: list[str] = dataclasses.field(default_factory=list)  # problems that do not reject it

    @property
    def view(self) -> str:
        return "left" if self.speaker == self.dialog_letter else "right"

    @property
    def external_votes(self) -> Counter:
        """Votes of the external annotators (see `count_votes`)."""
        return count_votes((r.rater, r.external, r.categories) for r in self.categorical).votes


@dataclasses.dataclass
class ParsedFile:
    path: Path
    dialog: str
    utterances: list[Utterance]
    notes: list[str] = dataclasses.field(default_factory=list)  # lines skipped, decoding


@dataclasses.dataclass(frozen=True)
class Votes:
    votes: Counter  # known category -> number of external raters who listed it
    unknown: Counter  # words outside KNOWN_CATEGORIES -> times listed (never votes)
    raters: int  # external raters with a C- line


def count_votes(ratings: Iterable[tuple[str, bool, Iterable[str]]]) -> Votes:
    """External votes from (rater, external, categories) triples.

    Each category an external rater lists is one vote, and one rater listing a category
    twice (or appearing twice) still gives it one vote. Self ratings never count. Words
    outside the known categories are counted apart, not as votes. Works for any number of
    raters (the corpus promises at least three).
    """
    seen: set[tuple[str, str]] = set()
    raters: set[str] = set()
    votes: Counter = Counter()
    unknown: Counter = Counter()
    for rater, external, categories in ratings:
        if not external:
            continue
        raters.add(rater)
        for c in categories:
            if (rater, c) in seen:
                continue
            seen.add((rater, c))
            if c in KNOWN_CATEGORIES:
                votes[c] += 1
            else:
                unknown[c] += 1
    return Votes(votes, unknown, len(raters))


def canonical_category(word: str) -> str:
    """``Neutral state`` -> ``Neutral``; inner runs of spaces or tabs become one space."""
    word = " ".join(word.split())
    return CATEGORY_ALIASES.get(word, word)


def parse_categories(text: str) -> tuple[str, ...]:
    """``"Frustration; Other;"`` -> ("Frustration", "Other"); ``";"`` -> ()."""
    words = [canonical_category(w) for w in text.split(";")]
    return tuple(w for w in words if w)


def split_categorical(body: str) -> tuple[tuple[str, ...], str]:
    """The text after ``C-E2:`` -> (categories, comment).

    Categories are separated by ``;`` with any spaces or tabs around them. The comment is
    the trailing ``(...)``; without parentheses, the text after the last ``;`` is the
    comment unless it is a known category word (``Neutral; Anger`` lacks its final ``;``).
    """
    body = body.strip()
    comment = ""
    m = re.search(r"\(([^()]*)\)\s*$", body)
    if m:
        comment, body = m[1].strip(" \t"), body[: m.start()].strip()
    head, sep, tail = body.rpartition(";")
    tail_word = canonical_category(tail)
    if sep and tail_word and tail_word not in KNOWN_CATEGORIES and not comment:
        comment, body = " ".join(tail.split()), head + sep
    elif not sep and tail_word and tail_word not in KNOWN_CATEGORIES and not comment:
        comment, body = " ".join(tail.split()), ""
    return parse_categories(body), comment


def parse_dialog_name(name: str) -> re.Match:
    m = DIALOG_RE.match(name)
    if not m:
        raise CorpusError(
            f"'{name}' is not an IEMOCAP dialog name (expected e.g. Ses01F_impro01, "
            "Ses03M_impro05a, Ses05M_script01_1b)"
        )
    return m


def read_text(path: Path) -> tuple[str, int]:
    """The text of a label file and how many of its lines were not UTF-8.

    Never fails on content: a UTF-8 byte-order mark is dropped, and a line that is not
    valid UTF-8 (a Latin-1 byte in an annotator's comment, the corpus' only free text)
    is read as Latin-1. Lines are split on LF only (a Latin-1 byte read as NEL must not
    start a new line).
    """
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8"), 0
    except UnicodeDecodeError:
        pass
    out, latin1 = [], 0
    for raw in data.split(b"\n"):
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            out.append(raw.decode("latin-1"))
            latin1 += 1
    return "\n".join(out), latin1


def parse_emo_evaluation(path: Path, rel: str | None = None) -> ParsedFile:
    """Parse one ``EmoEvaluation/<dialog>.txt``; never raises on its content.

    - A summary line or ``C-`` line that cannot be read, a blank line inside a block or
      an unexpected line marks that utterance as unusable (rejected later with file and
      line). Only ``C-`` lines make the label, so a malformed ``A-`` line is recorded in
      the utterance's `notes` and the utterance kept.
    - Lines that belong to no utterance, and lines read as Latin-1, go to the file's
      `notes`.
    Raises CorpusError only if the file cannot be read at all (an I/O error).
    """
    rel = rel or str(path)
    dialog = path.stem
    dm = parse_dialog_name(dialog)
    session = int(dm["session"])
    improvised = dm["kind"] == "impro"
    try:
        text, latin1 = read_text(path)
    except OSError as exc:
        raise CorpusError(f"{rel}: cannot be read ({exc.strerror})") from exc

    notes: list[str] = []
    if latin1:
        notes.append(f"{rel}: {latin1} line(s) not UTF-8, read as Latin-1")
    utterances: list[Utterance] = []
    current: Utterance | None = None
    after_blank = False
    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        where = f"{rel}:{lineno}"
        if not line.strip():
            after_blank = True  # a blank line ends a block
            continue
        if line.startswith("%"):
            continue  # column header
        if line.lstrip().startswith("["):
            line = line.strip()
            m = SUMMARY_RE.match(line)
            utt_id = m["utt"] if m else _find_utterance_id(line)
            if utt_id is None:
                notes.append(f"{where}: summary line with no utterance id, skipped: {line!r}")
                current = None
                continue
            current = _new_utterance(utt_id, dialog, session, improvised, where, m, line)
            utterances.append(current)
            after_blank = False
            continue
        if current is None:
            notes.append(f"{where}: line outside any utterance block, skipped: {line!r}")
            continue
        if after_blank:
            if current.problem is None:
                current.problem = (
                    "malformed_block",
                    f"{where}: blank line inside the block of {current.utterance_id}, before {line!r}",
                )
            continue
        if current.problem is not None:
            continue
        _parse_rating(current, line.strip(), where)
    return ParsedFile(path=path, dialog=dialog, utterances=utterances, notes=notes)


def _parse_rating(u: Utterance, line: str, where: str) -> None:
    if line.startswith("C-"):
        m = CATEGORICAL_RE.match(line)
        if not m:
            u.problem = ("malformed_line", f"{where}: unreadable rating {line!r}")
            return
        categories, comment = split_categorical(m["body"])
        rater = m["rater"]
        u.categorical.append(
            Rating(rater=rater, external=rater.startswith("E"), categories=categories, comment=comment)
        )
    elif line.startswith("A-"):
        m = DIMENSIONAL_RE.match(line)
        items = {i["name"]: float(i["value"]) for i in _DIM_ITEM_RE.finditer(m["body"])} if m else {}
        if not m or "val" not in items or "act" not in items:
            # only C- lines make the label: keep the utterance, record the line
            u.notes.append(f"{where}: unreadable dimensional rating, not used: {line!r}")
            return
        rater = m["rater"]
        u.dimensional.append(
            Rating(
                rater=rater,
                external=rater.startswith("E"),
                valence=items["val"],
                activation=items["act"],
                dominance=items.get("dom"),  # a few lines lack dom
                comment=m["comment"] or "",
            )
        )
    else:
        u.problem = ("malformed_line", f"{where}: unexpected line {line!r}")


def _find_utterance_id(line: str) -> str | None:
    m = _UTT_ANYWHERE_RE.search(line)
    return m.group(0) if m else None


def _new_utterance(
    utt_id: str,
    dialog: str,
    session: int,
    improvised: bool,
    where: str,
    m: re.Match | None,
    line: str,
) -> Utterance:
    um = UTTERANCE_RE.match(utt_id)
    speaker = um["speaker"] if um else ""
    u = Utterance(
        utterance_id=utt_id,
        dialog=dialog,
        session=session,
        improvised=improvised,
        speaker=speaker,
        dialog_letter=DIALOG_RE.match(dialog)["dialog_letter"],
        start=float(m["start"]) if m else math.nan,
        end=float(m["end"]) if m else math.nan,
        summary_code=m["code"] if m else "",
        valence=float(m["val"]) if m else math.nan,
        activation=float(m["act"]) if m else math.nan,
        dominance=float(m["dom"]) if m else math.nan,
        source=where,
    )
    if m is None:
        u.problem = ("malformed_line", f"{where}: unreadable summary line {line!r}")
    elif um is None:
        u.problem = ("bad_utterance_id", f"{where}: '{utt_id}' is not <dialog>_<F|M><3 digits>")
    elif um["dialog"] != dialog:
        u.problem = ("bad_utterance_id", f"{where}: '{utt_id}' does not belong to dialog {dialog}")
    elif u.summary_code not in SUMMARY_CODES:
        u.problem = (
            "malformed_line",
            f"{where}: unknown summary code '{u.summary_code}' (valid: {', '.join(SUMMARY_CODES)})",
        )
    elif not (0 <= u.start < u.end):
        u.problem = ("bad_time_range", f"{where}: [{u.start} - {u.end}] is not a valid time range")
    return u


# ----------------------------------------------------------------------------- tree


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


# ----------------------------------------------------------------------------- extract


RATING_STRUCT = pa.struct(
    [
        ("rater", pa.string()),
        ("external", pa.bool_()),
        ("categories", pa.list_(pa.string())),
        ("comment", pa.string()),
    ]
)
DIMENSION_STRUCT = pa.struct(
    [
        ("rater", pa.string()),
        ("external", pa.bool_()),
        ("valence", pa.float64()),
        ("activation", pa.float64()),
        ("dominance", pa.float64()),
    ]
)
UTTERANCE_SCHEMA = pa.schema(
    [
        ("utterance_id", pa.string()),
        ("session", pa.int32()),
        ("dialog", pa.string()),
        ("improvised", pa.bool_()),
        ("speaker", pa.string()),
        ("gender", pa.string()),
        ("dialog_letter", pa.string()),
        ("view", pa.string()),
        ("start", pa.float64()),
        ("end", pa.float64()),
        ("wav_path", pa.string()),
        ("video_path", pa.string()),
        ("n_samples", pa.int64()),
        ("sample_rate", pa.int32()),
        ("summary_code", pa.string()),
        ("valence", pa.float64()),
        ("activation", pa.float64()),
        ("dominance", pa.float64()),
        ("ratings", pa.list_(RATING_STRUCT)),
        ("dimensions", pa.list_(DIMENSION_STRUCT)),
        ("source", pa.string()),
        ("notes", pa.list_(pa.string())),  # problems that did not reject it (file:line: what)
    ]
)


@dataclasses.dataclass
class ExtractResult:
    table: pa.Table  # kept utterances, UTTERANCE_SCHEMA, sorted by utterance_id
    rejects: list[dict]  # REJECT_SCHEMA rows
    n_selected: int  # utterance blocks in the selected EmoEvaluation files
    n_files: int
    ignored: Counter
    rejected_files: list[dict] = dataclasses.field(default_factory=list)  # {file, reason}
    notes: list[str] = dataclasses.field(default_factory=list)  # file-level problems

    def summary(self) -> dict:
        reasons = Counter(r["reason"] for r in self.rejects)
        utterance_notes = sum(len(n) for n in self.table.column("notes").to_pylist())
        return {
            "label_files": self.n_files,
            "selected": self.n_selected,
            "kept": self.table.num_rows,
            "rejected": dict(sorted(reasons.items())),
            "ignored_entries": dict(sorted(self.ignored.items())),
            "rejected_files": self.rejected_files,
            "file_notes": self.notes,
            "kept_with_notes": utterance_notes,
        }


def iter_utterances(root: str | Path, cfg: CorpusConfig, files: CorpusFiles | None = None) -> Iterable[Utterance]:
    """Every utterance block of the selected label files, in file order."""
    files = files or find_label_files(root, cfg)
    for _, path in files.files:
        rel = path.relative_to(files.root).as_posix()
        yield from parse_emo_evaluation(path, rel).utterances


def extract(root: str | Path, cfg: CorpusConfig, progress=None) -> ExtractResult:
    """Parse the selected label files under `root` and check each utterance's wav.

    Returns the kept utterances as a table and every other utterance as a reject with
    its reason; ``n_selected == kept + len(rejects)`` always holds.
    `progress`, if given, wraps the list of label files (e.g. ``tqdm``).
    """
    files = find_label_files(root, cfg)
    root = files.root
    blocks: list[Utterance] = []
    notes: list[str] = []
    paths = files.files if progress is None else progress(files.files)
    for _, path in paths:
        parsed = parse_emo_evaluation(path, path.relative_to(root).as_posix())
        blocks.extend(parsed.utterances)
        notes.extend(parsed.notes)
    for note in notes:
        log.warning("%s", note)
    rejected_files = [{"file": p.relative_to(root).as_posix(), "reason": why} for _, p, why in files.stray]
    for r in rejected_files:
        log.warning("%s: %s", r["file"], r["reason"])

    seen: dict[str, list[Utterance]] = {}
    for u in blocks:
        seen.setdefault(u.utterance_id, []).append(u)

    rows, rejects = [], []
    for u in blocks:
        twins = seen[u.utterance_id]
        if u.problem is None and len(twins) > 1:
            u.problem = (
                "duplicate_id",
                f"{u.utterance_id} appears {len(twins)} times: " + ", ".join(t.source for t in twins),
            )
        info = None
        if u.problem is None:
            info, u.problem = check_wav(root / wav_relpath(u), wav_relpath(u), u.end - u.start)
        if u.problem is not None:
            reason, detail = u.problem
            rejects.append({"utterance_id": u.utterance_id, "stage": "extract", "reason": reason, "detail": detail})
            continue
        rows.append(_row(u, info))
    rows.sort(key=lambda r: r["utterance_id"])
    table = pa.Table.from_pylist(rows, schema=UTTERANCE_SCHEMA)
    result = ExtractResult(table, rejects, len(blocks), len(files.files), files.ignored, rejected_files, notes)
    assert result.n_selected == table.num_rows + len(rejects)
    return result


def _row(u: Utterance, info: WavInfo) -> dict:
    return {
        "utterance_id": u.utterance_id,
        "session": u.session,
        "dialog": u.dialog,
        "improvised": u.improvised,
        "speaker": u.speaker,
        "gender": u.speaker,
        "dialog_letter": u.dialog_letter,
        "view": u.view,
        "start": u.start,
        "end": u.end,
        "wav_path": wav_relpath(u),
        "video_path": video_relpath(u),
        "n_samples": info.frames,
        "sample_rate": info.sample_rate,
        "summary_code": u.summary_code,
        "valence": u.valence,
        "activation": u.activation,
        "dominance": u.dominance,
        "ratings": [
            {"rater": r.rater, "external": r.external, "categories": list(r.categories), "comment": r.comment}
            for r in u.categorical
        ],
        "dimensions": [
            {
                "rater": r.rater,
                "external": r.external,
                "valence": r.valence,
                "activation": r.activation,
                "dominance": r.dominance,
            }
            for r in u.dimensional
        ],
        "source": u.source,
        "notes": list(u.notes),
    }
