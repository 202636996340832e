from .configuration_lens_mae import LensMAEConfig, valid_patch_sizes
from . import modeling_lens_mae
from .modeling_lens_mae import (
    LensMAEForImageClassification,
    LensMAEForPreTraining,
    LensMAEForPreTrainingOutput,
    LensMAEForSuperResolution,
    LensMAEModel,
    LensMAEModelOutput,
    LensMAEPreTrainedModel,
)

__all__ = [
    "LensMAEConfig",
    "valid_patch_sizes",
    "LensMAEModel",
    "LensMAEForPreTraining",
    "LensMAEForImageClassification",
    "LensMAEForSuperResolution",
    "LensMAEPreTrainedModel",
    "LensMAEModelOutput",
    "LensMAEForPreTrainingOutput",
]
