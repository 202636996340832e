"""The plain vision transformer (Dosovitskiy et al. 2021) as transformers' `ViTConfig`, patch 16: ViT-B/16 (the
config's defaults, the size of the ImageNet checkpoints) and ViT-S/16 (the DeiT-S width, a quarter of the
compute). At 64 px a 16-pixel patch gives a 4 x 4 grid; `--config_overrides patch_size=8` trades compute for a
finer one."""

from functools import partial

from transformers import ViTConfig

from .base import Architecture

REFERENCE = "Dosovitskiy et al. 2021, An Image is Worth 16x16 Words"
DEFINING = ("hidden_size", "num_hidden_layers", "num_attention_heads")

VIT_BASE = Architecture(name="vit_base", title="ViT-B/16", reference=REFERENCE, make_config=ViTConfig,
                        defining_fields=DEFINING)
VIT_SMALL = Architecture(name="vit_small", title="ViT-S/16", reference=REFERENCE, defining_fields=DEFINING,
                         make_config=partial(ViTConfig, hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                                             intermediate_size=1536))
ARCHITECTURES = (VIT_BASE, VIT_SMALL)
