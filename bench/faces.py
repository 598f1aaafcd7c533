"""Benchmark the faces stage against the decode-only floor for the same frames.

    python bench/faces.py                      # demo corpus generated into a temp dir
    python bench/faces.py --fps 25 --seconds 6 --out-px 96   # the paper's frame rate
    python bench/faces.py --corpus /path/to/IEMOCAP_full_release
    python bench/faces.py --synthetic          # no demo generator: synthetic two-view dialogs

Runs extract and label (the pipeline scripts) into a temp dir, then, each in a fresh
process so peak memory is its own:

- ``floor``: decode exactly the frames the stage would use (same utterances, same
  chunks, same seeks, same worker count), nothing else;
- ``faces``: the whole stage (``faces.run``), writing its files to the temp dir;

once on the first session only and once on all sessions, to show that peak memory does
not grow with corpus size. Prints a Markdown section for BENCHMARKS.md. Params come from
--params (sections audio, video, faces) where present, else the demo values below;
command-line options override them. Timings on a shared machine are indicative only.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from avemotion import faces
from avemotion.audio import AudioConfig
from avemotion.config import as_dict, build, load_params
from avemotion.video import FrameReader, VideoConfig, VideoError

REPO = Path(__file__).resolve().parents[1]
DEMO = {  # the fast CPU demo settings proposed for params.yaml
    "audio": {"seconds": 3.0},
    "video": {"fps": 5},
    "faces": {"detector": "cascade", "out_px": 48, "detect_every": 5, "detect_scale": 0.5, "min_face_px": 80},
}


# ----------------------------------------------------------------------------- measuring (child process)


def _decode_chunk(args):
    root, chunk, fps = args
    frames = 0
    readers: dict[str, FrameReader | None] = {}
    for job in chunk:
        if job.video_path not in readers:
            try:
                readers[job.video_path] = FrameReader(Path(root) / job.video_path, job.video_path)
            except VideoError:
                readers[job.video_path] = None
        reader = readers[job.video_path]
        if reader is None:
            continue
        try:
            frames += len(reader.read(faces.utterance_frames(reader, job, fps)))
        except VideoError:
            pass
    for r in readers.values():
        if r is not None:
            r.close()
    return frames


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


class PeakMemory:
    """Peak resident memory of this process and of all its descendants together, sampled.

    (getrusage's ru_maxrss is no good here: Linux carries it over fork and exec.)
    """

    def __init__(self, every_s: float = 0.05):
        import threading

        self.peak_total = self.peak_main = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every_s,), daemon=True)
        self._thread.start()

    def _run(self, every_s: float) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            main = _rss_mib(me)
            todo, total = _children(me), main
            while todo:
                pid = todo.pop()
                total += _rss_mib(pid)
                todo += _children(pid)
            self.peak_main = max(self.peak_main, main)
            self.peak_total = max(self.peak_total, total)
            self._stop.wait(every_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def measure(mode: str, setup: dict) -> dict:
    utterances = pq.read_table(setup["utterances"])
    if setup["sessions"]:
        utterances = utterances.filter(pc.is_in(utterances["session"], pa.array(setup["sessions"], pa.int32())))
    labels = pq.read_table(setup["labels"])
    params = setup["params"]
    cfg = build(faces.FacesConfig, params, "faces")
    audio = build(AudioConfig, params, "audio")
    video = build(VideoConfig, params, "video")
    jobs = faces.plan_jobs(utterances, labels, audio, video)
    chunks = faces.chunk_jobs(jobs)
    workers = min(cfg.workers or faces.available_cores(), max(1, len(chunks)))
    memory = PeakMemory()
    t0 = time.perf_counter()
    if mode == "floor":
        if workers <= 1:
            frames = sum(_decode_chunk((setup["root"], c, video.fps)) for c in chunks)
        else:
            with cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                frames = sum(pool.map(_decode_chunk, [(setup["root"], c, video.fps) for c in chunks]))
        extra = {}
    else:
        out = Path(setup["out"])
        result = faces.run(utterances, labels, setup["root"], out / "faces", out / "contact", cfg, audio, video)
        frames = result.summary["frames"]
        extra = {k: result.summary[k] for k in ("cropped", "face_found", "rejected", "frames_searched", "frames_detected")}
        extra["bytes_written"] = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    seconds = time.perf_counter() - t0
    memory.stop()
    return {
        "mode": mode,
        "utterances": len(jobs),
        "frames": int(frames),
        "seconds": seconds,
        "workers": workers,
        "peak_rss_main_mib": round(memory.peak_main, 1),
        "peak_rss_total_mib": round(memory.peak_total, 1),
        **extra,
    }


# ----------------------------------------------------------------------------- corpus


def run_script(*args: str) -> None:
    subprocess.run([sys.executable, *args], check=True, cwd=REPO, stdout=subprocess.DEVNULL)


def synthetic_corpus(root: Path, sessions: int = 2, dialogs: int = 2, seconds: float = 60.0) -> pa.Table:
    """Two-view dialogs with moving faces and alternating 2-6 s utterances; returns utterances."""
    import cv2
    from skimage import data

    from avemotion.corpus import UTTERANCE_SCHEMA

    lfw = data.lfw_subset()
    rng = np.random.default_rng(0)
    rows = []
    for s in range(1, sessions + 1):
        for d in range(1, dialogs + 1):
            dialog = f"Ses0{s}F_impro0{d}"
            path = root / f"Session{s}/dialog/avi/DivX/{dialog}.avi"
            path.parent.mkdir(parents=True, exist_ok=True)
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"DIVX"), 30.0, (720, 480))
            bg = cv2.resize(rng.integers(60, 140, (60, 90, 3), dtype=np.uint8), (720, 480))
            bg[:122], bg[360:] = 0, 0
            fl = cv2.resize((lfw[2 * d] * 255).astype(np.uint8), (110, 110), interpolation=cv2.INTER_CUBIC)
            fr = cv2.resize((lfw[2 * d + 1] * 255).astype(np.uint8), (110, 110), interpolation=cv2.INTER_CUBIC)
            for i in range(int(seconds * 30)):
                frame = bg.copy()
                lx, rx = int(180 + 60 * np.sin(i / 40)), int(540 + 50 * np.cos(i / 55))
                frame[185:295, lx - 55 : lx + 55] = fl[..., None]
                frame[185:295, rx - 55 : rx + 55] = fr[..., None]
                writer.write(frame)
            writer.release()
            t, k = 0.5, {"F": 0, "M": 0}
            while True:
                speaker = "F" if len(rows) % 2 == 0 else "M"
                length = float(rng.uniform(2.0, 6.0))
                if t + length > seconds:
                    break
                uid = f"{dialog}_{speaker}{k[speaker]:03d}"
                k[speaker] += 1
                rows.append(
                    {
                        "utterance_id": uid, "session": s, "dialog": dialog, "improvised": True,
                        "speaker": speaker, "gender": speaker, "dialog_letter": "F",
                        "view": "left" if speaker == "F" else "right", "start": t, "end": t + length,
                        "wav_path": f"Session{s}/sentences/wav/{dialog}/{uid}.wav",
                        "video_path": f"Session{s}/dialog/avi/DivX/{dialog}.avi",
                        "n_samples": int(length * 16000), "sample_rate": 16000,
                    }
                )  # fmt: skip
                t += length + float(rng.uniform(0.1, 0.8))
    return pa.Table.from_pylist(sorted(rows, key=lambda r: r["utterance_id"]), schema=UTTERANCE_SCHEMA)


def prepare(args, tmp: Path, params: dict) -> tuple[Path, Path, Path, str]:
    """(corpus root, utterances.parquet, labels.parquet, description of the corpus)."""
    interim = tmp / "interim"
    interim.mkdir()
    if args.synthetic:
        root = tmp / "synthetic"
        table = synthetic_corpus(root)
        pq.write_table(table, interim / "utterances.parquet")
        pq.write_table(pa.table({"utterance_id": table["utterance_id"], "emotion": pa.array(["neu"] * table.num_rows)}), interim / "labels.parquet")
        return root, interim / "utterances.parquet", interim / "labels.parquet", "synthetic two-view dialogs (bench/faces.py --synthetic)"
    p = dict(params)
    if args.corpus:
        root = Path(args.corpus).resolve()
        what = f"corpus at {args.corpus}"
    else:
        root = tmp / "demo" / "IEMOCAP_full_release"
        try:
            from avemotion.demo import DemoConfig, write_demo_corpus
        except ImportError:
            sys.exit("avemotion.demo not found: pass --corpus PATH or --synthetic")
        write_demo_corpus(root, build(DemoConfig, p, "demo"))
        what = "demo corpus (avemotion.demo, params demo section)"
    (tmp / "params.yaml").write_text(json.dumps(p))
    run_script("pipeline/extract.py", "--params", str(tmp / "params.yaml"), "--corpus", str(root), "--out", str(interim))
    run_script("pipeline/label.py", "--params", str(tmp / "params.yaml"), "--utterances", str(interim / "utterances.parquet"), "--out", str(interim))
    return root, interim / "utterances.parquet", interim / "labels.parquet", what


def video_stats(root: Path, utterances: Path) -> str:
    paths = sorted(set(pq.read_table(utterances, columns=["video_path"])["video_path"].to_pylist()))
    frames, seconds = 0, 0.0
    for p in paths:
        try:
            with FrameReader(root / p, p) as r:
                frames += r.info.frame_count
                seconds += r.info.duration
                geometry = f"{r.info.width}x{r.info.height} at {r.info.fps:g} fps"
        except VideoError:
            pass
    return f"{len(paths)} dialog videos, {seconds / 60:.1f} min, {frames} frames, {geometry}"


# ----------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default=str(REPO / "params.yaml"))
    ap.add_argument("--corpus", help="an IEMOCAP_full_release tree (default: generate the demo corpus)")
    ap.add_argument("--synthetic", action="store_true", help="synthetic dialogs instead of the demo corpus")
    ap.add_argument("--workers", type=int, help="faces.workers (default: params, 0 = all cores)")
    ap.add_argument("--detector", choices=faces.DETECTORS)
    ap.add_argument("--detect-every", type=int)
    ap.add_argument("--fps", type=float, help="video.fps")
    ap.add_argument("--seconds", type=float, help="audio.seconds")
    ap.add_argument("--out-px", type=int, help="faces.out_px")
    ap.add_argument("--measure", help=argparse.SUPPRESS)  # internal: one measurement, JSON setup
    args = ap.parse_args()
    if args.measure:
        setup = json.loads(args.measure)
        print(json.dumps(measure(setup["mode"], setup)))
        return

    params = load_params(args.params) if Path(args.params).is_file() else {}
    for section, values in DEMO.items():
        params.setdefault(section, values)
    overrides = {"workers": args.workers, "detector": args.detector, "detect_every": args.detect_every, "out_px": args.out_px}
    params["faces"] = {**params["faces"], **{k: v for k, v in overrides.items() if v is not None}}
    if args.fps is not None:
        params["video"] = {**params["video"], "fps": args.fps}
    if args.seconds is not None:
        params["audio"] = {**params["audio"], "seconds": args.seconds}
    cfg = build(faces.FacesConfig, params, "faces")
    with tempfile.TemporaryDirectory(prefix="bench-faces-") as tmp:
        tmp = Path(tmp)
        root, utts, labels, what = prepare(args, tmp, params)
        sessions = sorted(set(pq.read_table(utts, columns=["session"])["session"].to_pylist()))
        runs = []
        for subset in ([sessions[0]], sessions):
            for mode in ("floor", "faces"):
                setup = {
                    "mode": mode, "root": str(root), "utterances": str(utts), "labels": str(labels),
                    "sessions": subset, "params": params, "out": str(tmp / f"out-{mode}-{len(subset)}"),
                }  # fmt: skip
                done = subprocess.run(
                    [sys.executable, __file__, "--measure", json.dumps(setup)], check=True, capture_output=True, text=True
                )
                m = json.loads(done.stdout.strip().splitlines()[-1])
                m["sessions"] = subset
                runs.append(m)
                print(json.dumps(m), file=sys.stderr)
        stats = video_stats(root, utts)

    print(report(runs, cfg, params, what, stats))


def report(runs, cfg, params, what, stats) -> str:
    lines = [
        "## Faces stage throughput",
        "",
        f"`python bench/faces.py` ({time.strftime('%Y-%m-%d')}, {machine()}). Input: {what}; {stats}.",
        f"Params: audio {json.dumps(params['audio'])}, video {json.dumps(params['video'])}, "
        f"faces {json.dumps({k: v for k, v in as_dict(cfg).items() if k in ('detector', 'detect_every', 'detect_scale', 'min_face_px', 'cascade_step', 'crop_px', 'out_px', 'workers')})}.",
        "",
        "| sessions | run | workers | utterances | frames | wall s | utt/s | frames/s | x floor | peak RSS MiB: main / all processes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    floor = {}
    for m in runs:
        key = len(m["sessions"])
        if m["mode"] == "floor":
            floor[key] = m["seconds"]
        ratio = m["seconds"] / floor[key] if key in floor else float("nan")
        lines.append(
            f"| {','.join(map(str, m['sessions']))} | {'decode only' if m['mode'] == 'floor' else 'faces stage'} | "
            f"{m['workers']} | {m['utterances']} | {m['frames']} | {m['seconds']:.1f} | {m['utterances'] / m['seconds']:.1f} | "
            f"{m['frames'] / m['seconds']:.0f} | {ratio:.2f} | {m['peak_rss_main_mib']:.0f} / {m['peak_rss_total_mib']:.0f} |"
        )
    last = [m for m in runs if m["mode"] == "faces"][-1]
    lines += [
        "",
        f"All sessions: {last['cropped']} cropped, {last['face_found']} with a face, rejected {last['rejected']}; "
        f"detector ran on {last['frames_searched']} frames and found a face on {last['frames_detected']}; "
        f"{last['bytes_written'] / 1e6:.1f} MB written.",
    ]
    return "\n".join(lines)


def machine() -> str:
    cores = faces.available_cores()
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem = float("nan")
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cores} cores ({cpu}), {mem:.0f} GB memory, Python {platform.python_version()}"


if __name__ == "__main__":
    main()
