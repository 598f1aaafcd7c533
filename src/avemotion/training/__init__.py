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

Where each part lives:

- ``config``: `TrainConfig` and `VariantConfig` (params ``train`` and ``variants``),
  `build_variants`, `TrainError`, `TASKS` and `MODALITIES`.
- ``setup``: the process group (`Dist`, `init_distributed`) and the torchrun launch
  (`torchrun_command`), the device and autocast dtype, seeding, optimizer and scheduler.
- ``loop``: a batch to the device, the task losses, `train_one_epoch`, `evaluate`.
- ``records``: ``curves.csv``, ``predictions.csv`` written and read back, and the metrics
  computed from the predictions (`metrics_from_predictions`, `variant_metrics`).
- ``checks``: shards built under other params are refused (`check_shards`,
  `check_manifest_params`).
- ``checkpoints``: saving and loading checkpoints, the config digest and the digest of
  the training code (`TRAINING_CODE`, `code_digest`).
- ``fitting``: `fit`, one variant in one run.
"""

from .config import (
    MODALITIES,
    TASKS,
    TrainConfig,
    TrainError,
    VariantConfig,
    build_variants,
)
from .setup import (
    Dist,
    amp_dtype,
    choose_device,
    init_distributed,
    make_optimizer,
    make_scheduler,
    seed_everything,
    torchrun_command,
)
from .loop import (
    evaluate,
    task_losses,
    to_device,
    train_one_epoch,
)
from .records import (
    CURVE_FIELDS,
    PREDICTION_FIELDS,
    metrics_from_predictions,
    read_predictions,
    variant_metrics,
    write_predictions,
)
from .checks import (
    NOT_COMPARED,
    PREPROCESSING_SECTIONS,
    check_manifest_params,
    check_shards,
)
from .checkpoints import (
    BEST_KEYS,
    TRAINING_CODE,
    code_digest,
    config_digest,
    load_checkpoint,
    save_checkpoint,
)
from .fitting import (
    fit,
)

__all__ = [
    "BEST_KEYS",
    "CURVE_FIELDS",
    "Dist",
    "MODALITIES",
    "NOT_COMPARED",
    "PREDICTION_FIELDS",
    "PREPROCESSING_SECTIONS",
    "TASKS",
    "TRAINING_CODE",
    "TrainConfig",
    "TrainError",
    "VariantConfig",
    "amp_dtype",
    "build_variants",
    "check_manifest_params",
    "check_shards",
    "choose_device",
    "code_digest",
    "config_digest",
    "evaluate",
    "fit",
    "init_distributed",
    "load_checkpoint",
    "make_optimizer",
    "make_scheduler",
    "metrics_from_predictions",
    "read_predictions",
    "save_checkpoint",
    "seed_everything",
    "task_losses",
    "to_device",
    "torchrun_command",
    "train_one_epoch",
    "variant_metrics",
    "write_predictions",
]
