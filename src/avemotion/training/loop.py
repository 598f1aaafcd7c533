"""The steps: a batch to the device, the task losses, one training epoch, evaluation."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

from .config import TASKS
from .setup import Dist


def to_device(batch: Mapping[str, Any], device: torch.device, modalities: Iterable[str]) -> dict:
    """Move a batch; uint8 frames and int16 audio stay integer until the model converts them."""
    nb = device.type == "cuda"
    out = {k: batch[k].to(device, non_blocking=nb) for k in ("emotion", "gender", "steps")}
    out["audio"] = batch["audio"].to(device, non_blocking=nb) if "audio" in modalities else None
    out["faces"] = batch["faces"].to(device, non_blocking=nb) if "video" in modalities else None
    return out


def task_losses(model: nn.Module, b: Mapping[str, Any], autocast) -> tuple[dict[str, torch.Tensor], dict]:
    with autocast():
        out = model(b["audio"], b["faces"], b["steps"])
    losses = {
        "emotion": F.cross_entropy(out["emotion"].float(), b["emotion"]),
        "gender": F.cross_entropy(out["gender"].float(), b["gender"]),
    }
    return losses, out


def train_one_epoch(
    model: nn.Module,
    weighting: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    modalities: tuple[str, ...],
    clip: float,
    autocast,
    scaler: torch.amp.GradScaler,
    d: Dist,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> dict[str, float]:
    """One pass over the training loader; returns sample-weighted means.

    `weighted` is sum_k w_k L_k with each step's weights (the same quantity as the
    validation `weighted`); `extra` is what the weighting adds to the loss it
    backpropagates beyond that (uncertainty's + s_k terms, GradNorm's gradient loss;
    0 for static, dynamic and dwa).
    """
    model.train()
    weighting.train()
    sums = {"nll_emotion": 0.0, "nll_gender": 0.0, "weighted": 0.0, "extra": 0.0}
    n = 0
    it = progress(loader) if progress else loader
    for batch in it:
        b = to_device(batch, device, modalities)
        losses, _ = task_losses(model, b, autocast)
        optimizer.zero_grad(set_to_none=True)
        shared = _unwrap(model).last_shared_parameters() if weighting.needs_shared else None
        wl = weighting(losses, shared=shared, scaler=scaler)  # GradNorm's extra backward happens here
        joint, weights = wl.loss, wl.weights
        scaler.scale(joint).backward()  # the weighting averages its own gradients over DDP ranks
        if clip > 0:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(_unwrap(model).parameters(), clip)
        scaler.step(optimizer)
        scaler.update()
        weighting.after_step()
        k = b["emotion"].shape[0]
        n += k
        sums["nll_emotion"] += losses["emotion"].item() * k
        sums["nll_gender"] += losses["gender"].item() * k
        weighted = float((wl.weight_tensor * torch.stack([losses[t].detach() for t in wl.tasks])).sum())
        sums["weighted"] += weighted * k
        sums["extra"] += (joint.item() - weighted) * k
        if progress and hasattr(it, "set_postfix"):
            it.set_postfix(
                L_e=f"{sums['nll_emotion'] / n:.3f}", L_g=f"{sums['nll_gender'] / n:.3f}",
                w_e=f"{weights['emotion']:.3f}", w_g=f"{weights['gender']:.3f}",
            )
    means = {k: v / max(n, 1) for k, v in sums.items()}
    if d.world > 1:
        t = torch.tensor([means[k] * n for k in sums] + [n], dtype=torch.float64)
        dist.all_reduce(t)
        means = {k: float(t[i] / max(t[-1], 1)) for i, k in enumerate(sums)}
    return means


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    modalities: tuple[str, ...],
    weights: Mapping[str, float],
    autocast,
) -> tuple[dict[str, float], dict[str, list]]:
    """Per-task mean NLLs, their sum, the weighted task loss; and per-utterance predictions.

    `weighted` = w_e * nll_emotion + w_g * nll_gender with the given weights, the
    validation counterpart of the training `weighted` (no weighting's extra terms).
    """
    model.eval()
    sums = {"emotion": 0.0, "gender": 0.0}
    n = 0
    preds: dict[str, list] = {"utterance_id": [], **{f"{t}_{k}": [] for t in TASKS for k in ("true", "pred", "prob", "nll")}}
    for batch in loader:
        b = to_device(batch, device, modalities)
        with autocast():
            out = model(b["audio"], b["faces"], b["steps"])
        for task in TASKS:
            logits = out[task].float()
            nll = F.cross_entropy(logits, b[task], reduction="none")
            sums[task] += nll.sum().item()
            preds[f"{task}_nll"] += nll.tolist()
            preds[f"{task}_true"] += b[task].tolist()
            preds[f"{task}_pred"] += logits.argmax(1).tolist()
            preds[f"{task}_prob"] += [[round(p, 6) for p in row] for row in logits.softmax(1).tolist()]
        preds["utterance_id"] += list(batch["utterance_id"])
        n += b["emotion"].shape[0]
    nll = {f"nll_{t}": sums[t] / max(n, 1) for t in TASKS}
    nll["nll_sum"] = nll["nll_emotion"] + nll["nll_gender"]
    nll["weighted"] = weights["emotion"] * nll["nll_emotion"] + weights["gender"] * nll["nll_gender"]
    return nll, preds
