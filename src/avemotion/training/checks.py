"""Refusing shards built under other params than the run's (`check_shards`,
`check_manifest_params`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from .config import TrainError


def check_shards(meta: Mapping, expected: Mapping, shard_dir: Path) -> None:
    """Refuse shards built under other params (classes, shapes) with the stage to rerun."""
    diffs = [f"{k}: shards have {meta.get(k)!r}, params give {v!r}" for k, v in expected.items() if meta.get(k) != v]
    if diffs:
        raise TrainError(
            f"{shard_dir} was built with other params ({'; '.join(diffs)}); rerun `dvc repro shard` "
            "(or `dvc repro` to rebuild everything that is stale)"
        )


#: params sections the shard stage records in manifest.json that shape the shards' contents
PREPROCESSING_SECTIONS = ("corpus", "labels", "audio", "video", "faces", "shards")
#: recorded keys that cannot change a shard's bytes: how many processes on which device the
#: faces stage used (it keeps them out of its own files), and what only the contact sheets show
NOT_COMPARED = frozenset({"faces.workers", "faces.device", "faces.contact_utterances", "faces.contact_frames"})


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}", out)
    else:
        out[prefix] = list(value) if isinstance(value, tuple) else value
    return out


def check_manifest_params(manifest: Mapping, params: Mapping, shard_dir: Path | str = "the shards") -> None:
    """Refuse shards whose recorded preprocessing params differ from the current params file.

    Compares every key of PREPROCESSING_SECTIONS (built from `params`, defaults filled
    in) with what the shard stage recorded in ``manifest["params"]``, except NOT_COMPARED;
    ``faces.weights`` is compared by file name. Raises TrainError naming each differing
    key with both values and the stage to rerun.
    """
    from ..config import as_dict, build
    from ..sections import section_classes

    classes = section_classes()
    recorded_all = manifest.get("params") or {}
    diffs = []
    for section in PREPROCESSING_SECTIONS:
        current = _flatten(as_dict(build(classes[section], params, section)), section, {})
        recorded = _flatten(recorded_all.get(section, {}), section, {})
        for key in sorted(set(current) | set(recorded)):
            if key in NOT_COMPARED:
                continue
            have, want = recorded.get(key, "<not recorded>"), current.get(key, "<not in params>")
            if key == "faces.weights":
                have, want = (Path(v).name if isinstance(v, str) else v for v in (have, want))
            if have != want:
                diffs.append(f"{key}: shards have {have!r}, params.yaml has {want!r}")
    if diffs:
        raise TrainError(
            f"{shard_dir} were built with other preprocessing params ({'; '.join(diffs)}); rerun "
            "`dvc repro shard` (it reruns the earlier stages those params belong to), or `dvc repro` "
            "to rebuild everything that is stale"
        )
