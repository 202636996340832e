"""ConvNeXt-T (Liu et al. 2022) as transformers' `ConvNextConfig`, whose defaults are the tiny size: a modern
convolutional network trained with transformer-era recipes, between the ResNets and the ViTs."""

from transformers import ConvNextConfig

from .base import Architecture

CONVNEXT_TINY = Architecture(
    name="convnext_tiny", title="ConvNeXt-T", reference="Liu et al. 2022, A ConvNet for the 2020s",
    make_config=ConvNextConfig, defining_fields=("hidden_sizes", "depths"))
ARCHITECTURES = (CONVNEXT_TINY,)
