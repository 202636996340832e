"""What every lens_hf training script shares: argument dataclasses, recipes, the Accelerator
factory, optimizers and schedules, checkpoints, the training loop, evaluation and the run folder."""

from .accelerator import build_accelerator
from .arguments import DataArguments, ModelArguments, RunArguments, arguments_to_dict, parse_arguments
from .checkpoint import TrainState, complete_checkpoints, resolve_checkpoint
from .loop import NonFiniteLossError, fit, read_train_log
from .optim import LARS, build_optimizer, parameter_groups, scaled_learning_rate, warmup_cosine_schedule
from .recipes import MODEL_PRESETS, RECIPES, apply_recipe
from .runner import DataInfo, run_training

__all__ = [
    "build_accelerator",
    "DataArguments",
    "ModelArguments",
    "RunArguments",
    "arguments_to_dict",
    "parse_arguments",
    "TrainState",
    "complete_checkpoints",
    "resolve_checkpoint",
    "NonFiniteLossError",
    "fit",
    "read_train_log",
    "LARS",
    "build_optimizer",
    "parameter_groups",
    "scaled_learning_rate",
    "warmup_cosine_schedule",
    "MODEL_PRESETS",
    "RECIPES",
    "apply_recipe",
    "DataInfo",
    "run_training",
]
