"""Training: one variant from shards to checkpoints, curves, predictions and metrics.

The loop follows torchvision's classification reference: `train_one_epoch`,
`evaluate`, and `fit` that ties them together. It runs on CPU or CUDA (chosen
automatically, logged), and on several processes through ``torchrun``
(DistributedDataParallel; gloo on CPU, NCCL on CUDA). On CUDA it uses bf16 autocast,
channels_last for the visual stream, pinned memory and non-blocking copies; frames
travel as uint8 and become float on the device.

Every epoch writes ``checkpoints/last.pt`` (model, optimizer, scheduler, weighting
state, epoch, RNG state, resolved config and its digest) and ``checkpoints/best.pt``
when the validation NLL sum improves. A run that starts afresh deletes an old
``best.pt``, and a ``best.pt`` whose digest is not the run's is refused; a run with no
finite validation NLL fails with a message and writes no metrics. A killed run started
again with the same config resumes from ``last.pt`` and ends with the same result as an
uninterrupted run (on CPU, same seed): data order depends only on (seed, epoch), and
the torch RNG state is restored. A checkpoint written under another config, other
shards, another split or other training code (`TRAINING_CODE`) is never resumed from;
a finished one under the same is only re-evaluated (what ``dvc repro -f`` then does).

The best epoch is chosen by the *unweighted* sum of the validation NLLs, because the
weighted joint loss is not comparable across epochs when the weights move.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import logging
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

from . import metrics as M
from .config import as_dict
from .files import atomic_path, write_json, write_text
from .model import ModelConfig, build_model
from .shards import ShardDataset, read_index
from .splits import Run, SplitConfig, assign, ids_by_split
from .weighting import build_weighting

log = logging.getLogger(__name__)

TASKS = ("emotion", "gender")
MODALITIES = ("audio", "video")


class TrainError(ValueError):
    """Bad training input (variant, shards, device); the message says what to do."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """params.yaml `train` (defaults: the authors' code, see PAPER.md)."""

    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-4
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd only
    schedule: Literal["step", "cosine", "none"] = "step"
    step_epochs: int = 10  # step schedule: multiply lr by gamma every step_epochs
    gamma: float = 0.1
    epochs: int = 100
    batch: int = 1
    clip: float = 1.0  # max gradient norm; 0 = off
    seed: int = 2018
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA if present, else CPU
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"  # auto: bf16 on CUDA, off on CPU
    workers: int = 0  # DataLoader worker processes
    threads: int = 0  # torch CPU threads; 0 = torch's default
    nproc: int = 1  # training processes on this machine (one per GPU); > 1 runs under torchrun

    def validate(self, where: str = "train") -> None:
        from .config import ParamsError

        for key in ("lr", "epochs", "batch", "nproc"):
            if getattr(self, key) <= 0:
                raise ParamsError(f"params: '{where}.{key}' must be > 0")


@dataclasses.dataclass(frozen=True)
class VariantConfig:
    """One entry of params.yaml `variants`: which streams, which loss weighting."""

    modalities: tuple[str, ...]
    weighting: str
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def validate(self, where: str = "variant") -> None:
        from .config import ParamsError

        bad = [m for m in self.modalities if m not in MODALITIES]
        if bad or not self.modalities or len(set(self.modalities)) != len(self.modalities):
            raise ParamsError(
                f"params: '{where}.modalities' is {list(self.modalities)}; use a non-empty list of "
                f"{', '.join(MODALITIES)}"
            )
        from .weighting import _OPTIONS, WEIGHTINGS

        if self.weighting not in WEIGHTINGS:
            raise ParamsError(
                f"params: '{where}.weighting' is {self.weighting!r}; valid values: {', '.join(WEIGHTINGS)}"
            )
        unknown = sorted(set(self.options) - set(_OPTIONS[self.weighting]))
        if unknown:
            raise ParamsError(
                f"params: unknown key(s) {', '.join(f'{where}.options.{k}' for k in unknown)}; weighting "
                f"{self.weighting!r} takes options: {', '.join(_OPTIONS[self.weighting]) or 'none'}"
            )


# ----------------------------------------------------------------------------- setup


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


# ----------------------------------------------------------------------------- steps


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


# ----------------------------------------------------------------------------- fit


def check_shards(meta: Mapping, expected: Mapping, shard_dir: Path) -> None:
    """Refuse shards built under other params (classes, shapes) with the stage to rerun."""
    diffs = [f"{k}: shards have {meta.get(k)!r}, params give {v!r}" for k, v in expected.items() if meta.get(k) != v]
    if diffs:
        raise TrainError(
            f"{shard_dir} was built with other params ({'; '.join(diffs)}); rerun `dvc repro shard` "
            "(or `dvc repro` to rebuild everything that is stale)"
        )


#: params sections the shard stage records in manifest.json that shape the shards' contents
PREPROCESSING_SECTIONS = ("corpus", "labels", "audio", "video", "faces", "shards")
#: recorded keys that cannot change a shard's bytes: how many processes on which device the
#: faces stage used (it keeps them out of its own files), and what only the contact sheets show
NOT_COMPARED = frozenset({"faces.workers", "faces.device", "faces.contact_utterances", "faces.contact_frames"})


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}", out)
    else:
        out[prefix] = list(value) if isinstance(value, tuple) else value
    return out


def check_manifest_params(manifest: Mapping, params: Mapping, shard_dir: Path | str = "the shards") -> None:
    """Refuse shards whose recorded preprocessing params differ from the current params file.

    Compares every key of PREPROCESSING_SECTIONS (built from `params`, defaults filled
    in) with what the shard stage recorded in ``manifest["params"]``, except NOT_COMPARED;
    ``faces.weights`` is compared by file name. Raises TrainError naming each differing
    key with both values and the stage to rerun.
    """
    from .config import as_dict, build
    from .sections import section_classes

    classes = section_classes()
    recorded_all = manifest.get("params") or {}
    diffs = []
    for section in PREPROCESSING_SECTIONS:
        current = _flatten(as_dict(build(classes[section], params, section)), section, {})
        recorded = _flatten(recorded_all.get(section, {}), section, {})
        for key in sorted(set(current) | set(recorded)):
            if key in NOT_COMPARED:
                continue
            have, want = recorded.get(key, "<not recorded>"), current.get(key, "<not in params>")
            if key == "faces.weights":
                have, want = (Path(v).name if isinstance(v, str) else v for v in (have, want))
            if have != want:
                diffs.append(f"{key}: shards have {have!r}, params.yaml has {want!r}")
    if diffs:
        raise TrainError(
            f"{shard_dir} were built with other preprocessing params ({'; '.join(diffs)}); rerun "
            "`dvc repro shard` (it reruns the earlier stages those params belong to), or `dvc repro` "
            "to rebuild everything that is stale"
        )


def config_digest(resolved: Mapping) -> str:
    return hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest()[:16]


#: what best.pt keeps of an epoch's state: enough to evaluate it and to know whose it is
BEST_KEYS = ("model", "weighting", "epoch", "best", "config", "digest")


#: The modules whose code decides the weights a run learns. A change to any of them (a
#: changed dependency of the train stages, so DVC reruns them) trains from scratch: a
#: checkpoint written by other code is never resumed from, nor taken as finished. The
#: metrics code is not among them: a finished run re-evaluates its best checkpoint with
#: the current metrics code.
TRAINING_CODE = ("training", "model", "audioconv", "weighting", "shards")


def _source_bytes(module: str) -> bytes:
    """A module's source; a package's is every .py file in it, named, in path order."""
    import importlib

    path = Path(importlib.import_module(f"{__package__}.{module}").__file__)
    if path.name != "__init__.py":
        return path.read_bytes()
    files = sorted(path.parent.rglob("*.py"))
    return b"".join(f"{f.relative_to(path.parent).as_posix()}\0".encode() + f.read_bytes() for f in files)


def code_digest() -> str:
    """sha256 of the source files of TRAINING_CODE, part of every checkpoint's digest."""
    h = hashlib.sha256()
    for module in TRAINING_CODE:
        source = _source_bytes(module)
        h.update(f"{module}\0{len(source)}\0".encode() + source)
    return h.hexdigest()


def save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


#: Columns of curves.csv, one meaning each. `*_weighted` is sum_k w_k L_k on its split
#: (training: each step's weights; validation: the weights at the end of the epoch);
#: `train_extra` is the weighting's own terms on top (uncertainty's log-variances,
#: GradNorm's gradient loss), so train_weighted + train_extra is what was minimised.
CURVE_FIELDS = (
    "epoch", "lr",
    "train_weighted", "train_extra", "train_nll_emotion", "train_nll_gender",
    "val_weighted", "val_nll_emotion", "val_nll_gender", "val_nll_sum",
    "w_emotion", "w_gender",
)


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
) -> dict | None:
    """Train one variant in one run; write checkpoints, curves, predictions and metrics.json.

    `split` maps utterance ids to "train" | "val" | "test" (`splits.assign`); by default
    a random 60/20/20 split drawn from `cfg.seed`. Returns the run's metrics (on the
    master process; None elsewhere). `stop_after_epoch` ends the run early as if it had
    been killed (for tests).
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    probe = torch.device("cuda" if cfg.device != "cpu" and torch.cuda.is_available() else "cpu")
    d = init_distributed(probe.type)
    device = choose_device(cfg, d)
    dtype = amp_dtype(cfg, device)
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else contextlib.nullcontext
    modalities = tuple(variant.modalities)

    index = read_index(shard_dir)
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


def _write_curves(curves: list[dict], path: Path) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CURVE_FIELDS, lineterminator="\n")
    w.writeheader()
    for row in curves:
        w.writerow({k: (f"{row[k]:.6g}" if isinstance(row[k], float) else row[k]) for k in CURVE_FIELDS})
    write_text(buf.getvalue(), path)


#: predictions.csv: one row per test utterance; `*_nll` is that utterance's cross-entropy
#: (the compare stage's per-utterance paired tests of the NLL use it).
PREDICTION_FIELDS = (
    "utterance_id", "emotion_true", "emotion_pred", "gender_true", "gender_pred",
    "emotion_prob", "gender_prob", "emotion_nll", "gender_nll",
)


def write_predictions(preds: Mapping[str, list], classes: list[str], path: Path) -> None:
    """One row per test utterance, class names (for DVC's confusion plots) and probabilities."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(PREDICTION_FIELDS)
    order = sorted(range(len(preds["utterance_id"])), key=lambda i: preds["utterance_id"][i])
    for i in order:
        w.writerow([
            preds["utterance_id"][i], classes[preds["emotion_true"][i]], classes[preds["emotion_pred"][i]],
            "FM"[preds["gender_true"][i]], "FM"[preds["gender_pred"][i]],
            " ".join(f"{p:.6f}" for p in preds["emotion_prob"][i]), " ".join(f"{p:.6f}" for p in preds["gender_prob"][i]),
            f"{preds['emotion_nll'][i]:.6g}", f"{preds['gender_nll'][i]:.6g}",
        ])
    write_text(buf.getvalue(), path)


def read_predictions(path: Path) -> dict[str, list]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    missing = [k for k in PREDICTION_FIELDS if rows and k not in rows[0]]
    if missing:
        raise TrainError(f"{path}: no column(s) {', '.join(missing)}; written by an older version, retrain that run")
    out = {k: [r[k] for r in rows] for k in ("utterance_id", "emotion_true", "emotion_pred", "gender_true", "gender_pred")}
    out.update({k: [float(r[k]) for r in rows] for k in ("emotion_nll", "gender_nll")})
    return out


def metrics_from_predictions(preds: Mapping[str, list], classes: list[str]) -> dict:
    """Test metrics computed from saved predictions (class names), as the compare stage does."""
    idx = {c: i for i, c in enumerate(classes)}
    e_true = [idx[c] for c in preds["emotion_true"]]
    e_pred = [idx[c] for c in preds["emotion_pred"]]
    out = M.emotion_metrics(e_true, e_pred, len(classes))
    out.update(M.gender_metrics(preds["gender_true"], preds["gender_pred"]))
    for task in TASKS:  # test NLL per task: the mean of the per-utterance cross-entropies
        if f"{task}_nll" in preds:
            values = [float(x) for x in preds[f"{task}_nll"]]
            out[f"nll_{task}"] = sum(values) / len(values) if values else 0.0
    if "nll_emotion" in out and "nll_gender" in out:
        out["nll_sum"] = out["nll_emotion"] + out["nll_gender"]
    return out


def variant_metrics(name, variant, weights, val, preds, classes, n) -> dict:
    named = {
        "utterance_id": preds["utterance_id"],
        "emotion_true": [classes[i] for i in preds["emotion_true"]],
        "emotion_pred": [classes[i] for i in preds["emotion_pred"]],
        "gender_true": ["FM"[i] for i in preds["gender_true"]],
        "gender_pred": ["FM"[i] for i in preds["gender_pred"]],
        "emotion_nll": [float(f"{x:.6g}") for x in preds["emotion_nll"]],
        "gender_nll": [float(f"{x:.6g}") for x in preds["gender_nll"]],
    }
    return {
        "modalities": list(variant.modalities),
        "weighting": variant.weighting,
        "weights": {t: float(weights[t]) for t in TASKS},
        "val": {k: float(v) for k, v in val.items()},
        "test": metrics_from_predictions(named, classes),
        "confusion": {
            "emotion": M.confusion([classes.index(c) for c in named["emotion_true"]], [classes.index(c) for c in named["emotion_pred"]], classes),
            "gender": M.confusion(["FM".index(c) for c in named["gender_true"]], ["FM".index(c) for c in named["gender_pred"]], ["F", "M"]),
        },
        "n": n,
    }


def build_variants(params: Mapping) -> dict[str, VariantConfig]:
    """params.yaml `variants` (name -> modalities, weighting, options) as dataclasses."""
    from .config import ParamsError, build

    raw = params.get("variants")
    if not isinstance(raw, Mapping) or not raw:
        raise ParamsError("params: 'variants' must map variant names to {modalities, weighting, options}")
    return {name: build(VariantConfig, {f"variants.{name}": raw[name]}, f"variants.{name}") for name in raw}
