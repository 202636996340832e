"""Dark-matter substructure classification (e.g. axion / cdm / no_sub): K-class cross-entropy on D4-augmented
images, accuracy and ROC AUC (micro, macro, per class), ROC curves and the confusion matrix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch.nn.functional as F

from ..data.transforms import random_d4
from ..metrics import functional, plots
from .base import CardSection, LossContext, Task

CLASSIFIER_CONFIG_KEYS = ("classifier_mode", "classifier_pooling", "classifier_head_norm", "num_labels", "id2label",
                          "problem_type")


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
        if context.class_weights is None:
            return model(pixel_values=pixel_values, labels=labels).loss
        logits = model(pixel_values=pixel_values).logits
        return F.cross_entropy(logits, labels.long(), weight=context.class_weights.to(logits.device))

    def compute_metrics(self, outputs, class_names=None):
        return functional.classification_metrics(outputs["predictions"], outputs["targets"].astype(np.int64),
                                                 class_names, from_logits=True)

    def plots(self, outputs, metrics, folder: Path, split, model):
        made = {f"ROC curves ({split})": plots.plot_roc_curves(metrics["roc_curves"], folder / f"roc_{split}.png")}
        made[f"Confusion matrix ({split})"] = plots.plot_confusion_matrix(
            metrics["confusion_matrix"], metrics["class_names"], folder / f"confusion_{split}.png")
        return made
