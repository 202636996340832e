"""Starting an architecture from a checkpoint (`--mode finetune --model_name_or_path X`) whose input bands, image
size or head differ from the run's: the model is built from the checkpoint's config with the run's bands, size
and head, and every tensor is copied, adapted where that is exact or standard, or refused:

- a 3-channel stem on 1-band data: the RGB filters are summed, which is exactly what the DeepLense notebooks did
  by repeating the band three times (conv(repeat(x)) = conv with the summed filters);
- a ViT position grid of another size: resized bicubically (the class token kept);
- the output layer when the checkpoint has none, other labels (1000 ImageNet classes into 3) or another problem
  type: a new one is initialised;
- anything else of another shape, or bands that cannot be adapted (2 into 5): an error naming both.

Every adaptation is returned as a sentence for the log and the model card."""

from __future__ import annotations

import copy
import math

import torch
from transformers import AutoConfig, AutoModelForImageClassification

from ..training.models import ModelLoadError, load_checked
from .base import Architecture

HEAD_FIELDS = ("num_labels", "id2label", "label2id", "problem_type")


def output_layer(model) -> tuple[str, torch.nn.Linear]:
    """The head's last Linear (name, module): the layer whose outputs are the logits."""
    prefix = type(model).base_model_prefix
    linears = [(name, module) for name, module in model.named_modules()
               if isinstance(module, torch.nn.Linear) and not name.startswith(prefix + ".") and name != prefix]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no Linear output layer outside its {prefix!r} base model")
    return linears[-1]


@torch.no_grad()
def set_regression_head(model, target_mean: float, target_std: float) -> None:
    """Make a fresh 1-output head predict in physical units, as LensMAE's does: the output layer's initial
    outputs are scaled by the training targets' std and shifted to their mean (so the first prediction is the
    mean, not 0 dex), and the statistics are stored in the config, where the task's loss reads the std."""
    _, layer = output_layer(model)
    if layer.out_features != 1:
        raise ValueError(f"a regression head has one output; {type(model).__name__}'s has {layer.out_features}")
    layer.weight.mul_(target_std)
    if layer.bias is not None:
        layer.bias.mul_(target_std).add_(target_mean)
    model.config.regression_target_mean = float(target_mean)
    model.config.regression_target_std = float(target_std)


def _labels(config) -> tuple:
    return (config.problem_type, tuple(str(config.id2label[k]) for k in sorted(config.id2label, key=int)))


def _resize_position_embeddings(source: torch.Tensor, target_shape: torch.Size) -> torch.Tensor | None:
    """(1, prefix + h*w, d) position embeddings resized to the target's square grid, prefix tokens kept; None if
    either is not such a grid."""
    if source.ndim != 3 or len(target_shape) != 3 or source.shape[-1] != target_shape[-1]:
        return None
    for prefix in (1, 0):
        side, new_side = math.isqrt(source.shape[1] - prefix), math.isqrt(target_shape[1] - prefix)
        if side * side == source.shape[1] - prefix and new_side * new_side == target_shape[1] - prefix:
            grid = source[:, prefix:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
            grid = torch.nn.functional.interpolate(grid.float(), size=(new_side, new_side), mode="bicubic",
                                                   align_corners=False)
            return torch.cat([source[:, :prefix], grid.permute(0, 2, 3, 1).reshape(1, new_side * new_side, -1)], 1)
    return None


def from_checkpoint(architecture: Architecture, path: str, image_size: int, num_channels: int, *,
                    trust_remote_code: bool = False, config_fields: dict | None = None,
                    **head) -> tuple[torch.nn.Module, list[str]]:
    """`architecture` initialised from the checkpoint at `path` for `num_channels`-band, `image_size`-pixel
    images with the task head `head` (num_labels, id2label, label2id, problem_type). Returns the model and the
    adaptations made (sentences for the log and the card: they name no local path)."""
    where = str(path)
    source_config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    notes = architecture.check_checkpoint_config(source_config, where)
    source_channels = getattr(source_config, "num_channels", None)
    if source_channels != num_channels and not (source_channels == 3 and num_channels == 1):
        raise ValueError(f"{where} takes {source_channels} input channels and the data has {num_channels} band(s); "
                         "only a 3-channel (RGB) checkpoint can be adapted, to 1 band, by summing its filters")
    had_head = any(name.endswith("ForImageClassification") for name in (source_config.architectures or []))
    source = load_checked(AutoModelForImageClassification, path, new_head=True, trust_remote_code=trust_remote_code)

    config = copy.deepcopy(source.config)
    config.architectures = None
    config.num_channels = num_channels
    config.image_size = image_size
    for key in ("regression_target_mean", "regression_target_std"):
        if hasattr(config, key):
            delattr(config, key)
    for key in HEAD_FIELDS:
        if key in head:
            setattr(config, key, head[key])
    for key, value in (config_fields or {}).items():
        setattr(config, key, value)
    model = AutoModelForImageClassification.from_config(config)

    prefix = type(model).base_model_prefix + "."
    layer_name, _ = output_layer(model)
    same_labels = had_head and _labels(source.config) == _labels(config)
    if not had_head:
        notes.append("The checkpoint has no classification head; a new {config.num_labels}-output head "
                     "was initialised.")
    elif not same_labels:
        old = source.config.num_labels
        names = ", ".join(str(source.config.id2label[k]) for k in sorted(source.config.id2label, key=int)[:3])
        notes.append(f"The checkpoint's head ({old} outputs: {names}{', ...' if old > 3 else ''}; "
                     f"{source.config.problem_type or 'classification'}) does not fit this task "
                     f"({config.num_labels} output(s), {config.problem_type}); a new output layer was initialised.")
    source_state = source.state_dict()
    target_state = model.state_dict()
    adapted = {}
    for key, target in target_state.items():
        in_base = key.startswith(prefix)
        if key.startswith(layer_name + ".") and not same_labels:
            continue  # the new output layer keeps its initialisation
        if key not in source_state:
            if in_base:
                raise ModelLoadError(f"{where} has no weight {key}, which {type(model).__name__} needs")
            continue  # a head part the checkpoint does not have (a base model checkpoint)
        tensor = source_state[key]
        if tensor.shape == target.shape:
            adapted[key] = tensor
        elif (tensor.ndim == 4 and target.ndim == 4 and tensor.shape[1] == 3 and target.shape[1] == 1
              and tensor.shape[0] == target.shape[0] and tensor.shape[2:] == target.shape[2:]):
            adapted[key] = tensor.sum(1, keepdim=True)
            notes.append(f"The checkpoint's 3-channel input layer `{key}` was adapted to 1 band by summing its RGB "
                         "filters (the same as feeding the band repeated three times).")
        elif key.endswith("position_embeddings") and (resized := _resize_position_embeddings(tensor, target.shape)) is not None:
            adapted[key] = resized.to(tensor.dtype)
            notes.append(f"The position embeddings `{key}` were resized bicubically from {tuple(tensor.shape)} to "
                         f"{tuple(target.shape)} for {image_size}-pixel images.")
        else:
            raise ModelLoadError(f"{where}: weight {key} has shape {tuple(tensor.shape)}, the {architecture.title} for "
                                 f"this data needs {tuple(target.shape)}; it cannot be adapted")
    missing, _ = model.load_state_dict(adapted, strict=False)
    assert all(not k.startswith(prefix) for k in missing), missing
    return model, notes
