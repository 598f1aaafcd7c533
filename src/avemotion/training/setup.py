"""What a run sets up before its first step: processes (DDP, the torchrun launch), device,
autocast dtype, seeds, optimizer and learning-rate schedule."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import warnings
from typing import Iterable, Mapping, Sequence

import torch
import torch.distributed as dist
import torch.nn as nn

from .config import TrainConfig, TrainError

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def master(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str) -> Dist:
    """Join the process group when started by torchrun (RANK/WORLD_SIZE set)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def torchrun_command(nproc: int, argv: Sequence[str], env: Mapping[str, str]) -> list[str] | None:
    """The command that runs the script `argv` (path and arguments) in `nproc` processes.

    It uses torchrun (``python -m torch.distributed.run --standalone``), single node, on a
    free port. The result is None where the script should go on in this process: with
    nproc 1 (no torchrun start-up cost for the many small runs), or when torchrun started
    it already (this command, or by hand across several nodes). Raises TrainError when
    torchrun started another number of processes per node than `train.nproc`: the
    params record how a run was trained.
    """
    if "LOCAL_WORLD_SIZE" in env:  # set by torchrun for every process it starts
        local = int(env["LOCAL_WORLD_SIZE"])
        if local != nproc:
            raise TrainError(
                f"torchrun started {local} process(es) per node but train.nproc is {nproc}; set "
                f"train.nproc: {local} (the params record how a run was trained) or launch with --nproc_per_node {nproc}"
            )
        return None
    if nproc == 1:
        return None
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *argv]


def choose_device(cfg: TrainConfig, d: Dist = Dist()) -> torch.device:
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise TrainError("train.device is cuda but no CUDA device is available; set train.device: auto or cpu")
    if cfg.device == "auto" and not torch.cuda.is_available():
        warnings.warn("no CUDA device found: training on CPU (set train.device: cpu to silence this)", stacklevel=2)
    if cfg.device == "cpu" or not torch.cuda.is_available():
        device = torch.device("cpu")
    else:
        if d.local_rank >= torch.cuda.device_count():
            raise TrainError(
                f"process {d.local_rank} of this node has no GPU of its own: {torch.cuda.device_count()} visible, "
                f"{d.world} processes in all; set train.nproc to at most the number of GPUs per node"
            )
        device = torch.device("cuda", d.local_rank)
        torch.cuda.set_device(device)
    if d.world > 1:
        log.info("training on %s, process %d of %d", device, d.rank + 1, d.world)
    else:
        log.info("training on %s", device)
    return device


def amp_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    if cfg.amp == "off" or (cfg.amp == "auto" and device.type != "cuda"):
        return None
    if cfg.amp == "fp16" and device.type != "cuda":
        raise TrainError("train.amp: fp16 needs CUDA; use bf16 or off on CPU")
    return torch.float16 if cfg.amp == "fp16" else torch.bfloat16


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def make_optimizer(params: Iterable[nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig):
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_epochs, gamma=cfg.gamma)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
