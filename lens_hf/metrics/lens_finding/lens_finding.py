"""Lens-finding metrics: ROC AUC, average precision, TPR at FPR 1e-2 and 1e-3, F1 at a threshold."""

import datasets
import evaluate

from lens_hf.metrics import functional
from lens_hf.metrics import references

_DESCRIPTION = """
Metrics of strong-lens finding (lens vs non-lens, usually very imbalanced) as in the Strong
Gravitational Lens Finding Challenge: ROC AUC; average precision (area under the step-wise
precision-recall curve); the highest true-positive rate reachable at a false-positive rate of at
most 1e-2 and 1e-3 (the regime a survey search runs in; with n negatives the smallest non-zero FPR
is 1/n, reported as num_negatives); and F1, precision and recall when calling score >= threshold a lens.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `float`, shape (N,)): lens scores, higher = more lens-like.
    references (`list` of `int`, shape (N,)): 1 = lens, 0 = non-lens.
    threshold (`float`, defaults to 0.5): score at and above which an example counts as a lens for F1. To score a
        test split as lens-hf runs do, pass the threshold chosen on the validation split:
        `lens_hf.metrics.functional.f1_optimal_threshold(labels, scores)["threshold"]`, which a trained
        lens finder saves as `config.decision_threshold`.
    fpr_targets (`tuple` of `float`, defaults to (1e-2, 1e-3)): FPRs for the `tpr_at_fpr_*` keys.
Returns:
    roc_auc, average_precision, tpr_at_fpr_1e-2, tpr_at_fpr_1e-3, f1, precision, recall (`float`),
    threshold, num_positives, num_negatives.
Raises:
    ValueError: mismatched lengths, NaN/inf scores, labels other than 0/1, or only one class present.
Example:
    >>> import lens_hf.metrics
    >>> metric = lens_hf.metrics.load("lens_finding")
    >>> metric.compute(predictions=[0.9, 0.2, 0.6, 0.1], references=[1, 0, 1, 0])["roc_auc"]
"""

_CITATION = references.citations("lens_finding_challenge")


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class LensFinding(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("float64"),
                                        "references": datasets.Value("int64")}),
            reference_urls=["https://arxiv.org/abs/1802.03609"],
        )

    def _compute(self, predictions, references, threshold=0.5, fpr_targets=functional.DEFAULT_FPR_TARGETS):
        return functional.lens_finding_metrics(predictions, references, threshold, fpr_targets)
