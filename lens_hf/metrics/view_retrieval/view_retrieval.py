"""Contrastive-pretraining metrics: do two augmented views of an image find each other among all images?"""

import datasets
import evaluate

from lens_hf.metrics import functional
from lens_hf.metrics import references

_DESCRIPTION = """
The SimCLR pretext task scored on an encoder's features: row i of `predictions` and of `references` are the
features of two random views of image i. Top-1 view retrieval is the fraction of images whose nearest
neighbour (cosine similarity) among the other view's features is its own view; chance is 1/N. The mean cosine
similarity of matching and of non-matching pairs is reported beside it.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (array of shape (N, dim)): features of the first view of each image.
    references (array of shape (N, dim)): features of the second view, in the same order.
Returns:
    top1, positive_cosine, negative_cosine, chance_top1 (`float`), num_images (`int`).
Raises:
    ValueError: shapes that differ or are not (N, dim), fewer than 2 images, NaN/inf values.
Example:
    >>> import numpy as np, lens_hf.metrics
    >>> metric = lens_hf.metrics.load("view_retrieval")
    >>> features = np.random.rand(8, 16)
    >>> metric.compute(predictions=features, references=features + 0.01)
"""

_CITATION = references.citations("simclr")

_FEATURES = datasets.Sequence(datasets.Value("float32"))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ViewRetrieval(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": _FEATURES, "references": _FEATURES}),
            reference_urls=["https://arxiv.org/abs/2002.05709"],
        )

    def _compute(self, predictions, references):
        return functional.view_retrieval_metrics(predictions, references)
