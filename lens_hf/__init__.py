"""lens-hf: HuggingFace-native deep learning for strong gravitational lensing images.

`import lens_hf` registers the LensMAE config, models and image processor with the transformers Auto classes,
and marks them for `register_for_auto_class`, so every saved folder also carries the model code and an
`auto_map` (loadable with `trust_remote_code=True` where lens_hf is not installed).
"""

import transformers

from .image_processing_lens import LensImageProcessor
from .models.lens_mae import (
    LensMAEConfig,
    LensMAEForImageClassification,
    LensMAEForPreTraining,
    LensMAEForSuperResolution,
    LensMAEModel,
    modeling_lens_mae,
)
from .pipelines import D4TestTimeAugmentation, LensImageClassificationPipeline

__version__ = "0.1.0"


def _register() -> None:
    transformers.AutoConfig.register(LensMAEConfig.model_type, LensMAEConfig, exist_ok=True)
    for auto_name, class_name in modeling_lens_mae.LENS_MAE_AUTO_CLASSES.items():
        model_class = getattr(modeling_lens_mae, class_name)
        getattr(transformers, auto_name).register(LensMAEConfig, model_class, exist_ok=True)
        model_class.register_for_auto_class(auto_name)
    transformers.AutoImageProcessor.register(
        LensMAEConfig, image_processor_classes={"pil": LensImageProcessor}, exist_ok=True
    )
    LensMAEConfig.register_for_auto_class()
    LensImageProcessor.register_for_auto_class("AutoImageProcessor")


_register()

__all__ = [
    "D4TestTimeAugmentation",
    "LensImageClassificationPipeline",
    "LensImageProcessor",
    "LensMAEConfig",
    "LensMAEModel",
    "LensMAEForPreTraining",
    "LensMAEForImageClassification",
    "LensMAEForSuperResolution",
]
