"""What an architecture is: a name users pass to `--architecture`, the words a model card uses for it, and the
transformers config of its published size. The network itself is always transformers' own class
(`AutoModelForImageClassification.from_config`), so a run folder of any architecture loads on the Hub without
lens_hf."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from transformers import AutoModelForImageClassification, PretrainedConfig


@dataclass(frozen=True)
class Architecture:
    """One published network size, e.g. ResNet-34 or EfficientNet-B3.

    `make_config(**fields)` returns the transformers config of that size; `fields` are the data geometry
    (`num_channels`) and the task head (`num_labels`, `id2label`, `problem_type`, ...). `defining_fields` are the
    config values that make this size what it is (a ResNet-50 checkpoint is not a ResNet-34). `initialise`, when
    set, re-initialises a fresh model where transformers' own initialisation does not train from scratch."""

    name: str
    title: str
    make_config: Callable[..., PretrainedConfig]
    defining_fields: tuple[str, ...] = ()
    reference: str = ""
    initialise: Callable[[torch.nn.Module], None] | None = None

    @property
    def model_type(self) -> str:
        return self.make_config().model_type

    def config(self, image_size: int, num_channels: int, **fields) -> PretrainedConfig:
        """The config of a fresh model for `num_channels`-band, `image_size`-pixel images."""
        config = self.make_config(num_channels=num_channels, **fields)
        config.image_size = image_size  # read by the image processor of the run (and ViT's patch grid)
        return config

    def build(self, image_size: int, num_channels: int, **fields):
        """A randomly initialised transformers image classifier of this architecture."""
        model = AutoModelForImageClassification.from_config(self.config(image_size, num_channels, **fields))
        if self.initialise is not None:
            self.initialise(model)
        return model

    def check_checkpoint_config(self, config: PretrainedConfig, where: str) -> list[str]:
        """A checkpoint config is of this architecture's family (an error otherwise). A checkpoint of another size
        of the family (a ResNet-50 given for resnet34, a small ResNet of one's own) keeps its own size, as
        `from_pretrained` would; the returned sentences say so."""
        expected = self.make_config()
        if config.model_type != expected.model_type:
            raise ValueError(f"{where} is a {config.model_type!r} model; --architecture {self.name} needs a "
                             f"{expected.model_type!r} checkpoint")
        differences = [f"{key}={getattr(config, key, None)!r} (not {getattr(expected, key, None)!r})"
                       for key in self.defining_fields
                       if _comparable(getattr(config, key, None)) != _comparable(getattr(expected, key, None))]
        if not differences:
            return []
        return [f"The checkpoint is not the published {self.title}: {', '.join(differences)}; the "
                "checkpoint's own size is kept."]


@torch.no_grad()
def he_fan_out_initialisation(model: torch.nn.Module) -> None:
    """The initialisation the EfficientNet paper trains from (as torchvision applies it) for the convolutions: He
    normal with fan-out, BatchNorm at identity; the classifier keeps transformers' N(0, 0.02) (the paper's
    U(+-1/sqrt(outputs)) would make a 1-output regression head start tens of dex off). transformers initialises
    EfficientNet's convolutions with N(0, 0.02), meant to be loaded over; from scratch the signal then vanishes
    through the blocks: the pooled features of a fresh EfficientNet-B0 in training mode have a standard deviation of
    about 1e-31 (B7: 1e-29) against 0.55 with this initialisation (measured on 40 px images), so no gradient
    reaches the stem and it never trains."""
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, mode="fan_out")
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, (torch.nn.BatchNorm2d, torch.nn.GroupNorm)):
            torch.nn.init.ones_(module.weight)
            torch.nn.init.zeros_(module.bias)


def _comparable(value):
    return list(value) if isinstance(value, (list, tuple)) else value
