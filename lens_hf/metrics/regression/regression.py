"""Dark-matter (axion) mass regression metrics in dex of log10 m: MAE, RMSE, bias, scatter, R^2."""

import datasets
import evaluate

from lens_hf.metrics import functional
from lens_hf.metrics import references

_DESCRIPTION = """
Metrics of the axion-mass regressor, which predicts log10(m / eV): mean absolute error and root mean
squared error in dex (the numbers DeepLense reports), bias = mean(predicted - true), scatter = standard
deviation of (predicted - true) (so rmse^2 = bias^2 + scatter^2), and the coefficient of determination R^2.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `float`, shape (N,)): predicted log10 mass.
    references (`list` of `float`, shape (N,)): true log10 mass.
Returns:
    mae, rmse, bias, scatter (`float`, dex), r2 (`float`), num_examples (`int`).
Raises:
    ValueError: mismatched lengths or NaN/inf values.
Example:
    >>> import lens_hf.metrics
    >>> metric = lens_hf.metrics.load("regression")
    >>> metric.compute(predictions=[-23.1, -22.4], references=[-23.0, -22.5])["mae"]
"""

_CITATION = references.citations("deeplense")


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class LensMassRegression(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("float64"),
                                        "references": datasets.Value("float64")}),
        )

    def _compute(self, predictions, references):
        return functional.regression_metrics(predictions, references)
