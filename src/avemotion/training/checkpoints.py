"""Checkpoints: saving and loading, the config digest, and the digest of the training code."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Mapping

import torch

from ..files import atomic_path


def config_digest(resolved: Mapping) -> str:
    return hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest()[:16]


#: what best.pt keeps of an epoch's state: enough to evaluate it and to know whose it is
BEST_KEYS = ("model", "weighting", "epoch", "best", "config", "digest")


#: The modules whose code decides the weights a run learns. A change to any of them (a
#: changed dependency of the train stages, so DVC reruns them) trains from scratch: a
#: checkpoint written by other code is never resumed from, nor taken as finished. The
#: metrics code is not among them: a finished run re-evaluates its best checkpoint with
#: the current metrics code.
TRAINING_CODE = ("training", "model", "audioconv", "weighting", "shards")


def _source_bytes(module: str) -> bytes:
    """A module's source; a package's is every .py file in it, named, in path order.

    `module` is a module or package of the library (``avemotion``), e.g. ``"training"``.
    Only file contents and paths relative to the package count, so the digest is the
    same in every checkout.
    """
    import importlib

    library = __package__.rpartition(".")[0]  # this file is <library>.training.checkpoints
    path = Path(importlib.import_module(f"{library}.{module}").__file__)
    if path.name != "__init__.py":
        return path.read_bytes()
    files = sorted((f.relative_to(path.parent).as_posix(), f) for f in path.parent.rglob("*.py"))
    return b"".join(f"{name}\0".encode() + f.read_bytes() for name, f in files)


def code_digest() -> str:
    """sha256 of the source files of TRAINING_CODE, part of every checkpoint's digest."""
    h = hashlib.sha256()
    for module in TRAINING_CODE:
        source = _source_bytes(module)
        h.update(f"{module}\0{len(source)}\0".encode() + source)
    return h.hexdigest()


def save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)
