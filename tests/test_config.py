"""params.yaml -> dataclasses: every section of the shipped params files loads, typos fail loudly."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import pytest

from avemotion.config import ParamsError, as_dict, build, load_params

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Inner:
    width: int = 3


@dataclasses.dataclass(frozen=True)
class Example:
    name: str
    ratio: float = 0.5
    mode: Literal["a", "b"] = "a"
    items: tuple[int, ...] = (1, 2)
    weights: str | None = None
    inner: Inner = Inner()


def test_build_checks_types_and_keys():
    e = build(Example, {"s": {"name": "x", "ratio": 1, "items": [3], "inner": {"width": 4}}}, "s")
    assert e == Example(name="x", ratio=1.0, items=(3,), inner=Inner(4))
    assert as_dict(e)["items"] == [3]
    with pytest.raises(ParamsError, match=r"missing key 's.name'"):
        build(Example, {"s": {}}, "s")
    with pytest.raises(ParamsError, match=r"unknown key\(s\) s.nmae; valid keys of 's': inner, items, mode, name, ratio, weights"):
        build(Example, {"s": {"name": "x", "nmae": 1}}, "s")
    with pytest.raises(ParamsError, match=r"'s.mode' is 'c'; valid values: 'a', 'b'"):
        build(Example, {"s": {"name": "x", "mode": "c"}}, "s")
    with pytest.raises(ParamsError, match=r"'s.ratio' must be a number"):
        build(Example, {"s": {"name": "x", "ratio": "half"}}, "s")
    with pytest.raises(ParamsError, match=r"'s.inner.width' must be an integer"):
        build(Example, {"s": {"name": "x", "inner": {"width": 1.5}}}, "s")
    with pytest.raises(ParamsError, match=r"'s.items\[1\]' must be an integer"):
        build(Example, {"s": {"name": "x", "items": [1, True]}}, "s")
    with pytest.raises(ParamsError, match=r"section 's' is missing"):
        build(Example, {}, "s")


def _keys(tree, prefix=""):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield f"{prefix}{k}"
            yield from _keys(v, f"{prefix}{k}.")
    elif isinstance(tree, list):
        for v in tree:
            yield from _keys(v, prefix)


@pytest.mark.parametrize("path", [ROOT / "params.yaml", *sorted((ROOT / "configs").glob("*.yaml"))], ids=lambda p: p.name)
def test_params_files_never_use_keys_dvc_ignores(path: Path):
    # DVC's run-cache ignores keys named size or nfiles (treeverse/dvc#10296)
    bad = [k for k in _keys(load_params(path)) if k.rsplit(".", 1)[-1] in ("size", "nfiles")]
    assert bad == []


def test_fixed_length_tuples_are_checked_in_order():
    @dataclasses.dataclass(frozen=True)
    class Fr:
        fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)

    assert build(Fr, {"s": {"fractions": [0.5, 0.25, 0.25]}}, "s").fractions == (0.5, 0.25, 0.25)
    with pytest.raises(ParamsError, match=r"'s.fractions' must have 3 items"):
        build(Fr, {"s": {"fractions": [0.5, 0.5]}}, "s")
    with pytest.raises(ParamsError, match=r"'s.fractions\[2\]' must be a number"):
        build(Fr, {"s": {"fractions": [0.5, 0.5, "x"]}}, "s")


@pytest.mark.parametrize("path", [ROOT / "params.yaml", *sorted((ROOT / "configs").glob("*.yaml"))], ids=lambda p: p.name)
def test_shipped_params_files_build_completely(path: Path):
    from avemotion.sections import build_all

    sections = build_all(load_params(path))
    assert set(sections["variants"]) >= {"MM-static", "MM-dynamic", "UM-dynamic-A", "UM-dynamic-V", "MM-uncertainty"}


def test_unknown_section_and_variant_errors():
    from avemotion.sections import build_all
    from avemotion.training import build_variants

    params = load_params(ROOT / "params.yaml")
    with pytest.raises(ParamsError, match="unknown section.*trian"):
        build_all({**params, "trian": {}})
    with pytest.raises(ParamsError, match=r"variants.X.modalities.*audio, video"):
        build_variants({"variants": {"X": {"modalities": ["audio", "smell"], "weighting": "static"}}})


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_real_corpus_configs_still_learn_in_their_last_epoch(path: Path):
    # the authors' x0.1 every 10 epochs leaves 1e-13 for the last epochs of 100
    import torch

    from avemotion.training import TrainConfig, make_scheduler

    cfg = build(TrainConfig, load_params(path), "train")
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = make_scheduler(opt, cfg)
    for _ in range(cfg.epochs - 1):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] >= 0.01 * cfg.lr


def test_an_old_corpus_root_says_what_replaced_it():
    from avemotion.corpus import CorpusConfig

    with pytest.raises(ParamsError, match=r"corpus.root' is no longer a param.*make corpus ROOT="):
        build(CorpusConfig, {"corpus": {"root": "/data/IEMOCAP_full_release"}}, "corpus")


# ----------------------------------------------------------------------------- every stage checks it all

STAGE_FAULTS = {
    # stage -> a fault in a part of params.yaml that stage itself never reads
    "demo": ("trian", {"epochs": 3}),
    "extract": ("model", {"dropuot": 0.5}),
    "label": ("faces", {"crop_pix": 200}),
    "faces": ("train", {"lr": "fast"}),
    "shard": ("trian", {"epochs": 3}),
    "train": ("demo", {"sesions": [1]}),
    "compare": ("corpus", {"dialog": "all"}),
}


@pytest.mark.parametrize("stage", sorted(STAGE_FAULTS))
def test_every_stage_refuses_a_typo_anywhere_in_params(stage, tmp_path):
    import subprocess
    import sys

    import yaml

    params = load_params(ROOT / "params.yaml")
    section, values = STAGE_FAULTS[stage]
    if section in params:
        params[section] = {**params[section], **values}
    else:
        params[section] = values
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    args = ["--variant", "MM-static", "--fold", "1", "--seed", "0"] if stage == "train" else []
    done = subprocess.run(
        [sys.executable, str(ROOT / "pipeline" / f"{stage}.py"), "--params", "params.yaml", *args],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    bad_key = section if section not in load_params(ROOT / "params.yaml") else f"{section}.{next(iter(values))}"
    assert bad_key in done.stderr and "Traceback" not in done.stderr
    assert "valid" in done.stderr or "must be" in done.stderr
    assert not (tmp_path / "data").exists()  # nothing written before the check


def test_check_sections_names_the_key_and_the_valid_ones():
    from avemotion.sections import check_sections

    params = load_params(ROOT / "params.yaml")
    check_sections(params)
    check_sections({"faces": {"detector": "cascade"}})  # sections left out take their defaults
    with pytest.raises(ParamsError, match=r"unknown section\(s\) trian; valid: .*train"):
        check_sections({**params, "trian": {"epochs": 1}})
    with pytest.raises(ParamsError, match=r"shards.target_mbb.*valid keys of 'shards'.*target_mb"):
        check_sections({**params, "shards": {**params["shards"], "target_mbb": 4}})
    with pytest.raises(ParamsError, match=r"variants.MM-static"):
        check_sections({**params, "variants": {"MM-static": {"modalities": ["audio"], "weighting": "statik"}}})
