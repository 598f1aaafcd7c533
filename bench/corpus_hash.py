"""What does it cost DVC to depend on a large external corpus tree?

Builds a synthetic tree shaped like IEMOCAP_full_release (many small per-utterance
files, one wav per utterance, a few large videos), makes a throwaway DVC project whose
stage depends on it, and times (1) the first `dvc repro` (DVC hashes every byte),
(2) `dvc status` right after (DVC's state database answers from inode/mtime/size), and
(3) `dvc status` after touching one file.

    python bench/corpus_hash.py                   # about 4 GB, 40k files
    python bench/corpus_hash.py --scale 0.1       # quick look
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_tree(root: Path, scale: float) -> tuple[int, int]:
    n_utt = int(10_000 * scale)
    n_small = 3 * n_utt  # MOCAP_* / ForcedAlignment style per-utterance text
    n_video = max(int(150 * scale), 1)
    sizes = [(f"Session1/sentences/wav/d{i // 100:03d}/u{i:05d}.wav", 100_000) for i in range(n_utt)]
    sizes += [(f"Session1/sentences/MOCAP/d{i // 300:03d}/u{i:05d}.txt", 10_000) for i in range(n_small)]
    sizes += [(f"Session1/dialog/avi/DivX/d{i:03d}.avi", 20_000_000) for i in range(n_video)]
    total = 0
    for rel, nbytes in sizes:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(nbytes))
        total += nbytes
    return len(sizes), total


def timed(cmd: list[str], cwd: Path) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="1.0 = 10k wavs, 30k small files, 150 x 20 MB videos")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    dvc = str(Path(sys.executable).with_name("dvc"))
    work = Path(tempfile.mkdtemp(dir=args.workdir, prefix="corpus-hash-"))
    try:
        tree = work / "IEMOCAP_like"
        t = time.perf_counter()
        n_files, n_bytes = make_tree(tree, args.scale)
        print(f"tree: {n_files} files, {n_bytes / 1e9:.2f} GB (written in {time.perf_counter() - t:.0f} s)")
        proj = work / "proj"
        proj.mkdir()
        subprocess.run(["git", "init", "-q"], cwd=proj, check=True)
        subprocess.run([dvc, "init", "-q"], cwd=proj, check=True)
        (proj / "dvc.yaml").write_text(f"stages:\n  use:\n    cmd: echo ok > out.txt\n    deps: [{tree}]\n    outs: [out.txt]\n")
        subprocess.run(["sync"], check=True)
        cold = timed([dvc, "repro"], proj)
        warm = timed([dvc, "status"], proj)
        (tree / "Session1/sentences/wav/d000/u00000.wav").write_bytes(os.urandom(100_000))
        touched = timed([dvc, "status"], proj)
        rate = n_bytes / 1e6 / cold
        print(f"first dvc repro (hash everything): {cold:.1f} s ({rate:.0f} MB/s, {n_files / cold:.0f} files/s)")
        print(f"dvc status, nothing changed:       {warm:.1f} s")
        print(f"dvc status, one file changed:      {touched:.1f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
