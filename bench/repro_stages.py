"""`make repro` on a fresh clone, stage by stage.

    python bench/repro_stages.py             # clones this repository into a temporary folder
    python bench/repro_stages.py --keep DIR  # ... into DIR, and keeps it

Clones the committed HEAD (as a new user would), links the project's existing .venv
into the clone (so the time is the pipeline's, not pip's; `make setup` on a fresh
machine adds a few minutes once), runs `make repro` and times every stage from the
line DVC prints when it starts the stage to the next such line (so a stage's time
includes DVC's own bookkeeping for it). Prints a Markdown table, the total wall time,
and the demo's conclusion (the first lines of results/report.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", type=Path, default=None, help="clone into this folder and keep it")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-repro-"))
    clone = work / "clone"
    try:
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        os.symlink(ROOT / ".venv", clone / ".venv")
        env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
        env.pop("PYTHONPATH", None)
        starts: list[tuple[str, float]] = []
        t0 = time.perf_counter()
        # the linked .venv is installed already: skip `make setup` by making its stamp newer
        subprocess.run(["touch", str(ROOT / ".venv" / ".installed")], check=True)
        proc = subprocess.Popen(["make", "repro"], cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        log = []
        for line in proc.stdout:
            log.append(line)
            m = re.match(r"Running stage '([^']+)'", line)
            if m:
                starts.append((m.group(1), time.perf_counter()))
        proc.wait()
        total = time.perf_counter() - t0
        if proc.returncode != 0:
            print("".join(log[-60:]))
            raise SystemExit(f"make repro failed with exit code {proc.returncode}")
        ends = [t for _, t in starts[1:]] + [t0 + total]
        groups: dict[str, list[float]] = defaultdict(list)
        print("| stage | wall s |\n|---|---|")
        for (name, start), end in zip(starts, ends):
            print(f"| {name} | {end - start:.1f} |")
            groups[name.split("@")[0]].append(end - start)
        print(f"\nbefore the first stage (link, setup check): {starts[0][1] - t0:.1f} s" if starts else "")
        print("\n| stage group | stages | wall s | mean s per stage |\n|---|---|---|---|")
        for name, times in groups.items():
            print(f"| {name} | {len(times)} | {sum(times):.1f} | {sum(times) / len(times):.1f} |")
        print(f"\n**make repro: {total:.0f} s ({total / 60:.1f} min)**, {platform.machine()}, {os.cpu_count()} cores")
        report = (clone / "results" / "report.md").read_text().splitlines()
        print("\n" + "\n".join(report[: report.index("## Table 1, with 95% intervals over runs") if "## Table 1, with 95% intervals over runs" in report else 30]))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
