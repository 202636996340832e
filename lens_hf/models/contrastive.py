"""SimCLR around any transformers image encoder: the encoder (LensMAE's `LensMAEModel` or transformers'
`ResNetModel`), a projection head, the NT-Xent temperature and the view augmentation.

Only the encoder is a published model: `save_pretrained` writes the encoder alone (the projection head is
dropped, as SimCLR prescribes; its features generalise better than the projection's) with the contrastive
settings recorded in its config (`lens_contrastive`), so the folder is a plain transformers model that
`AutoModel.from_pretrained` loads and `finetune.py --model_name_or_path` starts a probe, finetune or LoRA from.
The whole wrapper (projection included) is what `save_state` checkpoints, so resuming continues the same run.
This module is lens_hf's, not Hub model code: nothing of it is needed to load the saved encoder.
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.transforms import LensViewAugmentation

CONFIG_FIELD = "lens_contrastive"


def encoder_features(encoder: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    """The pooled feature vector of each image: a ResNet's global average pool, or the mean of a ViT's patch
    tokens (LensMAE, without its cls token: the pooling its classification head uses by default)."""
    output = encoder(pixel_values=pixel_values, return_dict=True)
    pooled = getattr(output, "pooler_output", None)
    if pooled is not None:
        return pooled.flatten(1)
    return output.last_hidden_state[:, 1:].mean(dim=1)


def feature_size(encoder: nn.Module) -> int:
    config = encoder.config
    if getattr(config, "hidden_sizes", None):  # ResNet: the last stage's width
        return int(config.hidden_sizes[-1])
    return int(config.hidden_size)


class ContrastiveModel(nn.Module):
    """`encoder` + SimCLR's projection MLP (Linear -> ReLU -> Linear, SimCLR v1: no BatchNorm, so the head
    computes the same on one process as on several); `forward` returns the projected embeddings the NT-Xent
    loss compares."""

    def __init__(self, encoder: nn.Module, projection_dim: int = 128, temperature: float = 0.2,
                 augmentation: LensViewAugmentation | None = None):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"the NT-Xent temperature must be > 0, got {temperature!r}")
        if not (isinstance(projection_dim, int) and projection_dim > 0):
            raise ValueError(f"projection_dim must be a positive integer, got {projection_dim!r}")
        self.encoder = encoder
        width = feature_size(encoder)
        self.projection = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, projection_dim))
        self.temperature = float(temperature)
        self.augmentation = augmentation or LensViewAugmentation()
        self.projection_dim = projection_dim

    @property
    def config(self):
        """The encoder's config: what the runner records the task in and the processor reads the geometry from."""
        return self.encoder.config

    def features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return encoder_features(self.encoder, pixel_values)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.projection(self.features(pixel_values))

    def settings(self) -> dict:
        return {"temperature": self.temperature, "projection_dim": self.projection_dim,
                "augmentation": self.augmentation.to_dict(), "projection_head": "dropped at save time"}

    def save_pretrained(self, save_directory, **kwargs):
        """Save the encoder alone, a plain transformers model, with the contrastive settings in its config."""
        setattr(self.encoder.config, CONFIG_FIELD, self.settings())
        return self.encoder.save_pretrained(save_directory, **kwargs)


def augmentation_of(encoder_or_wrapper) -> LensViewAugmentation:
    """The view augmentation a contrastive encoder was trained with (its config records it), else the default."""
    if isinstance(encoder_or_wrapper, ContrastiveModel):
        return encoder_or_wrapper.augmentation
    recorded = getattr(encoder_or_wrapper.config, CONFIG_FIELD, None) or {}
    return LensViewAugmentation(**recorded.get("augmentation", {}))
