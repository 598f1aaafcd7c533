"""Task weightings: how the per-task losses of a step become the loss to backpropagate.

One interface for five methods, chosen by name (`build_weighting`):

    weighting = build_weighting("dynamic")               # an nn.Module
    optimizer = AdamW([*model.parameters(), *weighting.parameters()])
    for batch in loader:
        losses = {"emotion": ce(out["emotion"], y_e), "gender": ce(out["gender"], y_g)}
        step = weighting(losses, shared=model.last_shared_parameters(), scaler=scaler)
        scaler.scale(step.loss).backward(); scaler.step(optimizer); scaler.update()
        weighting.after_step()                           # GradNorm renormalises here
        log(step.weights)                                # {"emotion": 0.5, "gender": 0.5}
    weighting.end_epoch({"emotion": mean_L_e, "gender": mean_L_g})   # DWA uses this

Everything a method learns or remembers is a parameter or a buffer, so
`weighting.state_dict()` belongs in the checkpoint next to the model's. The learned
weights of `dynamic`, `uncertainty` and `gradnorm` are trained by the network's
optimizer (add `weighting.parameters()` to it; `static` and `dwa` have none).

Distributed training: do not wrap the weighting in DDP. Its parameters' gradients
depend on each rank's own losses, so a hook averages them across ranks after every
backward (every rank then takes the same step and holds the same weights), and
DWA's epoch losses and GradNorm's shared-layer gradients and initial losses are
averaged across ranks too.

Mixed precision: the returned loss is an ordinary scalar, so GradScaler and
autocast work as for any loss. GradNorm's extra backward passes are scaled by the
scaler passed in; under fp16 autocast without one it raises rather than take
gradient norms that may have underflowed to zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

import torch
import torch.distributed as dist
import torch.nn as nn
from torch import Tensor

TASKS: tuple[str, ...] = ("emotion", "gender")


@dataclass(frozen=True)
class WeightedLoss:
    """The loss to backpropagate and the task weights it used (detached)."""

    loss: Tensor
    weight_tensor: Tensor  # (K,), in the order of `tasks`
    tasks: tuple[str, ...]

    @property
    def weights(self) -> dict[str, float]:
        """Task -> weight as floats, for logging (one device sync, only when read)."""
        return dict(zip(self.tasks, self.weight_tensor.tolist()))


class Weighting(nn.Module):
    """Base class: combine per-task losses into one loss.

    Subclasses implement `combine(losses, shared, scaler)` on the stacked losses (K,),
    returning (loss, weights (K,)). Hooks the training loop calls:
      after_step()       after every optimizer step
      end_epoch(losses)  after every epoch, with the epoch-mean training loss per task
    """

    needs_shared: bool = False  # whether forward needs `shared` (GradNorm)

    def __init__(self, tasks: Sequence[str] = TASKS):
        super().__init__()
        if len(tasks) < 2 or len(set(tasks)) != len(tasks):
            raise ValueError(f"a weighting needs two or more distinct tasks, got {list(tasks)}")
        self.tasks = tuple(tasks)

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    def forward(
        self,
        losses: Mapping[str, Tensor],
        shared: Sequence[Tensor] | None = None,
        scaler: torch.amp.GradScaler | None = None,
    ) -> WeightedLoss:
        """losses: task -> scalar loss of this step (with its graph).

        shared: the parameters of the last layer shared by all tasks (GradNorm only;
          e.g. `model.last_shared_parameters()`).
        scaler: the GradScaler of an fp16 run (GradNorm only).
        """
        if set(losses) != set(self.tasks):
            raise ValueError(
                f"losses for {sorted(losses)} given; this weighting expects exactly {list(self.tasks)}"
            )
        bad = [t for t in self.tasks if losses[t].dim() != 0]
        if bad:
            raise ValueError(f"losses must be scalars (batch means); {bad} are not")
        stacked = torch.stack([losses[t].float() for t in self.tasks])  # (K,)
        loss, weights = self.combine(stacked, shared, scaler)
        return WeightedLoss(loss, weights.detach(), self.tasks)

    def combine(self, losses: Tensor, shared, scaler) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def current_weights(self) -> dict[str, float]:
        """Task -> weight now (as the next step will use them), for logging."""
        return dict(zip(self.tasks, self._weights().detach().tolist()))

    def _weights(self) -> Tensor:
        raise NotImplementedError

    def after_step(self) -> None:
        """Called after each optimizer step."""

    def end_epoch(self, epoch_losses: Mapping[str, float]) -> None:
        """Called after each epoch with task -> epoch-mean (unweighted) training loss."""

    def _sync_gradients_across_ranks(self) -> None:
        """Average this module's parameter gradients over DDP ranks after each backward."""
        for p in self.parameters():
            p.register_post_accumulate_grad_hook(_average_grad)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _average_grad(p: Tensor) -> None:
    if _distributed() and p.grad is not None:
        dist.all_reduce(p.grad, op=dist.ReduceOp.AVG)


def _average(t: Tensor) -> Tensor:
    """Mean of `t` over DDP ranks (itself when not distributed); idempotent on equal values."""
    if _distributed():
        t = t.clone()
        dist.all_reduce(t, op=dist.ReduceOp.AVG)
    return t


class Static(Weighting):
    """Fixed weights: L = sum_k w_k L_k. The paper's baseline uses 0.5 / 0.5."""

    def __init__(self, tasks: Sequence[str] = TASKS, weights: Sequence[float] | Mapping[str, float] | None = None):
        super().__init__(tasks)
        if weights is None:
            weights = [1.0 / len(tasks)] * len(tasks)
        if isinstance(weights, Mapping):
            if set(weights) != set(self.tasks):
                raise ValueError(f"static weights given for {sorted(weights)}; expected {list(self.tasks)}")
            weights = [weights[t] for t in self.tasks]
        if len(weights) != len(self.tasks) or any(w < 0 for w in weights):
            raise ValueError(f"static weights must be {len(self.tasks)} non-negative numbers, got {list(weights)}")
        self.register_buffer("weights", torch.tensor([float(w) for w in weights]))

    def _weights(self) -> Tensor:
        return self.weights

    def combine(self, losses, shared, scaler):
        w = self.weights.to(losses.device)  # (K,)
        return (w * losses).sum(), w


class Dynamic(Weighting):
    """The paper's dynamic weights: w = softmax(l), l trainable, initialised at 0.

        L = sum_k w_k L_k,   w_k = exp(l_k) / sum_j exp(l_j)
        dL/dl_k = w_k (L_k - L),  for two tasks  dL/dl_e = w_e w_g (L_e - L_g)

    So gradient descent always moves weight toward the task whose loss is currently
    smaller, and L is minimised by putting all weight on one task: `dynamic` drifts
    toward the easier task (the paper's final 0.36 / 0.64 favours gender). Its
    weighted loss is therefore not comparable with a static run's; compare the
    unweighted per-task losses and accuracies.
    """

    def __init__(self, tasks: Sequence[str] = TASKS):
        super().__init__(tasks)
        self.logits = nn.Parameter(torch.zeros(len(self.tasks)))
        self._sync_gradients_across_ranks()

    def _weights(self) -> Tensor:
        return torch.softmax(self.logits, dim=0)

    def combine(self, losses, shared, scaler):
        w = torch.softmax(self.logits.float(), dim=0)  # (K,)
        return (w * losses).sum(), w


class Uncertainty(Weighting):
    """Homoscedastic uncertainty weighting (Kendall, Gal and Cipolla 2018).

        L = sum_k exp(-s_k) L_k + s_k,   s_k = log sigma_k^2 trainable, initialised at 0

    dL/ds_k = 1 - exp(-s_k) L_k, zero at exp(-s_k) = 1 / L_k: each task is weighted
    by the inverse of its current loss, and the + s_k term stops the weights from
    collapsing to zero. Reported weights are exp(-s_k) (they need not sum to 1).
    """

    def __init__(self, tasks: Sequence[str] = TASKS):
        super().__init__(tasks)
        self.log_vars = nn.Parameter(torch.zeros(len(self.tasks)))
        self._sync_gradients_across_ranks()

    def _weights(self) -> Tensor:
        return torch.exp(-self.log_vars)

    def combine(self, losses, shared, scaler):
        s = self.log_vars.float()  # (K,)
        w = torch.exp(-s)  # (K,)
        return (w * losses + s).sum(), w


class DWA(Weighting):
    """Dynamic Weight Average (Liu, Johns and Davison 2019).

        w_k(t) = K softmax_k(r_k(t-1) / T),   r_k(t-1) = L_k(t-1) / L_k(t-2)

    on epoch-mean training losses, T = 2 (temperature), w_k = 1 for the first two
    epochs. A task whose loss fell slowly last epoch gets more weight. The weights
    sum to K (not 1), as in the original; against static 0.5 / 0.5 that doubles the
    effective learning rate of the task losses. The last two epoch losses live in
    buffers, so a resumed run continues with the right weights.
    """

    def __init__(self, tasks: Sequence[str] = TASKS, temperature: float = 2.0):
        super().__init__(tasks)
        if temperature <= 0:
            raise ValueError(f"dwa temperature must be positive, got {temperature}")
        self.temperature = temperature
        self.register_buffer("history", torch.zeros(2, len(self.tasks), dtype=torch.float64))  # L(t-2), L(t-1)
        self.register_buffer("epochs_seen", torch.zeros((), dtype=torch.long))
        self.register_buffer("weights", torch.ones(len(self.tasks)))

    def _weights(self) -> Tensor:
        return self.weights

    def combine(self, losses, shared, scaler):
        w = self.weights.to(losses.device)  # (K,)
        return (w * losses).sum(), w

    def end_epoch(self, epoch_losses: Mapping[str, float]) -> None:
        if set(epoch_losses) != set(self.tasks):
            raise ValueError(f"epoch losses for {sorted(epoch_losses)}; expected {list(self.tasks)}")
        current = torch.tensor([float(epoch_losses[t]) for t in self.tasks], dtype=torch.float64)
        current = _average(current.to(self.history.device))  # same weights on every rank
        self.history.copy_(torch.stack([self.history[1], current]))
        self.epochs_seen += 1
        if int(self.epochs_seen) >= 2:
            ratio = self.history[1] / self.history[0].clamp(min=1e-12)  # (K,)
            self.weights.copy_(self.n_tasks * torch.softmax(ratio / self.temperature, dim=0))


class GradNorm(Weighting):
    """GradNorm (Chen, Badrinarayanan, Lee and Rabinovich 2018), on the last shared layer.

    Weights w_k (trainable, initialised at 1, renormalised to sum K after each step).
    Per step, with W the shared parameters:
        G_k   = ||grad_W (w_k L_k)|| = w_k ||grad_W L_k||
        r_k   = (L_k / L_k(0)) / mean_j (L_j / L_j(0))      (relative inverse training rate)
        L_grad = sum_k | G_k - mean_j(G_j) * r_k^alpha |     (target treated as a constant)
    The network is trained on sum_k w_k L_k with w held constant; the weights are
    trained on L_grad only. Since G_k is linear in w_k, ||grad_W L_k|| is needed
    as a number only: one extra backward pass per task into W (no double backward).
    The returned loss is sum_k w_k.detach() L_k + L_grad, so one backward and one
    optimizer step train both.

    L_k(0), the reference of the training rate (`initial_losses`):
      log_classes (default): log(number of classes of task k), the cross-entropy of a
        uniform prediction, as Chen et al. suggest for classification; needs
        `n_classes` (task -> number of classes).
      first_batch: the loss of the first step seen. At batch size 1 that is one
        utterance's loss, so every later ratio rests on a single sample.

    A task whose loss falls more slowly (r_k > 1) gets a larger target gradient norm,
    and a task whose gradient is already large relative to the target loses weight;
    at equal training rates the weights move toward equal gradient norms, i.e. toward
    the task with the smaller gradient norm.
    """

    needs_shared = True

    def __init__(
        self,
        tasks: Sequence[str] = TASKS,
        alpha: float = 1.5,
        initial_losses: Literal["log_classes", "first_batch"] = "log_classes",
        n_classes: Mapping[str, int] | None = None,
    ):
        super().__init__(tasks)
        if initial_losses not in INITIAL_LOSSES:
            raise ValueError(
                f"Invalid gradnorm initial_losses {initial_losses!r}. Only {', '.join(INITIAL_LOSSES)} are supported."
            )
        self.alpha = alpha
        self.task_weights = nn.Parameter(torch.ones(len(self.tasks)))
        self.register_buffer("initial_losses", torch.zeros(len(self.tasks)))
        self.register_buffer("started", torch.zeros((), dtype=torch.bool))
        if initial_losses == "log_classes":
            if n_classes is None or set(n_classes) != set(self.tasks) or min(n_classes.values()) < 2:
                raise ValueError(
                    f"gradnorm initial_losses log_classes needs n_classes with two or more classes for "
                    f"each of {list(self.tasks)}, got {n_classes!r}; or use initial_losses: first_batch"
                )
            self.initial_losses.copy_(torch.tensor([math.log(n_classes[t]) for t in self.tasks]))
            self.started.fill_(True)
        self._sync_gradients_across_ranks()

    def _weights(self) -> Tensor:
        return self.task_weights

    def combine(self, losses, shared, scaler):
        if not shared:
            raise ValueError(
                "gradnorm needs the shared parameters: weighting(losses, "
                "shared=model.last_shared_parameters(), scaler=scaler)"
            )
        shared = [p for p in shared if p.requires_grad]
        w = self.task_weights  # (K,)
        if not torch.is_grad_enabled() or not losses.requires_grad:
            # evaluation: no gradients to balance, report the weighted loss
            return (w.detach() * losses).sum(), w
        norms = self._grad_norms(losses, shared, scaler)  # (K,) ||grad_W L_k||, or None
        weighted = (w.detach() * losses).sum()
        if norms is None:
            # fp16 overflow in the extra passes: leave the weights alone this step
            # (the scaler skips the step anyway when the main backward overflows)
            return weighted + 0.0 * w.sum(), w
        detached = losses.detach()
        if not bool(self.started):
            self.initial_losses.copy_(_average(detached))
            self.started.fill_(True)
        ratio = detached / self.initial_losses.clamp(min=1e-12)  # (K,)
        r = ratio / ratio.mean()  # (K,)
        g = w * norms  # (K,) G_k, differentiable in w only
        target = (g.detach().mean() * r**self.alpha)  # (K,)
        l_grad = (g - target).abs().sum()
        return weighted + l_grad, w

    def _grad_norms(self, losses: Tensor, shared: list[Tensor], scaler) -> Tensor | None:
        fp16 = any(
            torch.is_autocast_enabled(d) and torch.get_autocast_dtype(d) == torch.float16
            for d in {p.device.type for p in shared}
        )
        scaling = scaler is not None and scaler.is_enabled()
        if fp16 and not scaling:
            raise RuntimeError(
                "gradnorm under fp16 autocast needs the GradScaler: pass scaler=scaler, "
                "or train in bf16/fp32 (fp16 gradient norms underflow without scaling)"
            )
        scale = float(scaler.get_scale()) if scaling else 1.0
        norms = []
        for k in range(self.n_tasks):
            grads = torch.autograd.grad(losses[k] * scale, shared, retain_graph=True, allow_unused=True)
            flat = torch.cat([(gr if gr is not None else torch.zeros_like(p)).flatten().float()
                              for gr, p in zip(grads, shared)])  # (P,)
            flat = _average(flat / scale)  # the gradient of the global batch under DDP
            norms.append(flat.norm())
        norms = torch.stack(norms)  # (K,)
        if not bool(torch.isfinite(norms).all()):
            if scaling:
                return None
            raise FloatingPointError(f"gradnorm: non-finite gradient norm on the shared layer: {norms.tolist()}")
        return norms

    @torch.no_grad()
    def after_step(self) -> None:
        # keep the weights positive and summing to K, as in the paper
        w = self.task_weights
        w.clamp_(min=1e-3)
        w.mul_(self.n_tasks / w.sum())


INITIAL_LOSSES: tuple[str, ...] = ("log_classes", "first_batch")

WEIGHTINGS: dict[str, type[Weighting]] = {
    "static": Static,
    "dynamic": Dynamic,
    "uncertainty": Uncertainty,
    "dwa": DWA,
    "gradnorm": GradNorm,
}


def build_weighting(
    name: str, tasks: Sequence[str] = TASKS, n_classes: Mapping[str, int] | None = None, **options
) -> Weighting:
    """The weighting called `name`.

    options: static weights=, dwa temperature=, gradnorm alpha= and initial_losses=.
    n_classes (task -> number of classes) describes the data; gradnorm's default
    initial losses need it, the other weightings ignore it.
    """
    if name not in WEIGHTINGS:
        raise ValueError(f"Invalid weighting {name!r}. Only {', '.join(WEIGHTINGS)} are supported.")
    cls = WEIGHTINGS[name]
    valid = _OPTIONS[name]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(
            f"weighting {name!r} takes options {', '.join(valid) or 'none'}; got {', '.join(unknown)}"
        )
    if name == "gradnorm":
        return cls(tasks, n_classes=n_classes, **options)
    return cls(tasks, **options)


_OPTIONS: dict[str, tuple[str, ...]] = {
    "static": ("weights",),
    "dynamic": (),
    "uncertainty": (),
    "dwa": ("temperature",),
    "gradnorm": ("alpha", "initial_losses"),
}


@dataclass(frozen=True)
class WeightingConfig:
    """params.yaml section for the weighting; `build(cfg, tasks)` makes the module."""

    method: Literal["static", "dynamic", "uncertainty", "dwa", "gradnorm"] = "dynamic"
    static_weights: tuple[float, ...] = (0.5, 0.5)
    dwa_temperature: float = 2.0
    gradnorm_alpha: float = 1.5
    gradnorm_initial_losses: Literal["log_classes", "first_batch"] = "log_classes"

    def validate(self, where: str = "weighting") -> None:
        if self.method not in WEIGHTINGS:
            raise ValueError(f"Invalid {where}.method {self.method!r}. Only {', '.join(WEIGHTINGS)} are supported.")
        if any(w < 0 or not math.isfinite(w) for w in self.static_weights):
            raise ValueError(f"{where}.static_weights must be non-negative, got {list(self.static_weights)}")

    def build(self, tasks: Sequence[str] = TASKS, n_classes: Mapping[str, int] | None = None) -> Weighting:
        options = {
            "static": {"weights": self.static_weights},
            "dwa": {"temperature": self.dwa_temperature},
            "gradnorm": {"alpha": self.gradnorm_alpha, "initial_losses": self.gradnorm_initial_losses},
        }.get(self.method, {})
        return build_weighting(self.method, tasks, n_classes=n_classes, **options)
