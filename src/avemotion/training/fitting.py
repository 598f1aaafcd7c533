"""`fit`: one variant in one run, from shards to checkpoints, curves, predictions and metrics."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Mapping, Sequence

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import DataLoader

from ..config import as_dict
from ..files import write_json
from ..model import ModelConfig, build_model
from ..shards import ShardDataset, read_index
from ..splits import Run, SplitConfig, assign, ids_by_split
from ..weighting import build_weighting
from .checkpoints import BEST_KEYS, code_digest, config_digest, load_checkpoint, save_checkpoint
from .config import TASKS, TrainConfig, TrainError, VariantConfig
from .loop import _unwrap, evaluate, train_one_epoch
from .records import _write_curves, variant_metrics, write_predictions
from .setup import amp_dtype, choose_device, init_distributed, make_optimizer, make_scheduler, seed_everything

log = logging.getLogger(__name__)


def fit(
    shard_dir: Path,
    out_dir: Path,
    name: str,
    variant: VariantConfig,
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    progress: bool = True,
    stop_after_epoch: int | None = None,
    split: Mapping[str, str] | None = None,
    index: Sequence[dict] | None = None,
) -> dict | None:
    """Train one variant in one run; write checkpoints, curves, predictions and metrics.json.

    `split` maps utterance ids to "train" | "val" | "test" (`splits.assign`); by default
    a random 60/20/20 split drawn from `cfg.seed`. Returns the run's metrics (on the
    master process; None elsewhere). `stop_after_epoch` ends the run early as if it had
    been killed (for tests). `index` is the shards' `read_index`, if the caller has it.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    probe = torch.device("cuda" if cfg.device != "cpu" and torch.cuda.is_available() else "cpu")
    d = init_distributed(probe.type)
    device = choose_device(cfg, d)
    dtype = amp_dtype(cfg, device)
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else contextlib.nullcontext
    modalities = tuple(variant.modalities)

    index = list(index) if index is not None else read_index(shard_dir)
    if split is None:
        split = assign(index, SplitConfig(), Run(fold=1, seed=cfg.seed))
    ids = ids_by_split(split)
    for part, members in ids.items():
        if not members:
            raise TrainError(f"the {part} split of this run is empty ({', '.join(f'{k} {len(v)}' for k, v in ids.items())}); check params `split` and `runs`")
    train_ds = ShardDataset(shard_dir, ids["train"], modalities, shuffle=True, seed=cfg.seed, rank=d.rank, world=d.world, index=index)
    meta = train_ds.meta
    model_cfg = dataclasses.replace(
        model_cfg,
        modalities=modalities,
        n_emotions=len(meta["classes"]),
        seconds=meta["audio_samples"] / model_cfg.sample_rate,
        fps=meta["steps"] / (meta["audio_samples"] / model_cfg.sample_rate),
    )
    # the digest names the shards' content too (their manifest), so a checkpoint trained on
    # other shards (another split, other labels) is never resumed from
    manifest_sha = hashlib.sha256((Path(shard_dir) / "manifest.json").read_bytes()).hexdigest()
    split_sha = hashlib.sha256(json.dumps(sorted(split.items())).encode()).hexdigest()
    resolved = {"variant": name, **as_dict(variant), "model": as_dict(model_cfg), "train": as_dict(cfg), "shards": meta, "manifest_sha256": manifest_sha, "split_sha256": split_sha, "code_sha256": code_digest(), "processes": d.world}
    digest = config_digest(resolved)

    seed_everything(cfg.seed)
    model = build_model(model_cfg).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    try:
        n_classes = {"emotion": len(meta["classes"]), "gender": 2}
        weighting = build_weighting(variant.weighting, tasks=TASKS, n_classes=n_classes, **dict(variant.options)).to(device)
    except (TypeError, ValueError) as exc:
        raise TrainError(f"variants.{name}: {exc}") from exc
    if d.world > 1:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = make_optimizer(list(_unwrap(model).parameters()) + list(weighting.parameters()), cfg)
    scheduler = make_scheduler(optimizer, cfg)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)

    pin = device.type == "cuda"
    train_loader = DataLoader(train_ds, batch_size=cfg.batch, num_workers=cfg.workers, pin_memory=pin, persistent_workers=False)
    val_loader = DataLoader(ShardDataset(shard_dir, ids["val"], modalities, index=index), batch_size=max(cfg.batch, 8), num_workers=cfg.workers, pin_memory=pin)
    test_loader = DataLoader(ShardDataset(shard_dir, ids["test"], modalities, index=index), batch_size=max(cfg.batch, 8), num_workers=cfg.workers, pin_memory=pin)

    ckpt_dir = out_dir / "checkpoints"
    curves: list[dict] = []
    start, best = 0, math.inf
    last = ckpt_dir / "last.pt"
    if last.is_file():
        state = load_checkpoint(last)
        if state.get("digest") == digest:
            _unwrap(model).load_state_dict(state["model"])
            weighting.load_state_dict(state["weighting"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            torch.set_rng_state(state["rng"])
            start, best = state["epoch"] + 1, state["best"]
            curves = json.loads(state["curves"])
            log.info("%s: resuming after epoch %d from %s", name, state["epoch"] + 1, last)
        else:
            log.warning("%s: %s was written under another config or training code; starting afresh", name, last)
    if start == 0 and d.master:
        # checkpoints persist across `dvc repro`: a best.pt of an earlier run must never
        # stand in for this one's (it is also refused by digest at the end)
        (ckpt_dir / "best.pt").unlink(missing_ok=True)

    for epoch in range(start, cfg.epochs):
        train_ds.set_epoch(epoch)
        bar = None
        if progress and d.master:
            from tqdm import tqdm

            bar = lambda it, e=epoch: tqdm(it, desc=f"{name} epoch {e + 1}/{cfg.epochs}", unit="batch", leave=False, total=math.ceil(len(train_ds) / cfg.batch))
        tr = train_one_epoch(model, weighting, train_loader, optimizer, device, modalities, cfg.clip, autocast, scaler, d, bar)
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        weighting.end_epoch({"emotion": tr["nll_emotion"], "gender": tr["nll_gender"]})
        w = weighting.current_weights()
        if d.master:
            va, _ = evaluate(_unwrap(model), val_loader, device, modalities, w, autocast)
            curves.append(
                {"epoch": epoch + 1, "lr": lr, **{f"train_{k}": v for k, v in tr.items()},
                 **{f"val_{k}": v for k, v in va.items()}, "w_emotion": w["emotion"], "w_gender": w["gender"]}
            )
            log.info("%s epoch %d: train weighted %.4f | val NLL e %.4f g %.4f | w %.3f/%.3f", name, epoch + 1, tr["weighted"], va["nll_emotion"], va["nll_gender"], w["emotion"], w["gender"])
            state = {
                "model": _unwrap(model).state_dict(), "weighting": weighting.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                "epoch": epoch, "best": min(best, va["nll_sum"]), "rng": torch.get_rng_state(),
                "config": json.dumps(resolved, sort_keys=True), "digest": digest, "curves": json.dumps(curves),
            }
            if va["nll_sum"] < best:
                best = va["nll_sum"]
                # the best epoch's weights only: no optimizer state (2x the model under Adam)
                save_checkpoint(ckpt_dir / "best.pt", {k: state[k] for k in BEST_KEYS})
            save_checkpoint(last, state)
            _write_curves(curves, out_dir / "curves.csv")
        # weights that turned NaN/inf never recover: with no finite validation NLL yet,
        # stop now rather than after every remaining epoch
        diverged = torch.tensor(int(d.master and not math.isfinite(best) and not _all_finite(model)), device=device)
        if d.world > 1:
            dist.broadcast(diverged, 0)
        if diverged.item():
            _remove_results(out_dir)
            raise TrainError(_no_finite_loss(name, cfg, f"the weights became NaN or infinite in epoch {epoch + 1}"))
        if d.world > 1:
            dist.barrier()
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
            return None

    if not d.master:
        return None
    _write_curves(curves, out_dir / "curves.csv")  # also when a finished run is resumed
    best_path = ckpt_dir / "best.pt"
    if not math.isfinite(best) or not best_path.is_file():
        _remove_results(out_dir)
        raise TrainError(_no_finite_loss(name, cfg, f"no epoch of {cfg.epochs} had a finite validation NLL"))
    best_state = load_checkpoint(best_path)
    if best_state.get("digest") != digest:
        _remove_results(out_dir)
        raise TrainError(
            f"{name}: {best_path} was written by another run (config digest {best_state.get('digest')}, "
            f"this run {digest}); delete {ckpt_dir} and rerun"
        )
    _unwrap(model).load_state_dict(best_state["model"])
    weighting.load_state_dict(best_state["weighting"])
    w = weighting.current_weights()
    va, _ = evaluate(_unwrap(model), val_loader, device, modalities, w, autocast)
    _, preds = evaluate(_unwrap(model), test_loader, device, modalities, w, autocast)
    write_predictions(preds, meta["classes"], out_dir / "predictions.csv")
    n = {part: len(members) for part, members in ids.items()}
    result = variant_metrics(name, variant, w, va, preds, meta["classes"], n=n)
    result["best_epoch"] = best_state["epoch"] + 1
    result["weights_last"] = {"emotion": curves[-1]["w_emotion"], "gender": curves[-1]["w_gender"]} if curves else result["weights"]
    write_json(result, out_dir / "metrics.json")
    return result


def _all_finite(model: nn.Module) -> bool:
    params = [p.detach() for p in _unwrap(model).parameters()]
    return bool(torch.stack([torch.isfinite(p).all() for p in params]).all())  # one device sync


def _no_finite_loss(name: str, cfg: TrainConfig, what: str) -> str:
    return (
        f"{name}: {what}, so there is no best checkpoint and no metrics were written. "
        f"Try a lower train.lr (now {cfg.lr:g}) or a gradient clip (train.clip, now {cfg.clip:g}), "
        f"and check the shards' audio (silent, clipped or constant utterances; model.audio_norm)."
    )


def _remove_results(out_dir: Path) -> None:
    """A failed run leaves no metrics or predictions of an earlier run behind."""
    for f in ("metrics.json", "predictions.csv"):
        (out_dir / f).unlink(missing_ok=True)
