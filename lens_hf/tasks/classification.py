"""Dark-matter substructure classification (e.g. axion / cdm / no_sub): K-class cross-entropy (or the focal loss)
on D4-augmented images, accuracy and ROC AUC (micro, macro, per class), ROC curves and the confusion matrix."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..data.transforms import random_d4
from ..metrics import functional, plots
from .base import CardSection, LossContext, Task

CLASSIFIER_CONFIG_KEYS = ("classifier_mode", "classifier_pooling", "classifier_head_norm", "num_labels", "id2label",
                          "problem_type")


def check_focal_gamma(gamma) -> float:
    """`gamma` as a float, or a ValueError naming `focal_gamma`: the focal exponent must be finite and >= 0."""
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not math.isfinite(gamma) or gamma < 0:
        raise ValueError(f"focal_gamma must be a finite number >= 0 (0 is cross-entropy), got {gamma!r}")
    return float(gamma)


def focal_loss(logits: torch.Tensor, labels: torch.Tensor, gamma: float, alpha: torch.Tensor | None = None):
    """The focal loss of Lin et al. 2017, FL = -alpha_t (1 - p_t)^gamma log p_t, averaged over the batch.

    (1 - p_t)^gamma shrinks the loss of examples the model already gets right, so the many easy non-lenses of an
    imbalanced sample stop dominating the gradient. `alpha`: per-class weights (alpha_t = alpha[label]); the mean
    is over examples, not over the weights as `F.cross_entropy(weight=...)` normalises. gamma = 0 without alpha
    is exactly `F.cross_entropy`.
    """
    gamma = check_focal_gamma(gamma)
    labels = labels.long()
    log_p = F.log_softmax(logits, dim=-1)
    # 1 - p via expm1 (exact near p = 1); the floor keeps the gradient of x^gamma finite for gamma < 1 at p = 1.
    not_p = (-torch.expm1(log_p)).clamp_min(torch.finfo(log_p.dtype).tiny)
    modulated = not_p.pow(gamma) * log_p  # x^0 == 1 exactly: gamma 0 leaves log_p as cross-entropy reads it
    if alpha is None:
        return F.nll_loss(modulated, labels)
    alpha = torch.as_tensor(alpha, dtype=modulated.dtype, device=modulated.device)
    if alpha.shape != (logits.shape[-1],):
        raise ValueError(f"focal loss alpha (the class weights) must hold one weight per class, {logits.shape[-1]}; "
                         f"got shape {tuple(alpha.shape)}")
    return (F.nll_loss(modulated, labels, reduction="none") * alpha[labels]).mean()


class ClassificationTask(Task):
    name = "classification"
    target_column = "label"
    default_dataset_config = "model_ii"
    metric_module = "classification"
    has_classes = True
    card = CardSection(
        title="dark-matter substructure classification",
        auto_class="AutoModelForImageClassification",
        pipeline_tag="image-classification",
        eval_task_type="image-classification",
        headline_metrics=(("accuracy", "accuracy"), ("roc_auc_micro", "ROC AUC (micro)"),
                          ("roc_auc_macro", "ROC AUC (macro)")),
        citation_keys=("deeplense", "deeplense_unsupervised", "mae"),
        usage="probabilities = outputs.logits.softmax(-1)[0]\n"
              "print({model.config.id2label[i]: float(p) for i, p in enumerate(probabilities)})",
        config_keys=CLASSIFIER_CONFIG_KEYS,
    )

    def loss(self, model, batch, context: LossContext):
        pixel_values, labels = batch["pixel_values"], batch["labels"]
        if context.augment:
            (pixel_values,) = random_d4(pixel_values, generator=context.generator)
        if context.class_weights is None and context.focal_gamma is None:
            return model(pixel_values=pixel_values, labels=labels).loss
        logits = model(pixel_values=pixel_values).logits
        weights = None if context.class_weights is None else context.class_weights.to(logits.device)
        if context.focal_gamma is not None:
            return focal_loss(logits, labels, context.focal_gamma, alpha=weights)
        return F.cross_entropy(logits, labels.long(), weight=weights)

    def compute_metrics(self, outputs, class_names=None):
        return functional.classification_metrics(outputs["predictions"], outputs["targets"].astype(np.int64),
                                                 class_names, from_logits=True)

    def plots(self, outputs, metrics, folder: Path, split, model):
        made = {f"ROC curves ({split})": plots.plot_roc_curves(metrics["roc_curves"], folder / f"roc_{split}.png")}
        made[f"Confusion matrix ({split})"] = plots.plot_confusion_matrix(
            metrics["confusion_matrix"], metrics["class_names"], folder / f"confusion_{split}.png")
        return made
