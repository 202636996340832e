"""Optimisers and schedules of the MAE recipes (facebookresearch/mae): the lr scaling rule, parameter groups
without weight decay on norms/biases/tokens, layer-wise lr decay for finetuning, LARS for linear probing, and a
per-step linear-warmup + cosine schedule (transformers' own)."""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from transformers import get_cosine_with_min_lr_schedule_with_warmup

# 1-D tensors (biases, norm scales) and the learned tokens are never weight-decayed (MAE, timm).
NO_DECAY_NAMES = ("cls_token", "mask_token", "position_embeddings")


def scaled_learning_rate(base_lr: float, total_batch_size: int) -> float:
    """The MAE linear scaling rule: lr = base_lr * total_batch / 256."""
    if total_batch_size < 1:
        raise ValueError(f"total batch size must be >= 1, got {total_batch_size}")
    return base_lr * total_batch_size / 256


def _decays(name: str, param: nn.Parameter) -> bool:
    return param.ndim > 1 and not any(token in name for token in NO_DECAY_NAMES)


def encoder_layer_id(name: str, num_layers: int, encoder_prefix: str = "vit.") -> int:
    """Depth of a parameter for layer-wise decay: 0 for the encoder's embeddings, i + 1 for its block i,
    num_layers + 1 for the rest (final norm, heads, a pretraining decoder). `encoder_prefix` is where the LensMAE
    encoder sits in the parameter names: "vit." in the LensMAE heads, "" for a bare `LensMAEModel`, longer under
    a wrapper (peft: "base_model.model.vit.")."""
    if name.startswith(encoder_prefix):
        inside = name[len(encoder_prefix):]
        if inside.startswith("embeddings."):
            return 0
        if inside.startswith("layers."):
            return int(inside.split(".")[1]) + 1
    return num_layers + 1


def find_encoder(model: nn.Module) -> tuple[str, int]:
    """(name prefix, number of blocks) of the LensMAE encoder inside `model`: the one module holding an
    `embeddings` module and its blocks as a `layers` ModuleList (`LensMAEModel`), found under any wrapper.

    Raises ValueError when there is none (layer-wise decay cannot be applied to, say, a ResNet) or several."""
    found = [(name, len(module.layers)) for name, module in model.named_modules()
             if isinstance(getattr(module, "embeddings", None), nn.Module)
             and isinstance(getattr(module, "layers", None), nn.ModuleList)]
    if len(found) != 1:
        names = [name for name, _ in model.named_parameters()]
        seen = ", ".join(names[:4]) + (f", ... ({len(names)} parameters)" if len(names) > 4 else "")
        what = ("no module with `embeddings` and `layers.<i>`" if not found
                else f"{len(found)} of them, at {[name or '<the model>' for name, _ in found]}")
        raise ValueError(f"layer-wise lr decay (layer_decay) needs one LensMAE encoder (`embeddings.*` and "
                         f"`layers.<i>.*`, as in LensMAEModel) in the model; {type(model).__name__} has {what}. "
                         f"Its parameters: {seen or 'none'}. Leave layer_decay unset for this model.")
    name, num_layers = found[0]
    return (f"{name}." if name else ""), num_layers


def parameter_groups(model: nn.Module, weight_decay: float, layer_decay: float | None = None) -> list[dict]:
    """Trainable parameters split by (decay or not) x (lr scale). With `layer_decay`, block i of the LensMAE
    encoder gets lr scale layer_decay ** (num_layers + 1 - (i + 1)) (MAE finetune), its embeddings
    layer_decay ** (num_layers + 1), everything else 1; the encoder is found under any prefix (`find_encoder`), and
    a model without one raises ValueError. Without `layer_decay`, every scale is 1."""
    encoder_prefix, num_layers = find_encoder(model) if layer_decay is not None else ("", 0)
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        layer = encoder_layer_id(name, num_layers, encoder_prefix) if layer_decay is not None else 0
        scale = layer_decay ** (num_layers + 1 - layer) if layer_decay is not None else 1.0
        decays = _decays(name, param)
        group = groups.setdefault(
            (layer, decays),
            {"params": [], "names": [], "weight_decay": weight_decay if decays else 0.0, "lr_scale": scale},
        )
        group["params"].append(param)
        group["names"].append(name)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    return [groups[key] for key in sorted(groups)]


class LARS(torch.optim.Optimizer):
    """LARS (You et al. 2017) as in MAE's linear probe: SGD with momentum whose update of every matrix is rescaled
    by trust_coefficient * ||w|| / ||g + wd w||; 1-D parameters (biases, norms) are not adapted or decayed."""

    def __init__(self, params, lr: float = 0.0, weight_decay: float = 0.0, momentum: float = 0.9, trust_coefficient: float = 0.001):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"LARS needs lr, momentum, weight_decay >= 0; got {lr}, {momentum}, {weight_decay}")
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum, trust_coefficient=trust_coefficient))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                update = param.grad
                if param.ndim > 1:
                    update = update.add(param, alpha=group["weight_decay"])
                    param_norm, update_norm = torch.norm(param), torch.norm(update)
                    trust = torch.where(
                        (param_norm > 0) & (update_norm > 0),
                        group["trust_coefficient"] * param_norm / update_norm,
                        torch.ones_like(param_norm),
                    )
                    update = update.mul(trust)
                state = self.state[param]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(param)
                buffer = state["momentum_buffer"]
                buffer.mul_(group["momentum"]).add_(update)
                param.add_(buffer, alpha=-group["lr"])
        return loss


OPTIMIZERS = ("adamw", "lars")


def build_optimizer(
    model: nn.Module,
    name: str,
    learning_rate: float,
    weight_decay: float,
    layer_decay: float | None = None,
    betas: tuple[float, float] = (0.9, 0.95),
) -> torch.optim.Optimizer:
    """AdamW (pretrain/finetune) or LARS (linear probe) over `parameter_groups`; each group's lr is
    `learning_rate * lr_scale`, which the schedule then multiplies."""
    groups = parameter_groups(model, weight_decay, layer_decay)
    for group in groups:
        group["lr"] = learning_rate * group["lr_scale"]
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas)
    if name == "lars":
        return LARS(groups, lr=learning_rate)
    raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}")


def warmup_cosine_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0) -> LambdaLR:
    """Per-step linear warmup to the peak lr, then half-cosine to `min_lr_ratio * peak` at `total_steps`.

    This is transformers' `get_cosine_with_min_lr_schedule_with_warmup(min_lr_rate=min_lr_ratio)`, the schedule of
    the Trainer's `lr_scheduler_type="cosine_with_min_lr"`. With W = warmup_steps (clipped to [0, total_steps]) and
    T = total_steps, step s (0-based) runs at the peak lr times

        s / W                                                               for s < W,
        min_lr_ratio + (1 - min_lr_ratio) * (1 + cos(pi * (s - W) / max(1, T - W))) / 2    for s >= W.

    So the first step runs at lr 0 and step W at the peak. This is transformers' warmup convention; lens-hf's
    hand-written schedule used (s + 1) / W, one step ahead (the cosine part is the same). The factor reaches
    `min_lr_ratio` at s = T, which the training loop never passes (beyond T the cosine would rise again). A LambdaLR,
    whose state the checkpoints keep as JSON (`checkpoint.SCHEDULER_STATE`)."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    warmup_steps = min(max(warmup_steps, 0), total_steps)
    return get_cosine_with_min_lr_schedule_with_warmup(
        optimizer, num_warmup_steps=warmup_steps, num_training_steps=total_steps, min_lr_rate=min_lr_ratio
    )
