"""Training recipes (facebookresearch/mae, scaled to small images) and model size presets.

A recipe fills the argument fields (RunArguments, DataArguments) and model-config fields a user left unset
(`None`), so the default command of each script is the recipe; anything given on the command line or in a YAML
file wins.
"""

from __future__ import annotations

from dataclasses import fields

RECIPES: dict[str, dict] = {
    # MAE pretraining: AdamW (0.9, 0.95), wd 0.05, base lr 1.5e-4, warmup then cosine, mask 0.75.
    "pretrain": dict(optimizer="adamw", base_learning_rate=1.5e-4, weight_decay=0.05, warmup_ratio=0.05,
                     normalization="minmax"),
    # MAE linear probe: LARS, wd 0, base lr 0.1, frozen encoder with BatchNorm1d(affine=False) + Linear.
    "linear_probe": dict(optimizer="lars", base_learning_rate=0.1, weight_decay=0.0, warmup_ratio=0.1,
                         normalization="minmax"),
    # MAE finetune: AdamW + layer-wise lr decay 0.75, wd 0.05, base lr 1e-3 (5e-4 .. 1e-3), drop path 0.1.
    "finetune": dict(optimizer="adamw", base_learning_rate=1e-3, weight_decay=0.05, layer_decay=0.75, warmup_ratio=0.1,
                     drop_path_rate=0.1, normalization="minmax"),
    # From scratch: the finetune recipe without layer decay (every layer is new).
    "scratch": dict(optimizer="adamw", base_learning_rate=1e-3, weight_decay=0.05, layer_decay=None, warmup_ratio=0.1,
                    drop_path_rate=0.1, normalization="minmax"),
    # Super-resolution head on the pretrained encoder: AdamW, no layer decay; LR and HR stay on their common
    # scale (no per-image normalisation, which would scale the two images differently).
    "super_resolution": dict(optimizer="adamw", base_learning_rate=1e-3, weight_decay=0.01, warmup_ratio=0.05,
                             normalization="none"),
    # SimCLR (Chen et al. 2020) at small batch: AdamW instead of LARS (LARS is for batches of thousands),
    # base lr 1e-3 (x total batch / 256), wd 1e-4, short warmup then cosine; NT-Xent temperature 0.2 is the
    # script's default (SimCLR's best at small batch lies in 0.1-0.5).
    "contrastive": dict(optimizer="adamw", base_learning_rate=1e-3, weight_decay=1e-4, warmup_ratio=0.05,
                        normalization="minmax"),
    # LoRA finetune (Hu et al. 2022) of a pretrained encoder: only the low-rank adapters and the head train, so
    # a larger lr than full finetuning and no layer decay by default (the frozen weights need no protection).
    "lora": dict(optimizer="adamw", base_learning_rate=4e-3, weight_decay=0.01, layer_decay=None, warmup_ratio=0.1,
                 drop_path_rate=0.1, normalization="minmax"),
}

# LensMAEConfig sizes. `small` is LensMAEConfig's default (the "default LensMAE"); `tiny` is for tests/smoke runs.
MODEL_PRESETS: dict[str, dict] = {
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                 decoder_hidden_size=32, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
                 decoder_intermediate_size=64),
    "small": dict(),
    "base": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536,
                 decoder_hidden_size=256, decoder_num_hidden_layers=4, decoder_num_attention_heads=8,
                 decoder_intermediate_size=1024),
}


def apply_recipe(recipe: str, *argument_objects) -> dict:
    """Fill the unset (`None`) fields of `argument_objects` (RunArguments, DataArguments, ...) from
    `RECIPES[recipe]`; returns the recipe's remaining keys (model-config values such as `drop_path_rate`) for
    the caller to apply to the config. A value the user gave (file or command line) is never replaced."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; known: {sorted(RECIPES)}")
    leftover = {}
    for key, value in RECIPES[recipe].items():
        owners = [obj for obj in argument_objects if key in {f.name for f in fields(obj)}]
        for owner in owners:
            if getattr(owner, key) is None:
                setattr(owner, key, value)
        if not owners:
            leftover[key] = value
    return leftover
