"""EfficientNet-B0...B7 (Tan & Le 2019) as transformers' `EfficientNetConfig`: the DeepLense substructure
classifiers and its EfficientNet-B7 lens finder. Each size is (width, depth, dropout) of the paper's compound
scaling; the head width is the scaled 1280 channels of the last convolution, as the published checkpoints have."""

from transformers import EfficientNetConfig
from transformers.models.efficientnet.modeling_efficientnet import round_filters

from .base import Architecture, he_fan_out_initialisation

REFERENCE = "Tan & Le 2019, EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks"
# (width coefficient, depth coefficient, dropout) of B0 ... B7.
SCALING = {
    "b0": (1.0, 1.0, 0.2), "b1": (1.0, 1.1, 0.2), "b2": (1.1, 1.2, 0.3), "b3": (1.2, 1.4, 0.3),
    "b4": (1.4, 1.8, 0.4), "b5": (1.6, 2.2, 0.4), "b6": (1.8, 2.6, 0.5), "b7": (2.0, 3.1, 0.5),
}


def _config_maker(width: float, depth: float, dropout: float):
    def make_config(**fields) -> EfficientNetConfig:
        config = EfficientNetConfig(width_coefficient=width, depth_coefficient=depth, dropout_rate=dropout, **fields)
        config.hidden_dim = round_filters(config, 1280)  # what the classifier reads (the config's default is B7's)
        return config
    return make_config


ARCHITECTURES = tuple(
    Architecture(name=f"efficientnet_{size}", title=f"EfficientNet-{size.upper()}", reference=REFERENCE,
                 make_config=_config_maker(*scaling), initialise=he_fan_out_initialisation,
                 defining_fields=("width_coefficient", "depth_coefficient"))
    for size, scaling in SCALING.items()
)
