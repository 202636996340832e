"""ResNet-18/34/50 (He et al. 2016) as transformers' `ResNetConfig`: ResNet-18 is the common DeepLense baseline
(and its SimCLR backbone), ResNet-34 its axion-mass regressor, ResNet-50 a substructure classifier."""

from functools import partial

from transformers import ResNetConfig

from .base import Architecture

REFERENCE = "He et al. 2016, Deep Residual Learning for Image Recognition"
DEFINING = ("embedding_size", "hidden_sizes", "depths", "layer_type")


def _resnet(name: str, title: str, depths: list[int], layer_type: str, hidden_sizes: list[int]) -> Architecture:
    return Architecture(name=name, title=title, reference=REFERENCE, defining_fields=DEFINING,
                        make_config=partial(ResNetConfig, embedding_size=64, hidden_sizes=hidden_sizes,
                                            depths=depths, layer_type=layer_type))


RESNET18 = _resnet("resnet18", "ResNet-18", [2, 2, 2, 2], "basic", [64, 128, 256, 512])
RESNET34 = _resnet("resnet34", "ResNet-34", [3, 4, 6, 3], "basic", [64, 128, 256, 512])
RESNET50 = _resnet("resnet50", "ResNet-50", [3, 4, 6, 3], "bottleneck", [256, 512, 1024, 2048])
ARCHITECTURES = (RESNET18, RESNET34, RESNET50)
