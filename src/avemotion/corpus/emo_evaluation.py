"""EmoEvaluation files: names, summary lines, categorical (``C-``) and dimensional (``A-``) ratings, votes."""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter
from pathlib import Path
from typing import Iterable

from .config import CorpusError

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
