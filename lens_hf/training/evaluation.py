"""Evaluation shared by the training scripts and scripts/evaluate.py: run a model over a split (gathered across
processes), score it with `lens_hf.metrics`, and draw the plots the model card embeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..metrics import functional, plots

# Task name -> the key of model outputs that is the prediction.
PREDICTION_KEY = {
    "classification": "logits",
    "lens_finding": "logits",
    "regression": "logits",
    "super_resolution": "reconstruction",
}


def load_saved_model(path, trust_remote_code: bool = False):
    """The LensMAE class a saved folder (or Hub id) was trained as, read off `config.architectures`."""
    from transformers import AutoConfig

    from ..models.lens_mae import modeling_lens_mae

    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    architecture = (config.architectures or ["LensMAEForPreTraining"])[0]
    model_class = getattr(modeling_lens_mae, architecture, None)
    if model_class is None:
        raise ValueError(f"{path}: architecture {architecture!r} is not a LensMAE model")
    return model_class.from_pretrained(path, trust_remote_code=trust_remote_code)


def task_of(model) -> str:
    """The task of a LensMAE model (pretraining, super_resolution, regression, lens_finding, classification)."""
    name = type(model).__name__
    if name.endswith("ForPreTraining"):
        return "pretraining"
    if name.endswith("ForSuperResolution"):
        return "super_resolution"
    if getattr(model, "is_regression", False):
        return "regression"
    return "lens_finding" if model.config.num_labels == 2 else "classification"


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


@torch.no_grad()
def collect_outputs(accelerator, model, dataloader, task: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Predictions and targets of every row of `dataloader` (prepared, possibly sharded), gathered on every
    process without duplicates. Pretraining uses a fixed mask per batch (seeded), so numbers are comparable
    across evaluations."""
    model.eval()
    unwrapped = accelerator.unwrap_model(model)
    parts: dict[str, list] = {}
    for index, batch in enumerate(dataloader):
        pixel_values = batch["pixel_values"]
        if task == "pretraining":
            generator = torch.Generator(device=pixel_values.device).manual_seed(seed * 7919 + index * 31 + accelerator.process_index)
            noise = torch.rand(pixel_values.shape[0], unwrapped.config.num_patches, generator=generator, device=pixel_values.device)
            output = model(pixel_values=pixel_values, noise=noise)
            target, _, _ = unwrapped.pixel_targets(pixel_values)
            values = {"predictions": output.logits, "targets": target, "mask": output.mask, "inputs": pixel_values}
        else:
            output = model(pixel_values=pixel_values)
            values = {"predictions": output[PREDICTION_KEY[task]], "targets": batch["labels"]}
            if task == "super_resolution":
                values["inputs"] = pixel_values
        gathered = accelerator.gather_for_metrics({k: v.float().contiguous() for k, v in values.items()})
        for key, value in gathered.items():
            parts.setdefault(key, []).append(value.cpu().numpy())
    return {key: np.concatenate(value) for key, value in parts.items()}


def compute_metrics(task: str, outputs: dict[str, np.ndarray], class_names: list[str] | None = None) -> dict:
    """The metrics of DESIGN §6 for `task` from `collect_outputs`."""
    predictions, targets = outputs["predictions"], outputs["targets"]
    if task == "pretraining":
        return functional.masked_reconstruction_metrics(predictions, targets, outputs["mask"])
    if task == "classification":
        return functional.classification_metrics(predictions, targets.astype(np.int64), class_names, from_logits=True)
    if task == "lens_finding":
        logits = torch.from_numpy(predictions)
        lens_probability = logits.softmax(-1)[:, 1].numpy()
        return functional.lens_finding_metrics(lens_probability, targets.astype(np.int64))
    if task == "regression":
        return functional.regression_metrics(predictions.reshape(-1), targets.reshape(-1))
    if task == "super_resolution":
        return functional.super_resolution_metrics(np.clip(predictions, 0.0, 1.0), targets)
    raise ValueError(f"unknown task {task!r}")


def reference_metrics(task: str, outputs: dict[str, np.ndarray], split: str) -> dict:
    """Baselines shown beside the model in the card (bicubic upsampling for SR)."""
    if task == "super_resolution":
        return {f"bicubic upsampling ({split})": functional.bicubic_baseline_metrics(outputs["inputs"], outputs["targets"])}
    return {}


def make_plots(task: str, outputs: dict[str, np.ndarray], metrics: dict, folder, split: str, patch_size: int | None = None,
               unpatchify=None) -> dict[str, Path]:
    """PNG plots for `task` in `folder`; caption -> path."""
    folder = Path(folder)
    made = {}
    if task == "pretraining":
        reconstruction = unpatchify(torch.from_numpy(outputs["predictions"][:8])).numpy()
        targets = unpatchify(torch.from_numpy(outputs["targets"][:8])).numpy()
        mask = outputs["mask"][:8]
        made[f"MAE reconstructions ({split}): target | masked input | prediction"] = plots.plot_reconstruction_grid(
            targets, mask, reconstruction, patch_size, folder / f"reconstruction_{split}.png"
        )
    elif task in ("classification", "lens_finding"):
        curves = metrics.get("roc_curves") or {"lens": functional.roc_curve(outputs["targets"].astype(int), torch.from_numpy(outputs["predictions"]).softmax(-1)[:, 1].numpy())}
        made[f"ROC curves ({split})"] = plots.plot_roc_curves(curves, folder / f"roc_{split}.png", log_fpr=task == "lens_finding")
        if "confusion_matrix" in metrics:
            made[f"Confusion matrix ({split})"] = plots.plot_confusion_matrix(
                metrics["confusion_matrix"], metrics["class_names"], folder / f"confusion_{split}.png"
            )
    elif task == "regression":
        made[f"Predicted vs true log10(m/eV) ({split})"] = plots.plot_regression_scatter(
            outputs["targets"].reshape(-1), outputs["predictions"].reshape(-1), folder / f"regression_{split}.png"
        )
    elif task == "super_resolution":
        bicubic = functional.bicubic_upsample(outputs["inputs"][:4], outputs["targets"].shape[-2:])
        made[f"Super-resolution ({split}): LR | bicubic | LensMAE | HR"] = plots.plot_sr_grid(
            outputs["inputs"][:4], bicubic, np.clip(outputs["predictions"][:4], 0, 1), outputs["targets"][:4],
            folder / f"super_resolution_{split}.png",
        )
    return made
