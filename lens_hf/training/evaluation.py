"""Evaluation shared by the training scripts and scripts/evaluate.py: load a saved model with its task, run it
over a split (gathered across processes), and re-estimate BatchNorm statistics. What is scored and drawn is the
task's (`lens_hf.tasks`)."""

from __future__ import annotations

import numpy as np
import torch

from ..pipelines import D4TestTimeAugmentation, tta_mode
from ..tasks import CONFIG_FIELD, Task, get_task, task_of
from .adapters import is_adapter_folder, load_adapter_model
from .models import check_finite, load_checked

# Tasks whose prediction is the logits of one image and whose target does not turn with the image, so the mean over
# its D4 views predicts the same thing; and why the others have no TTA.
TTA_TASKS = ("classification", "lens_finding", "regression")
NO_TTA_REASONS = {
    "pretraining": "its outputs are reconstructed patches under a per-image mask, which move with the image",
    "super_resolution": "its output is an image, which turns with the input",
    "contrastive": "its score compares the features of two views of each image; there are no logits to average",
}


def load_saved_model(path, trust_remote_code: bool = False, task: str | Task | None = None):
    """A saved run folder (or Hub id) as the model class it was trained as, and its task.

    The task is the one recorded in its config (`config.lens_task`), or `task` when given (a folder saved
    without one). The model is loaded through the task's transformers Auto class, so every architecture a
    script writes (LensMAE, the ResNet baseline, a contrastive encoder) loads the same way; a LoRA run folder loads
    as its base model with the adapter applied (`adapters.load_adapter_model`)."""
    import transformers
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    recorded = getattr(config, CONFIG_FIELD, None)
    if task is not None and recorded and get_task(task).name != recorded:
        raise ValueError(f"{path} was trained for task {recorded!r}; it cannot be evaluated as {get_task(task).name!r}")
    task = get_task(task) if task is not None else task_of(config, where=f"{path}/config.json")
    auto_class = getattr(transformers, task.card.auto_class)
    if is_adapter_folder(path):  # a LoRA run: its base model with the adapter and head on top
        model = load_adapter_model(path, auto_class, trust_remote_code)
        check_finite(model, str(path))
        return model, task
    return load_checked(auto_class, path, trust_remote_code=trust_remote_code), task


@torch.no_grad()
def recompute_batchnorm_statistics(accelerator, model, dataloader) -> int:
    """Re-estimate every BatchNorm's running mean/variance from `dataloader` (training images, no augmentation)
    with the current weights, averaged over all batches and processes ("precise BN", Wu & Johnson 2021).

    The momentum-0.1 running averages lag a head whose inputs change quickly under finetuning; evaluated with
    them, a regressor's bias swung by ±0.6 dex between consecutive evaluations. Returns the number of BatchNorm
    layers updated (0: nothing to do, the loader is not read)."""
    norms = [m for m in accelerator.unwrap_model(model).modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return 0
    was_training = model.training
    momenta = [m.momentum for m in norms]
    model.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches seen
        norm.train()
    for batch in dataloader:
        model(pixel_values=batch["pixel_values"])
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
        if accelerator.num_processes > 1:
            norm.running_mean.copy_(accelerator.reduce(norm.running_mean, reduction="mean"))
            norm.running_var.copy_(accelerator.reduce(norm.running_var, reduction="mean"))
    model.train(was_training)
    return len(norms)


def checked_tta(tta, task: str | Task) -> str | None:
    """`tta` ("none"/None or "d4") as `collect_outputs` takes it; a ValueError naming why for a task without TTA."""
    mode, task = tta_mode(tta), get_task(task)
    if mode is not None and task.name not in TTA_TASKS:
        reason = NO_TTA_REASONS.get(task.name, "it predicts no logits of a whole image")
        raise ValueError(f"--tta {mode} averages the logits a model predicts for each image over its 8 "
                         f"rotations/flips; a {task.name} model has no such logits ({reason}). TTA is for the "
                         f"tasks {', '.join(TTA_TASKS)}.")
    return mode


@torch.no_grad()
def collect_outputs(accelerator, model, dataloader, task: str | Task, seed: int = 0,
                    tta: str | None = None) -> dict[str, np.ndarray]:
    """What `task` evaluates (`Task.evaluation_outputs`) for every row of `dataloader` (prepared, possibly
    sharded), gathered on every process without duplicates. `tta="d4"`: the model's logits are the mean over the 8
    D4 views of each image (`D4TestTimeAugmentation`), for the tasks of `TTA_TASKS`."""
    task = get_task(task)
    tta = checked_tta(tta, task)
    model.eval()
    unwrapped = accelerator.unwrap_model(model)
    predictor = D4TestTimeAugmentation(model) if tta == "d4" else model
    parts: dict[str, list] = {}
    for batch in dataloader:
        values = task.evaluation_outputs(predictor, batch, unwrapped, seed)
        gathered = accelerator.gather_for_metrics({k: v.float().contiguous() for k, v in values.items()})
        for key, value in gathered.items():
            parts.setdefault(key, []).append(value.cpu().numpy())
    return {key: np.concatenate(value) for key, value in parts.items()}
