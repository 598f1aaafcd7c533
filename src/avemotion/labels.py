"""Emotion labels: majority vote of the external annotators, seeded tie-breaks, class map.

The rules, as in Chae et al. 2018 and the corpus documentation:

- Only external annotators (``C-E*``) vote; the speaking actor's self rating
  (``C-F*``/``C-M*``) never counts.
- Each category an annotator lists is one vote (``Frustration; Anger;`` is two votes);
  the same category listed twice by one annotator is one vote. Any number of annotators
  is fine (the corpus promises at least three).
- Words outside the corpus' categories are never votes: they are counted by word in the
  summary and named in the utterance's reject detail.
- Votes are counted on the categories as written (``Neutral state`` read as
  ``Neutral``), so the winner agrees with the corpus' own summary code wherever that has
  a majority; only then is the winner mapped to a class by ``labels.categories``
  (default Excited -> hap, as the field usually does). An unmapped winner is dropped.
- Ties: ``random`` (the paper) picks one of the tied categories with a generator seeded
  from ``labels.seed`` and the utterance id alone, so the pick is the same in any
  processing order and on any machine; ``drop`` drops tied utterances (the field's
  usual convention).

Example::

    >>> cfg = LabelsConfig()
    >>> vote("Ses01F_impro01_F000", Counter({"Neutral": 2, "Anger": 1}), cfg).emotion
    'neu'
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from typing import Literal, Mapping

import pyarrow as pa

from .corpus import SUMMARY_CODES, Votes, count_votes

DEFAULT_CATEGORIES = {
    "Neutral": "neu",
    "Anger": "ang",
    "Sadness": "sad",
    "Happiness": "hap",
    "Excited": "hap",
}


@dataclasses.dataclass(frozen=True)
class LabelsConfig:
    """params.yaml `labels`."""

    categories: Mapping[str, str] = dataclasses.field(default_factory=lambda: dict(DEFAULT_CATEGORIES))
    ties: Literal["random", "drop"] = "random"
    seed: int = 2018

    def validate(self, where: str = "labels") -> None:
        from .config import ParamsError

        if len(set(self.categories.values())) < 2:
            raise ParamsError(
                f"params: '{where}.categories' must map categories to at least two classes, "
                f"got {dict(self.categories)}"
            )

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names in index order (sorted, so the order never depends on YAML order)."""
        return tuple(sorted(set(self.categories.values())))


@dataclasses.dataclass(frozen=True)
class Label:
    utterance_id: str
    emotion: str | None  # class, or None if dropped
    category: str | None  # the winning category as written
    votes: str  # readable, e.g. "Neutral:2;Anger:1"
    tie: bool
    tied: tuple[str, ...]  # categories sharing the top count (empty if no tie)
    reason: str | None  # why dropped: no_votes | tie | unmapped_category
    detail: str | None


def format_votes(votes: Mapping[str, int]) -> str:
    """Most votes first, then alphabetical: 'Neutral:2;Anger:1'."""
    return ";".join(f"{c}:{n}" for c, n in sorted(votes.items(), key=lambda kv: (-kv[1], kv[0])))


def tie_break(utterance_id: str, tied: tuple[str, ...], seed: int) -> str:
    """Pick one of `tied` from a hash of (seed, utterance id): order- and machine-independent."""
    options = sorted(tied)
    digest = hashlib.sha256(f"{seed}/{utterance_id}".encode()).digest()
    return options[int.from_bytes(digest[:8], "little") % len(options)]


def vote(utterance_id: str, votes: Mapping[str, int], cfg: LabelsConfig) -> Label:
    """Majority vote of one utterance's external votes."""
    text = format_votes(votes)
    if not votes:
        return Label(utterance_id, None, None, text, False, (), "no_votes", "no external annotator chose a category")
    top = max(votes.values())
    tied = tuple(sorted(c for c, n in votes.items() if n == top))
    tie = len(tied) > 1
    if tie and cfg.ties == "drop":
        return Label(utterance_id, None, None, text, True, tied, "tie", f"tied: {', '.join(tied)}")
    category = tie_break(utterance_id, tied, cfg.seed) if tie else tied[0]
    emotion = cfg.categories.get(category)
    if emotion is None:
        return Label(
            utterance_id, None, category, text, tie, tied if tie else (),
            "unmapped_category", f"winner '{category}' is not in labels.categories",
        )
    return Label(utterance_id, emotion, category, text, tie, tied if tie else (), None, None)


def consensus(votes: Mapping[str, int]) -> str | None:
    """The category most annotators chose, if unique and chosen by at least two; else None.

    With three annotators this is what the corpus' summary code encodes (None <-> ``xxx``):
    the category at least two of them chose.
    """
    if not votes:
        return None
    top = max(votes.values())
    leaders = [c for c, n in votes.items() if n == top]
    return leaders[0] if top >= 2 and len(leaders) == 1 else None


def agrees_with_summary(votes: Mapping[str, int], summary_code: str) -> bool:
    return consensus(votes) == SUMMARY_CODES.get(summary_code)


LABEL_SCHEMA = pa.schema(
    [
        ("utterance_id", pa.string()),
        ("emotion", pa.string()),
        ("category", pa.string()),
        ("votes", pa.string()),
        ("tie", pa.bool_()),
        ("tied", pa.list_(pa.string())),
        ("reason", pa.string()),
        ("summary_code", pa.string()),
        ("agrees_with_summary", pa.bool_()),
        ("raters", pa.int32()),  # external annotators with a categorical rating
        ("unknown_words", pa.list_(pa.string())),  # listed words outside the known categories
    ]
)


def external_votes(ratings: list[dict]) -> Votes:
    """Votes from the `ratings` column of utterances.parquet (see corpus.count_votes)."""
    return count_votes((r["rater"], r["external"], r["categories"]) for r in ratings)


@dataclasses.dataclass
class LabelResult:
    table: pa.Table  # LABEL_SCHEMA, one row per input utterance, sorted by id
    rejects: list[dict]

    def summary(self) -> dict:
        t = self.table.to_pydict()
        kept = Counter(e for e in t["emotion"] if e is not None)
        unknown = Counter(w for words in t["unknown_words"] for w in words)
        many = [a for a, n in zip(t["agrees_with_summary"], t["raters"]) if n >= 4]
        return {
            "utterances": self.table.num_rows,
            "kept": sum(kept.values()),
            "classes": dict(sorted(kept.items())),
            "ties": sum(t["tie"]),
            "ties_broken_at_random": sum(1 for e, tie in zip(t["emotion"], t["tie"]) if tie and e is not None),
            "rejected": dict(sorted(Counter(r["reason"] for r in self.rejects).items())),
            "disagree_with_summary_code": sum(not a for a in t["agrees_with_summary"]),
            "four_or_more_raters": {"utterances": len(many), "disagree_with_summary_code": sum(not a for a in many)},
            "unknown_category_words": dict(sorted(unknown.items())),
        }


def label_utterances(utterances: pa.Table, cfg: LabelsConfig) -> LabelResult:
    """Vote every utterance of an utterances table (see corpus.UTTERANCE_SCHEMA)."""
    cols = utterances.select(["utterance_id", "ratings", "summary_code"]).to_pydict()
    rows, rejects = [], []
    for utt, ratings, code in zip(cols["utterance_id"], cols["ratings"], cols["summary_code"]):
        counted = external_votes(ratings)
        votes = counted.votes
        lab = vote(utt, votes, cfg)
        rows.append(
            {
                "utterance_id": utt,
                "emotion": lab.emotion,
                "category": lab.category,
                "votes": lab.votes,
                "tie": lab.tie,
                "tied": list(lab.tied),
                "reason": lab.reason,
                "summary_code": code,
                "agrees_with_summary": agrees_with_summary(votes, code),
                "raters": counted.raters,
                "unknown_words": sorted(counted.unknown),
            }
        )
        if lab.reason is not None:
            detail = f"{lab.detail} (votes {lab.votes or 'none'})"
            if counted.unknown:
                detail += "; not counted, outside the known categories: " + ", ".join(sorted(counted.unknown))
            rejects.append({"utterance_id": utt, "stage": "label", "reason": lab.reason, "detail": detail})
    rows.sort(key=lambda r: r["utterance_id"])
    return LabelResult(pa.Table.from_pylist(rows, schema=LABEL_SCHEMA), rejects)
