"""Extraction: the utterances table (schema, rows) and its rejects, from the selected label files."""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from pathlib import Path
from typing import Iterable

import pyarrow as pa

from .config import CorpusConfig
from .emo_evaluation import Utterance, parse_emo_evaluation
from .tree import CorpusFiles, find_label_files, video_relpath, wav_relpath
from .wav import WavInfo, check_wav

log = logging.getLogger(__name__)


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
