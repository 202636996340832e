"""Lensing image classification metrics: accuracy, ROC AUC (micro, macro, per class), ROC curves, confusions."""

import datasets
import evaluate

from lens_hf.metrics import functional
from lens_hf.metrics import references

_DESCRIPTION = """
Metrics of dark-matter substructure classification (no_sub / cdm / axion, or any K classes) as the
DeepLense papers report them: accuracy of the arg-max class; ROC AUC micro-averaged (one-vs-rest on
the flattened one-hot references against the flattened class probabilities), macro-averaged and per
class; the ROC curve points of every class and of the micro average; and the confusion matrix
(rows = true class, columns = predicted class). Binary tasks may pass one probability per example.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `float`, shape (N, K), or `list` of `float`, shape (N,)):
        class probabilities per example (rows sum to 1), or class logits with `from_logits=True`;
        for binary tasks, the probability of class 1.
    references (`list` of `int`, shape (N,)): true class ids in [0, K).
    class_names (`list` of `str`, *optional*): names used as keys of the per-class results.
    from_logits (`bool`, defaults to `False`): apply a softmax (sigmoid for 1-D input) first.
Returns:
    accuracy, roc_auc_micro, roc_auc_macro (`float`), roc_auc_per_class (`dict` name -> `float`),
    roc_curves (`dict` name or "micro" -> {"fpr": list, "tpr": list}), confusion_matrix (K x K `list`),
    class_names, num_examples.
Raises:
    ValueError: mismatched lengths, NaN/inf scores, ids outside [0, K), rows that are not
    probabilities without `from_logits=True`, or a class absent from the references (its AUC is undefined).
Example:
    >>> import lens_hf.metrics
    >>> metric = lens_hf.metrics.load("classification")
    >>> result = metric.compute(predictions=[[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]], references=[0, 1, 1])
    >>> result["accuracy"], result["roc_auc_micro"]
"""

_CITATION = references.citations("deeplense")


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class LensClassification(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features({"predictions": datasets.Sequence(datasets.Value("float64")),
                                   "references": datasets.Value("int64")}),
                datasets.Features({"predictions": datasets.Value("float64"), "references": datasets.Value("int64")}),
            ],
            reference_urls=["https://arxiv.org/abs/1909.07346"],
        )

    def _compute(self, predictions, references, class_names=None, from_logits=False):
        return functional.classification_metrics(predictions, references, class_names, from_logits)
