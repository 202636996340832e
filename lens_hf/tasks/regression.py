"""Axion-mass regression: log10(m / eV) from the image; the head works on standardised targets and outputs
physical units. MAE, RMSE, bias and scatter in dex, and a predicted-vs-true scatter plot."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..data.transforms import random_d4
from ..metrics import functional, plots
from .base import CardSection, LossContext, Task
from .classification import CLASSIFIER_CONFIG_KEYS


def standardised_mse(predictions: torch.Tensor, targets: torch.Tensor, config) -> torch.Tensor:
    """Mean squared error of physical-unit predictions in units of the training targets' std
    (`config.regression_target_std`, 1 when absent): the loss LensMAE's regression head computes, here for every
    architecture, so a transformers ResNet or ViT regressor trains on the same scale."""
    scale = float(getattr(config, "regression_target_std", None) or 1.0)
    if targets.numel() != predictions.shape[0] or predictions.reshape(predictions.shape[0], -1).shape[1] != 1:
        raise ValueError(f"regression needs one prediction and one target per image, got predictions of shape "
                         f"{tuple(predictions.shape)} and targets of shape {tuple(targets.shape)}")
    predictions = predictions.reshape(-1)
    return F.mse_loss(predictions / scale, targets.reshape(-1).to(predictions.dtype) / scale)


class RegressionTask(Task):
    name = "regression"
    target_column = "log10_m_axion"
    default_dataset_config = "regression_model_ii"
    metric_module = "regression"
    quantity = "log10(m/eV)"  # the target, as the plots name it
    card = CardSection(
        title="dark-matter (axion) mass regression, log10(m / eV)",
        auto_class="AutoModelForImageClassification",
        pipeline_tag=None,
        eval_task_type="image-regression",
        headline_metrics=(("mae", "MAE (dex)"), ("rmse", "RMSE (dex)")),
        citation_keys=("deeplense", "mae"),
        usage="log10_axion_mass = float(outputs.logits[0, 0])",
        config_keys=(*CLASSIFIER_CONFIG_KEYS, "regression_target_mean", "regression_target_std"),
    )

    def loss(self, model, batch, context: LossContext):
        pixel_values = batch["pixel_values"]
        if context.augment:
            (pixel_values,) = random_d4(pixel_values, generator=context.generator)
        return standardised_mse(model(pixel_values=pixel_values).logits, batch["labels"],
                                context.accelerator.unwrap_model(model).config)

    def compute_metrics(self, outputs, class_names=None):
        return functional.regression_metrics(outputs["predictions"].reshape(-1), outputs["targets"].reshape(-1))

    def plots(self, outputs, metrics, folder: Path, split, model):
        scatter = plots.plot_regression_scatter(outputs["targets"].reshape(-1), outputs["predictions"].reshape(-1),
                                                folder / f"regression_{split}.png", title=self.card.title,
                                                quantity=self.quantity)
        return {f"Predicted vs true {self.quantity} ({split})": scatter}
