"""Runs and splits: pure functions of the shards' index, the split params and the run."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from avemotion import sections, splits
from avemotion.config import ParamsError
from avemotion.splits import Run, RunsConfig, SplitConfig

CLASSES = ("ang", "hap", "neu", "sad")


def rows(n=400, sessions=5):
    return [{"utterance_id": f"Ses0{1 + i % sessions}F_impro01_{'FM'[i % 2]}{i:03d}", "session": 1 + i % sessions,
             "gender": "FM"[i % 2], "emotion": CLASSES[i * len(CLASSES) // n]} for i in range(n)]


def test_random_split_is_stratified_seeded_by_the_run_and_order_free():
    r = rows()
    a = splits.assign(r, SplitConfig(), Run(1, 1))
    assert a == splits.assign(list(reversed(r)), SplitConfig(), Run(1, 1))
    assert a != splits.assign(r, SplitConfig(), Run(1, 2))  # every seed re-draws the split
    assert a != splits.assign(r, SplitConfig(), Run(2, 1))  # and so does every fold label
    assert Counter(a.values()) == {"train": 240, "val": 80, "test": 80}
    strata = Counter((x["emotion"], x["gender"]) for x in r)
    assert len(strata) == 8
    for (emotion, g), n in strata.items():
        part = Counter(a[x["utterance_id"]] for x in r if x["emotion"] == emotion and x["gender"] == g)
        assert part == {"train": 0.6 * n, "val": 0.2 * n, "test": 0.2 * n}


@pytest.mark.parametrize("fold, val", [(1, (2, 3)), (3, (4, 5)), (5, (1, 2))])
def test_session_folds_keep_test_speakers_out_of_training(fold, val):
    r = rows()
    a = splits.assign(r, SplitConfig(method="session", val_speaker="M"), Run(fold, 9))
    assert a == splits.assign(r, SplitConfig(method="session", val_speaker="M"), Run(fold, 10))  # seeds only seed training
    by = {s: {(x["session"], x["gender"]) for x in r if a[x["utterance_id"]] == s} for s in splits.SPLITS}
    assert by["test"] == {(fold, "F"), (fold, "M")}
    # validation: val_speaker of the next session, the other gender of the one after (5 -> 1)
    assert by["val"] == {(val[0], "M"), (val[1], "F")}
    assert by["train"] == {(s, g) for s in range(1, 6) for g in "FM"} - by["test"] - by["val"]
    with pytest.raises(ValueError, match="fold 7 is a test session"):
        splits.assign(r, SplitConfig(method="session"), Run(7, 1))
    two = [x for x in r if x["session"] in (1, 2)]  # two sessions: one validation speaker
    a = splits.assign(two, SplitConfig(method="session"), Run(2, 1))
    assert {(x["session"], x["gender"]) for x in two if a[x["utterance_id"]] == "val"} == {(1, "F")}


def test_runs_are_folds_times_seeds_and_named_like_their_stages():
    cfg = RunsConfig(seeds=(1, 2), folds=(3, 5), every_run=("MM-static",), first_run=("UM-dynamic-A",))
    assert [r.id for r in cfg.runs()] == ["fold3-seed1", "fold3-seed2", "fold5-seed1", "fold5-seed2"]
    assert cfg.runs_of("MM-static") == cfg.runs() and cfg.runs_of("UM-dynamic-A") == [Run(3, 1)]
    assert cfg.stage("MM-static", Run(5, 2)) == "train@MM-static-5-2"
    assert cfg.stage("UM-dynamic-A", Run(3, 1)) == "train-first@UM-dynamic-A-3-1"


def params(**overrides):
    p = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    for section, values in overrides.items():
        p.setdefault(section, {}).update(values)
    return p


def test_bad_runs_and_pairs_are_named():
    cfg = sections.build_all(params())
    assert len(cfg["runs"].runs_of("MM-dynamic")) >= 5  # the demo compares at least five paired runs
    with pytest.raises(ParamsError, match=r"runs.folds' names session\(s\) \[6\]"):
        sections.build_all(params(runs={"folds": [1, 6]}, split={"method": "session"}))
    sections.build_all(params(runs={"folds": [6]}, split={"method": "random"}))  # a label under random
    with pytest.raises(ParamsError, match="compare.pairs' names variant 'MM-magic'"):
        sections.build_all(params(compare={"pairs": [["MM-magic", "MM-static"]]}))
    with pytest.raises(ParamsError, match="runs.seeds' lists a value twice"):
        sections.build_all(params(runs={"seeds": [1, 1]}))
    with pytest.raises(ParamsError, match="train.seed' is set per run by 'runs.seeds'"):
        sections.build_all(params(train={"seed": 3}))
    with pytest.raises(ParamsError, match=r"\['MM-uncertainty'\] are in neither 'runs.every_run'"):
        sections.build_all(params(runs={"every_run": ["MM-static", "MM-dynamic"], "first_run": ["UM-dynamic-A", "UM-dynamic-V"]}))
    with pytest.raises(ParamsError, match="in both"):
        sections.build_all(params(runs={"every_run": ["MM-static", "MM-dynamic", "MM-uncertainty"]}))
