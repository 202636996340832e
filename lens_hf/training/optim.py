"""Optimisers and schedules of the MAE recipes (facebookresearch/mae): the lr scaling rule, parameter groups
without weight decay on norms/biases/tokens, layer-wise lr decay for finetuning, LARS for linear probing, and a
per-step linear-warmup + cosine schedule."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

# 1-D tensors (biases, norm scales) and the learned tokens are never weight-decayed (MAE, timm).
NO_DECAY_NAMES = ("cls_token", "mask_token", "position_embeddings")


def scaled_learning_rate(base_lr: float, total_batch_size: int) -> float:
    """The MAE linear scaling rule: lr = base_lr * total_batch / 256."""
    if total_batch_size < 1:
        raise ValueError(f"total batch size must be >= 1, got {total_batch_size}")
    return base_lr * total_batch_size / 256


def _decays(name: str, param: nn.Parameter) -> bool:
    return param.ndim > 1 and not any(token in name for token in NO_DECAY_NAMES)


def encoder_layer_id(name: str, num_layers: int) -> int:
    """Depth of a parameter for layer-wise decay: 0 for embeddings, i + 1 for block i, num_layers + 1 for the rest
    (final norm and head). Names are those of LensMAE models (`vit.embeddings.*`, `vit.layers.<i>.*`)."""
    stripped = name.removeprefix("vit.")
    if stripped.startswith("embeddings."):
        return 0
    if stripped.startswith("layers."):
        return int(stripped.split(".")[1]) + 1
    return num_layers + 1


def parameter_groups(model: nn.Module, weight_decay: float, layer_decay: float | None = None) -> list[dict]:
    """Trainable parameters split by (decay or not) x (lr scale). With `layer_decay`, block i gets
    lr scale layer_decay ** (num_layers + 1 - (i + 1)) (MAE finetune); without, every scale is 1."""
    num_layers = getattr(getattr(model, "config", None), "num_hidden_layers", 0)
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        layer = encoder_layer_id(name, num_layers) if layer_decay is not None else 0
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
    """Per-step linear warmup to the peak lr, then half-cosine to `min_lr_ratio * peak` at `total_steps`."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    warmup_steps = min(max(warmup_steps, 0), total_steps)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return LambdaLR(optimizer, factor)
