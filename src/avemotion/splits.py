"""Runs and their splits: which utterance trains, validates and tests in one run.

A *run* is one (fold, seed) pair of params.yaml `runs`; every variant is trained once per
run, and the compare stage pairs variants by run. A run's split is a pure function of the
shards' index (utterance id, session, gender, emotion), the `split` params and the run, so
it costs nothing to change: the shards are written once per preprocessing params and never
hold a split.

- ``split.method: session`` (leave-one-session-out, the field's protocol): the fold is the
  test session; validation is one speaker (``split.val_speaker``) of the next session and
  the other-gender speaker of the session after it (after the last session comes the
  first), so no test speaker is seen in training or validation, validation is
  speaker-independent too, and it holds both genders. The seed only seeds training.
- ``split.method: random`` (the paper): a 60/20/20 split (``split.fractions``) stratified
  by emotion and gender, drawn anew for every (fold, seed); here a fold is just the label
  of one repetition, and every seed re-draws the split as well as seeding training.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import Literal, Mapping, Sequence

SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class SplitConfig:
    """params.yaml `split`: how a run divides the shards (see the module docstring)."""

    method: Literal["random", "session"] = "random"
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    val_speaker: Literal["F", "M"] = "F"

    def validate(self, where: str = "split") -> None:
        from .config import ParamsError

        if any(f < 0 for f in self.fractions) or not math.isclose(sum(self.fractions), 1.0, abs_tol=1e-6):
            raise ParamsError(f"params: '{where}.fractions' must be three non-negative numbers summing to 1, got {list(self.fractions)}")


@dataclasses.dataclass(frozen=True)
class RunsConfig:
    """params.yaml `runs`: the runs the variants are trained in, folds x seeds.

    `folds`: under ``split.method: session`` the test sessions (default all five); under
    ``random`` labels of repeated random splits. `seeds`: each run's training seed (and,
    under ``random``, part of its split's seed). `every_run` lists the variants trained in
    every run (stages ``train@<variant>-<fold>-<seed>``); `first_run` the variants trained
    in the first run only, the first fold with the first seed (stages
    ``train-first@<variant>-<fold>-<seed>``), for a smaller budget. Every variant is in
    exactly one of the two lists.
    """

    seeds: tuple[int, ...] = (2018,)
    folds: tuple[int, ...] = (1, 2, 3, 4, 5)
    every_run: tuple[str, ...] = ()
    first_run: tuple[str, ...] = ()

    def validate(self, where: str = "runs") -> None:
        from .config import ParamsError

        for key in ("seeds", "folds", "every_run", "first_run"):
            values = getattr(self, key)
            if not values and key in ("seeds", "folds"):
                raise ParamsError(f"params: '{where}.{key}' must list at least one value")
            if len(set(values)) != len(values):
                raise ParamsError(f"params: '{where}.{key}' lists a value twice: {list(values)}")

    def check_variants(self, variants: Sequence[str], where: str = "runs") -> None:
        """Every variant in exactly one of every_run / first_run, and nothing else there."""
        from .config import ParamsError

        both = sorted(set(self.every_run) & set(self.first_run))
        if both:
            raise ParamsError(f"params: variant(s) {both} are in both '{where}.every_run' and '{where}.first_run'; keep each in one")
        listed = set(self.every_run) | set(self.first_run)
        unknown = sorted(listed - set(variants))
        if unknown:
            raise ParamsError(f"params: '{where}.every_run'/'{where}.first_run' name {unknown}, not in 'variants' ({', '.join(variants)})")
        missing = [v for v in variants if v not in listed]
        if missing:
            raise ParamsError(
                f"params: variant(s) {missing} are in neither '{where}.every_run' (trained in every run) "
                f"nor '{where}.first_run' (trained in the first run only); add each to one of them"
            )

    def runs(self) -> list[Run]:
        """Every run, folds outer, seeds inner (the order of the report's tables)."""
        return [Run(f, s) for f in self.folds for s in self.seeds]

    def runs_of(self, variant: str) -> list[Run]:
        """The runs `variant` is trained in."""
        return self.runs()[:1] if variant in self.first_run else self.runs()

    def stage(self, variant: str, run: Run) -> str:
        """The DVC stage that trains `variant` in `run` (dvc.yaml's matrix naming)."""
        group = "train-first" if variant in self.first_run else "train"
        return f"{group}@{variant}-{run.fold}-{run.seed}"


@dataclasses.dataclass(frozen=True, order=True)
class Run:
    fold: int
    seed: int

    @property
    def id(self) -> str:
        """The run's folder name under results/runs/<variant>/."""
        return f"fold{self.fold}-seed{self.seed}"


def check_folds(runs: RunsConfig, split: SplitConfig, sessions: Sequence[int], where: str = "runs") -> None:
    """Under the session method every fold must be a session the corpus section selects."""
    from .config import ParamsError

    if split.method != "session":
        return
    bad = [f for f in runs.folds if f not in sessions]
    if bad:
        raise ParamsError(
            f"params: '{where}.folds' names session(s) {bad} that are not in corpus.sessions {list(sessions)}; "
            "under split.method: session each fold is a test session"
        )
    if len(set(sessions)) < 2:
        raise ParamsError("params: split.method: session needs at least two sessions in corpus.sessions")


def _stable_key(seed: str, text: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}/{text}".encode()).digest()[:8], "little")


def assign(rows: Sequence[Mapping], cfg: SplitConfig, run: Run) -> dict[str, str]:
    """utterance_id -> "train" | "val" | "test" for one run.

    `rows` need utterance_id, session, gender and emotion. The result depends only on the
    set of rows, the params and the run, never on the rows' order or the machine.
    """
    if cfg.method == "session":
        return _session_split(rows, cfg, run.fold)
    # within each (emotion, gender) stratum, order utterances by a hash seeded by the run
    # and cut by the fractions (largest remainder), so every stratum is split 60/20/20 as
    # closely as its count allows
    strata: dict[tuple, list[str]] = {}
    for r in rows:
        strata.setdefault((r["emotion"], r["gender"]), []).append(r["utterance_id"])
    key = f"{run.fold}/{run.seed}"
    out: dict[str, str] = {}
    for stratum in sorted(strata):
        ids = sorted(strata[stratum], key=lambda u: (_stable_key(key, u), u))
        i = 0
        for split, n in zip(SPLITS, _largest_remainder(len(ids), cfg.fractions)):
            out.update((u, split) for u in ids[i : i + n])
            i += n
    return out


def _largest_remainder(n: int, fractions: Sequence[float]) -> list[int]:
    raw = [n * f for f in fractions]
    counts = [int(math.floor(x)) for x in raw]
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def validation_sessions(test_session: int, sessions: Sequence[int]) -> list[int]:
    """The sessions after the test session among `sessions`, in cyclic order (5 -> 1)."""
    ordered = sorted(set(sessions))
    i = ordered.index(test_session)
    return [ordered[(i + k) % len(ordered)] for k in range(1, len(ordered))]


def _session_split(rows: Sequence[Mapping], cfg: SplitConfig, test_session: int) -> dict[str, str]:
    sessions = sorted({r["session"] for r in rows})
    if test_session not in sessions:
        raise ValueError(
            f"fold {test_session} is a test session, but the shards hold sessions {sessions}; "
            "choose runs.folds among them (or add the session to corpus.sessions)"
        )
    if len(sessions) < 2:
        raise ValueError("split.method session needs at least two sessions in the shards")
    # validation: `val_speaker` of the next session and the other gender of the session
    # after it, so that validation holds both genders (a one-gender validation set makes
    # the gender NLL, and with it the choice of the best epoch, reward predicting one
    # gender); with two sessions only, the one speaker of the other session
    later = validation_sessions(test_session, sessions)
    other = "M" if cfg.val_speaker == "F" else "F"
    val = {(later[0], cfg.val_speaker)} | ({(later[1], other)} if len(later) > 1 else set())
    out = {}
    for r in rows:
        if r["session"] == test_session:
            out[r["utterance_id"]] = "test"
        elif (r["session"], r["gender"]) in val:
            out[r["utterance_id"]] = "val"
        else:
            out[r["utterance_id"]] = "train"
    return out


def ids_by_split(assignment: Mapping[str, str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    for u in sorted(assignment):
        out[assignment[u]].append(u)
    return out
