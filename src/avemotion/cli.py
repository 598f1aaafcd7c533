"""Small helpers shared by the stage entry points in pipeline/ (logging, summaries, errors)."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from typing import Any, Iterator

from .config import ParamsError
from .files import OutputError


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )


def print_summary(stage: str, summary: dict[str, Any]) -> None:
    """A short human summary of what a stage kept and dropped, by reason."""
    print(f"[{stage}] " + json.dumps(summary, indent=2, sort_keys=True).replace("\n", f"\n[{stage}] "))


@contextlib.contextmanager
def user_errors(stage: str, *errors: type[BaseException]) -> Iterator[None]:
    """Turn expected errors (bad params, bad corpus, a failed write) into one clear line and exit 1.

    A bare traceback helps nobody who linked the corpus to the wrong folder or whose disk
    is full.
    """
    try:
        yield
    except (ParamsError, OutputError, *errors) as exc:
        print(f"[{stage}] error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
