"""Strong-lens finding (nonlens / lens) on imbalanced data: a two-class classifier scored by the lens
probability: ROC AUC, average precision, TPR at fixed false-positive rates, and F1 / precision / recall at the
decision threshold chosen on the validation split (and at 0.5); ROC and precision-recall curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..metrics import functional, plots
from .base import CardSection
from .classification import CLASSIFIER_CONFIG_KEYS, ClassificationTask

THRESHOLD_SOURCE = "max F1 on the validation split"


def lens_probability(logits: np.ndarray) -> np.ndarray:
    """P(lens) from two-class logits (class 1 = lens)."""
    return torch.from_numpy(np.asarray(logits)).softmax(-1)[:, 1].numpy()


class LensFindingTask(ClassificationTask):
    name = "lens_finding"
    default_dataset_config = "lens_finding"
    metric_module = "lens_finding"
    # P(lens) at and above which an image is called a lens, chosen on the validation split: saved in config.json
    calibration_fields = ("decision_threshold",)
    card = CardSection(
        title="strong-lens finding (lens vs non-lens)",
        auto_class="AutoModelForImageClassification",
        pipeline_tag="image-classification",
        eval_task_type="image-classification",
        headline_metrics=(("roc_auc", "ROC AUC"), ("average_precision", "average precision"),
                          ("tpr_at_fpr_1e-2", "TPR at FPR 1e-2"), ("tpr_at_fpr_1e-3", "TPR at FPR 1e-3"),
                          ("f1", "F1 at the decision threshold")),
        citation_keys=("deeplense", "lens_finding_challenge", "mae"),
        usage="lens_probability = float(outputs.logits.softmax(-1)[0, 1])",
        config_keys=(*CLASSIFIER_CONFIG_KEYS, "decision_threshold"),
    )

    def calibrate(self, validation_outputs):
        """The P(lens) threshold with the highest validation F1 (`functional.f1_optimal_threshold`)."""
        chosen = functional.f1_optimal_threshold(validation_outputs["targets"].astype(np.int64),
                                                 lens_probability(validation_outputs["predictions"]))
        return {"decision_threshold": chosen["threshold"]}

    def compute_metrics(self, outputs, class_names=None, decision_threshold=None):
        """`functional.lens_finding_evaluation`: `f1` at `decision_threshold` (the model config's, which lens-hf
        runs choose by max F1 on the validation split), `f1_at_0.5` beside it; 0.5 when there is none."""
        return functional.lens_finding_evaluation(lens_probability(outputs["predictions"]),
                                                  outputs["targets"].astype(np.int64), decision_threshold,
                                                  THRESHOLD_SOURCE if decision_threshold is not None else None)

    def plots(self, outputs, metrics, folder: Path, split, model):
        labels, scores = outputs["targets"].astype(int), lens_probability(outputs["predictions"])
        curve = functional.roc_curve(labels, scores)
        made = {f"ROC curves ({split})": plots.plot_roc_curves({"lens": curve}, folder / f"roc_{split}.png",
                                                               log_fpr=True)}
        pr_curve = metrics.get("precision_recall_curve") or functional.precision_recall_curve(labels, scores)
        chosen = {key: metrics[key] for key in ("threshold", "precision", "recall") if key in metrics}
        made[f"Precision-recall curve ({split})"] = plots.plot_precision_recall_curve(
            pr_curve, folder / f"precision_recall_{split}.png", chosen=chosen if len(chosen) == 3 else None,
            positive_fraction=float(np.mean(labels)))
        return made
