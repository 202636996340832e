"""Strong-lens finding (nonlens / lens) on imbalanced data: a two-class classifier scored by the lens
probability: ROC AUC, average precision, TPR at fixed false-positive rates, F1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..metrics import functional, plots
from .base import CardSection
from .classification import CLASSIFIER_CONFIG_KEYS, ClassificationTask


def lens_probability(logits: np.ndarray) -> np.ndarray:
    """P(lens) from two-class logits (class 1 = lens)."""
    return torch.from_numpy(np.asarray(logits)).softmax(-1)[:, 1].numpy()


class LensFindingTask(ClassificationTask):
    name = "lens_finding"
    default_dataset_config = "lens_finding"
    metric_module = "lens_finding"
    card = CardSection(
        title="strong-lens finding (lens vs non-lens)",
        auto_class="AutoModelForImageClassification",
        pipeline_tag="image-classification",
        eval_task_type="image-classification",
        headline_metrics=(("roc_auc", "ROC AUC"), ("average_precision", "average precision"),
                          ("tpr_at_fpr_1e-2", "TPR at FPR 1e-2"), ("tpr_at_fpr_1e-3", "TPR at FPR 1e-3"),
                          ("f1", "F1")),
        citation_keys=("deeplense", "lens_finding_challenge", "mae"),
        usage="lens_probability = float(outputs.logits.softmax(-1)[0, 1])",
        config_keys=CLASSIFIER_CONFIG_KEYS,
    )

    def compute_metrics(self, outputs, class_names=None):
        return functional.lens_finding_metrics(lens_probability(outputs["predictions"]),
                                               outputs["targets"].astype(np.int64))

    def plots(self, outputs, metrics, folder: Path, split, model):
        curve = functional.roc_curve(outputs["targets"].astype(int), lens_probability(outputs["predictions"]))
        return {f"ROC curves ({split})": plots.plot_roc_curves({"lens": curve}, folder / f"roc_{split}.png",
                                                               log_fpr=True)}
