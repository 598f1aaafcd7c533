"""Every params.yaml section and the dataclass that reads it, built in one go.

Every stage checks the whole params file through `load_checked` (and tests check
`configs/` through `build_all`), so an ablation with a typo fails before hours of
preprocessing rather than in the last stage. A new section is one line in
`section_classes`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from .config import build


def section_classes() -> dict[str, type]:
    from .audio import AudioConfig
    from .corpus import CorpusConfig
    from .demo import DemoConfig
    from .faces import FacesConfig
    from .labels import LabelsConfig
    from .model import ModelConfig
    from .shards import ShardsConfig
    from .splits import RunsConfig, SplitConfig
    from .stats import CompareConfig
    from .training import TrainConfig
    from .video import VideoConfig

    return {
        "demo": DemoConfig,
        "corpus": CorpusConfig,
        "labels": LabelsConfig,
        "audio": AudioConfig,
        "video": VideoConfig,
        "faces": FacesConfig,
        "split": SplitConfig,
        "shards": ShardsConfig,
        "model": ModelConfig,
        "train": TrainConfig,
        "runs": RunsConfig,
        "compare": CompareConfig,
    }


#: sections that are not one dataclass each (checked by their own builder)
SPECIAL_SECTIONS = ("variants",)


def check_sections(params: Mapping[str, Any]) -> dict[str, Any]:
    """Check every section present in a params file, whichever stage is running.

    Unknown top-level sections and unknown or mistyped keys in any section are errors
    naming the key and the valid ones, so a typo in a section a stage does not read
    fails at the first stage that runs (before DVC has deleted any stage's outputs),
    not hours later. Sections left out take their defaults where they have them; the
    stage that needs a required one says so. Returns the sections it built.
    """
    from .config import ParamsError
    from .training import build_variants

    classes = section_classes()
    valid = [*classes, *SPECIAL_SECTIONS]
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ParamsError(f"params: unknown section(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    if isinstance(params.get("train"), dict) and "seed" in params["train"]:
        raise ParamsError("params: 'train.seed' is set per run by 'runs.seeds'; remove it from the train section")
    built = {name: build(cls, params, name) for name, cls in classes.items() if name in params}
    if "variants" in params:
        built["variants"] = build_variants(params)
    _check_across(built)
    return built


def _check_across(built: Mapping[str, Any]) -> None:
    """Checks across sections, where the sections involved are there."""
    from .splits import check_folds

    if {"runs", "split", "corpus"} <= set(built):
        check_folds(built["runs"], built["split"], built["corpus"].sessions)
    if {"runs", "variants"} <= set(built):
        built["runs"].check_variants(list(built["variants"]))
    if {"compare", "variants"} <= set(built):
        built["compare"].check_variants(list(built["variants"]))


def load_checked(path: str | Path) -> dict[str, Any]:
    """A params file, read and checked whole (`check_sections`); the stages' way in."""
    from .config import load_params

    params = load_params(path)
    check_sections(params)
    return params


def build_all(params: Mapping[str, Any]) -> dict[str, Any]:
    """Build every section (defaults for those left out); unknown sections are errors too."""
    from .training import build_variants

    out = check_sections(params)
    for name, cls in section_classes().items():
        if name not in out:  # left out: its defaults, or the error naming the missing section
            out[name] = build(cls, params, name)
    if "variants" not in out:
        out["variants"] = build_variants(params)
    _check_across(out)  # again, now that defaults stand in for the sections left out
    return out
