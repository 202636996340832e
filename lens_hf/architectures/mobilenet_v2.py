"""MobileNetV2 (Sandler et al. 2018) at width 1.0 as transformers' `MobileNetV2Config`: one of the DeepLense
axion-mass regressors, the smallest network here."""

from functools import partial

from transformers import MobileNetV2Config

from .base import Architecture

MOBILENET_V2 = Architecture(
    name="mobilenet_v2", title="MobileNetV2 (width 1.0)",
    reference="Sandler et al. 2018, MobileNetV2: Inverted Residuals and Linear Bottlenecks",
    make_config=partial(MobileNetV2Config, depth_multiplier=1.0), defining_fields=("depth_multiplier",))
ARCHITECTURES = (MOBILENET_V2,)
