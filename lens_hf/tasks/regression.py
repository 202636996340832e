"""Axion-mass regression: log10(m / eV) from the image; the head works on standardised targets and outputs
physical units. MAE, RMSE, bias and scatter in dex, and a predicted-vs-true scatter plot."""

from __future__ import annotations

from pathlib import Path

from ..data.transforms import random_d4
from ..metrics import functional, plots
from .base import CardSection, LossContext, Task
from .classification import CLASSIFIER_CONFIG_KEYS


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
        return model(pixel_values=pixel_values, labels=batch["labels"]).loss

    def compute_metrics(self, outputs, class_names=None):
        return functional.regression_metrics(outputs["predictions"].reshape(-1), outputs["targets"].reshape(-1))

    def plots(self, outputs, metrics, folder: Path, split, model):
        scatter = plots.plot_regression_scatter(outputs["targets"].reshape(-1), outputs["predictions"].reshape(-1),
                                                folder / f"regression_{split}.png", title=self.card.title,
                                                quantity=self.quantity)
        return {f"Predicted vs true {self.quantity} ({split})": scatter}
