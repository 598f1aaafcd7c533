"""Worker processes: chunks of work cropped in parallel, results in a fixed order."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import cv2

from .config import FacesConfig
from .crop import FaceJob, FaceResult, crop_chunk
from .detectors import make_detector

#: units of work in flight per worker: bounds memory whatever the corpus size
IN_FLIGHT_PER_WORKER = 2
#: seconds between a worker's checks that the stage's main process is still there
PARENT_POLL_S = 1.0


_WORKER: dict[str, Any] = {}


def die_with_parent(parent: int) -> None:
    """End this worker process as soon as the stage's main process `parent` is gone.

    A main process killed outright (SIGKILL, the OOM killer) runs no cleanup, and pool
    workers blocked on their task queue would otherwise live on forever under PID 1,
    holding GPU memory with sfd, and keeping multiprocessing's resource tracker alive
    (it exits when the last worker holding its pipe does). On Linux the kernel sends the
    worker SIGKILL when its parent dies (prctl PR_SET_PDEATHSIG); everywhere, a daemon
    thread also checks every PARENT_POLL_S seconds that the parent is still the parent.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            PR_SET_PDEATHSIG = 1
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no libc prctl: the thread below still works
            pass
    if os.getppid() != parent:  # died before the line above took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_S)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def worker_devices(device: str | None, workers: int) -> list[str | None]:
    """The device of each of `workers` worker processes (one entry each, at least one).

    With ``cuda`` the workers spread over every visible GPU: worker k uses cuda:(k mod n)
    for n GPUs (``CUDA_VISIBLE_DEVICES`` chooses which), so a machine with several GPUs
    detects on all of them. ``cpu`` and None (the cascade) are the same for every worker.
    """
    if device != "cuda":
        return [device] * max(workers, 1)
    import torch

    n = max(torch.cuda.device_count(), 1)
    return [f"cuda:{k % n}" for k in range(max(workers, 1))]


def _init_worker(
    root: str, cfg: FacesConfig, fps: float, weights: str | None, devices, threads: int, parent: int
) -> None:
    die_with_parent(parent)
    device = devices.get()  # one entry of worker_devices per worker process
    cv2.setNumThreads(threads)
    if cfg.detector != "cascade":
        import torch

        torch.set_num_threads(threads)
    _WORKER.update(root=Path(root), cfg=cfg, fps=fps, device=device, detector=make_detector(cfg, weights, device))


def _work(chunk: list[FaceJob]) -> list[FaceResult]:
    w = _WORKER
    return crop_chunk(chunk, w["root"], w["cfg"], w["fps"], w["detector"])


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def iter_results(
    chunks: Sequence[list[FaceJob]],
    root: Path,
    cfg: FacesConfig,
    fps: float,
    weights: str | None,
    device: str | None,
    workers: int,
) -> Iterator[FaceResult]:
    """Results of all chunks, in chunk order, computed by `workers` processes.

    At most IN_FLIGHT_PER_WORKER chunks per worker are pending at a time, so memory does
    not grow with the corpus. With one worker everything runs in this process. Worker k
    detects on ``worker_devices(device, workers)[k]`` (with ``cuda``: every visible GPU).
    """
    devices = worker_devices(device, workers)
    if workers <= 1:
        detector = make_detector(cfg, weights, devices[0])
        for chunk in chunks:
            yield from crop_chunk(chunk, root, cfg, fps, detector)
        return
    threads = max(1, available_cores() // workers)
    # spawn, not fork: safe with torch/CUDA and OpenMP state in the parent
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.SimpleQueue()  # each worker process takes its device from it, once
    for d in devices:
        queue.put(d)
    pool = cf.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(str(root), cfg, fps, weights, queue, threads, os.getpid()),
    )
    try:
        pending: list[cf.Future] = []
        todo = iter(chunks)
        for chunk in todo:
            pending.append(pool.submit(_work, chunk))
            if len(pending) >= workers * IN_FLIGHT_PER_WORKER:
                break
        while pending:
            done = pending.pop(0).result()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(pool.submit(_work, nxt))
            yield from done
    finally:
        # interrupted (Ctrl-C, an error while writing): drop the queued work, not wait for it
        pool.shutdown(wait=True, cancel_futures=True)
