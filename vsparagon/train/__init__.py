"""Training ParagonSR models: ``paragon train CONFIG.yaml``.

Public API::

    from vsparagon.train import load_config, train
    result = train(load_config("examples/train/smoke.yaml"), Path("runs/smoke"))

Importing this package imports torch.
"""

from vsparagon.train.config import TrainConfig, explain, load_config, parse_config
from vsparagon.train.loop import RunResult, TrainingDiverged, train

__all__ = ["RunResult", "TrainConfig", "TrainingDiverged", "explain", "load_config", "parse_config", "train"]
