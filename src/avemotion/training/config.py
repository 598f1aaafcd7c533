"""The `train` and `variants` params: `TrainConfig`, `VariantConfig`, `build_variants`; `TrainError`."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, Mapping

TASKS = ("emotion", "gender")
MODALITIES = ("audio", "video")


class TrainError(ValueError):
    """Bad training input (variant, shards, device); the message says what to do."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """params.yaml `train` (defaults: the authors' code, see PAPER.md)."""

    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-4
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd only
    schedule: Literal["step", "cosine", "none"] = "step"
    step_epochs: int = 10  # step schedule: multiply lr by gamma every step_epochs
    gamma: float = 0.1
    epochs: int = 100
    batch: int = 1
    clip: float = 1.0  # max gradient norm; 0 = off
    seed: int = 2018
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA if present, else CPU
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"  # auto: bf16 on CUDA, off on CPU
    workers: int = 0  # DataLoader worker processes
    threads: int = 0  # torch CPU threads; 0 = torch's default
    nproc: int = 1  # training processes on this machine (one per GPU); > 1 runs under torchrun

    def validate(self, where: str = "train") -> None:
        from ..config import ParamsError

        for key in ("lr", "epochs", "batch", "nproc"):
            if getattr(self, key) <= 0:
                raise ParamsError(f"params: '{where}.{key}' must be > 0")


@dataclasses.dataclass(frozen=True)
class VariantConfig:
    """One entry of params.yaml `variants`: which streams, which loss weighting."""

    modalities: tuple[str, ...]
    weighting: str
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def validate(self, where: str = "variant") -> None:
        from ..config import ParamsError

        bad = [m for m in self.modalities if m not in MODALITIES]
        if bad or not self.modalities or len(set(self.modalities)) != len(self.modalities):
            raise ParamsError(
                f"params: '{where}.modalities' is {list(self.modalities)}; use a non-empty list of "
                f"{', '.join(MODALITIES)}"
            )
        from ..weighting import _OPTIONS, WEIGHTINGS

        if self.weighting not in WEIGHTINGS:
            raise ParamsError(
                f"params: '{where}.weighting' is {self.weighting!r}; valid values: {', '.join(WEIGHTINGS)}"
            )
        unknown = sorted(set(self.options) - set(_OPTIONS[self.weighting]))
        if unknown:
            raise ParamsError(
                f"params: unknown key(s) {', '.join(f'{where}.options.{k}' for k in unknown)}; weighting "
                f"{self.weighting!r} takes options: {', '.join(_OPTIONS[self.weighting]) or 'none'}"
            )


def build_variants(params: Mapping) -> dict[str, VariantConfig]:
    """params.yaml `variants` (name -> modalities, weighting, options) as dataclasses."""
    from ..config import ParamsError, build

    raw = params.get("variants")
    if not isinstance(raw, Mapping) or not raw:
        raise ParamsError("params: 'variants' must map variant names to {modalities, weighting, options}")
    return {name: build(VariantConfig, {f"variants.{name}": raw[name]}, f"variants.{name}") for name in raw}
