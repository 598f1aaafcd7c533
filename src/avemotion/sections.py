"""Every params.yaml section and the dataclass that reads it, built in one go.

Used to check a whole params file up front (tests, `configs/`), so an ablation with a
typo fails before hours of preprocessing rather than in the last stage.
"""

from __future__ import annotations

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


def build_all(params: Mapping[str, Any]) -> dict[str, Any]:
    """Build every section; unknown top-level sections are errors too."""
    from .config import ParamsError
    from .training import build_variants

    classes = section_classes()
    unknown = sorted(set(params) - set(classes) - {"variants"})
    if unknown:
        raise ParamsError(f"params: unknown section(s) {', '.join(unknown)}; valid: {', '.join([*classes, 'variants'])}")
    if isinstance(params.get("train"), dict) and "seed" in params["train"]:
        raise ParamsError("params: 'train.seed' is set per run by 'runs.seeds'; remove it from the train section")
    out = {name: build(cls, params, name) for name, cls in classes.items()}
    out["variants"] = build_variants(params)
    # checks across sections
    from .splits import check_folds

    check_folds(out["runs"], out["split"], out["corpus"].sessions)
    out["runs"].check_variants(list(out["variants"]))
    out["compare"].check_variants(list(out["variants"]))
    return out
