"""The network architectures `--architecture` names besides LensMAE, one file per family, each size an
`Architecture` built from transformers' own config and model classes. Adding one is one `Architecture` in its
family's file (or a new file) plus its entry in `ARCHITECTURES` here.

`transfer.from_checkpoint` starts one from a saved model (a run folder or a Hub id such as an ImageNet ResNet-34):
a 3-channel stem becomes a 1-band stem, a ViT's position grid is resized, and a head that does not fit the task is
replaced, each said in the log and the model card."""

from __future__ import annotations

from . import convnext, cvt, efficientnet, mobilenet_v2, resnet, vit
from .base import Architecture

ARCHITECTURES: dict[str, Architecture] = {architecture.name: architecture for architecture in (
    *resnet.ARCHITECTURES,
    *efficientnet.ARCHITECTURES,
    *mobilenet_v2.ARCHITECTURES,
    *cvt.ARCHITECTURES,
    *vit.ARCHITECTURES,
    *convnext.ARCHITECTURES,
)}


def get_architecture(name: str) -> Architecture:
    """The architecture registered as `name`; an unknown name lists the valid ones."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; valid: lens_mae, {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]


__all__ = ["ARCHITECTURES", "Architecture", "get_architecture"]
