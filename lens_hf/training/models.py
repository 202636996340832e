"""Building the model a script trains: from a checkpoint (folder or Hub id) or fresh from a size preset."""

from __future__ import annotations

from transformers import ResNetConfig

from ..models.lens_mae import LensMAEConfig
from .arguments import parse_overrides
from .recipes import MODEL_PRESETS


def fresh_config(model_args, image_size: int, num_channels: int, **fields) -> LensMAEConfig:
    """A new LensMAEConfig: preset size, then the data geometry, then `fields`, then --config_overrides."""
    if model_args.model_preset not in MODEL_PRESETS:
        raise ValueError(f"model_preset must be one of {sorted(MODEL_PRESETS)}, got {model_args.model_preset!r}")
    values = {**MODEL_PRESETS[model_args.model_preset], "image_size": image_size, "num_channels": num_channels}
    values.update({k: v for k, v in fields.items() if v is not None})
    values.update(parse_overrides(model_args.config_overrides, "--config_overrides"))
    return LensMAEConfig(**values)


def pretrained(model_class, model_args, **config_fields):
    """`model_class.from_pretrained(model_name_or_path)` with config fields (and --config_overrides) applied."""
    fields = {k: v for k, v in config_fields.items() if v is not None}
    fields.update(parse_overrides(model_args.config_overrides, "--config_overrides"))
    return model_class.from_pretrained(model_args.model_name_or_path, trust_remote_code=model_args.trust_remote_code,
                                       **fields)


def resnet18_config(image_size: int, num_channels: int, **fields) -> ResNetConfig:
    """transformers' ResNet-18 (basic blocks 2-2-2-2, widths 64-512) with `num_channels` input bands: the CNN
    baseline DeepLense compares against and the backbone of its SimCLR work."""
    config = ResNetConfig(num_channels=num_channels, embedding_size=64, hidden_sizes=[64, 128, 256, 512],
                          depths=[2, 2, 2, 2], layer_type="basic", **fields)
    config.image_size = image_size  # read by the image processor of the run
    return config
