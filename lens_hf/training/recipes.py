"""Training recipes (facebookresearch/mae, DESIGN §5) and model size presets.

A recipe fills the `RunArguments`/config fields a user left unset (`None`), so the default command of each
script is the recipe; anything given on the command line or in a YAML file wins.
"""

from __future__ import annotations

from dataclasses import fields

RECIPES: dict[str, dict] = {
    # MAE pretraining: AdamW (0.9, 0.95), wd 0.05, base lr 1.5e-4, warmup then cosine, mask 0.75.
    "pretrain": dict(optimizer="adamw", base_learning_rate=1.5e-4, weight_decay=0.05, warmup_ratio=0.05),
    # MAE linear probe: LARS, wd 0, base lr 0.1, frozen encoder with BatchNorm1d(affine=False) + Linear.
    "linear_probe": dict(optimizer="lars", base_learning_rate=0.1, weight_decay=0.0, warmup_ratio=0.1),
    # MAE finetune: AdamW + layer-wise lr decay 0.75, wd 0.05, base lr 1e-3 (5e-4 .. 1e-3), drop path 0.1.
    "finetune": dict(optimizer="adamw", base_learning_rate=1e-3, weight_decay=0.05, layer_decay=0.75, warmup_ratio=0.1,
                     drop_path_rate=0.1),
    # From scratch: the finetune recipe without layer decay (every layer is new).
    "scratch": dict(optimizer="adamw", base_learning_rate=1e-3, weight_decay=0.05, layer_decay=None, warmup_ratio=0.1,
                    drop_path_rate=0.1),
    # Super-resolution head on the pretrained encoder: AdamW, no layer decay.
    "super_resolution": dict(optimizer="adamw", base_learning_rate=1e-3, weight_decay=0.01, warmup_ratio=0.05),
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


def apply_recipe(run_args, recipe: str) -> dict:
    """Fill unset (`None`) fields of `run_args` from `RECIPES[recipe]`; returns the recipe's remaining keys
    (model-config values such as `drop_path_rate`) for the caller to apply to the config."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; known: {sorted(RECIPES)}")
    names = {f.name for f in fields(run_args)}
    leftover = {}
    for key, value in RECIPES[recipe].items():
        if key in names:
            if getattr(run_args, key) is None:
                setattr(run_args, key, value)
        else:
            leftover[key] = value
    return leftover


def parse_key_values(text: str | None) -> dict:
    """'a=1,b=0.5,c=mse,d=true,e.f=64' -> {'a': 1, 'b': 0.5, 'c': 'mse', 'd': True, 'e': {'f': 64}}: ints, floats,
    bools and strings; a dotted key fills a nested dict (e.g. `preset_overrides.image_size=64`)."""
    parsed: dict = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        if "=" not in item:
            raise ValueError(f"expected comma-separated key=value pairs, got {item!r}")
        key, raw = (s.strip() for s in item.split("=", 1))
        *parents, leaf = key.split(".")
        target = parsed
        for parent in parents:
            target = target.setdefault(parent, {})
            if not isinstance(target, dict):
                raise ValueError(f"{key!r}: {parent!r} is both a value and a group")
        target[leaf] = _scalar(raw)
    return parsed


def _scalar(raw: str):
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw
