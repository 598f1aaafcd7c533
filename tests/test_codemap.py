"""The README's code map names every library module and package, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "src" / "avemotion"


def code_map() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Code map", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"^\| `([^`]+)` \|", section, flags=re.M)


def test_the_code_map_lists_every_module_once():
    modules = sorted(
        p.name + ("/" if p.is_dir() else "")
        for p in LIBRARY.iterdir()
        if (p.suffix == ".py" and p.name != "__init__.py") or (p / "__init__.py").is_file()
    )
    listed = code_map()
    assert len(listed) == len(set(listed)), listed
    assert sorted(listed) == modules


def test_the_code_map_names_real_stages():
    stages = set(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Code map", 1)[1].split("\n### ", 1)[0]
    named = {
        s.strip("`").split("@")[0]
        for row in re.findall(r"^\| `[^`]+` \| ([^|]+) \|", section, flags=re.M)
        for s in row.split(", ")
        if s.startswith("`") and not s.startswith("`make")
    }
    assert named and named <= stages, named - stages
