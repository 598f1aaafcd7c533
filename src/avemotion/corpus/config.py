"""Params section ``corpus`` (which sessions and dialogs) and the error a bad corpus raises."""

from __future__ import annotations

import dataclasses
from typing import Literal


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
        from ..config import ParamsError

        if not self.sessions:
            raise ParamsError(f"params: '{where}.sessions' is empty; list at least one of 1-5")
        if len(set(self.sessions)) != len(self.sessions) or any(s < 1 for s in self.sessions):
            raise ParamsError(
                f"params: '{where}.sessions' must list distinct positive session numbers, "
                f"got {list(self.sessions)}"
            )
