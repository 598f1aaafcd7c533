"""Run by tests/test_training.py under torchrun: one tiny training run, 2 processes, gloo."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from avemotion import training  # noqa: E402
from test_training import TINY_MODEL, TINY_TRAIN  # noqa: E402

if __name__ == "__main__":
    shard_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    variant = training.VariantConfig(modalities=("audio", "video"), weighting=sys.argv[3])
    training.fit(shard_dir, out, "v", variant, TINY_MODEL, TINY_TRAIN, progress=False)
