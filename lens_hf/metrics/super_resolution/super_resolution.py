"""Super-resolution metrics: PSNR (data range 1), SSIM (Gaussian window 11, sigma 1.5), MSE."""

import datasets
import evaluate

from lens_hf.metrics import functional
from lens_hf.metrics import references

_DESCRIPTION = """
Metrics of lensing super-resolution (e.g. 75 px -> 150 px) against the high-resolution targets:
PSNR in dB computed per image as 10 log10(data_range^2 / MSE) and averaged; SSIM (Wang et al. 2004)
with an 11-tap Gaussian window of sigma 1.5, averaged over the pixels whose window fits inside the
image and over channels (equal to skimage's structural_similarity with gaussian_weights=True,
use_sample_covariance=False); and the mean squared error. Images are (C, H, W) with values in
[0, data_range]. The bicubic baseline is `lens_hf.metrics.functional.bicubic_baseline_metrics`.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (array of shape (N, C, H, W) or (N, H, W)): super-resolved images.
    references (array of the same shape): high-resolution targets.
    data_range (`float`, defaults to 1.0): the value range of the images.
Returns:
    psnr (`float`, dB), ssim (`float`), mse (`float`), num_images (`int`).
Raises:
    ValueError: shapes that differ, NaN/inf pixels, images smaller than the 11 px window.
Example:
    >>> import numpy as np, lens_hf.metrics
    >>> metric = lens_hf.metrics.load("super_resolution")
    >>> hr = np.random.rand(2, 1, 32, 32).astype("float32")
    >>> metric.compute(predictions=hr * 0.95, references=hr)["psnr"]
"""

_CITATION = references.citations("ssim")

_IMAGE_HW = datasets.Sequence(datasets.Sequence(datasets.Value("float32")))
_IMAGE_CHW = datasets.Sequence(_IMAGE_HW)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class LensSuperResolution(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features({"predictions": _IMAGE_CHW, "references": _IMAGE_CHW}),
                datasets.Features({"predictions": _IMAGE_HW, "references": _IMAGE_HW}),
            ],
        )

    def _compute(self, predictions, references, data_range=1.0):
        return functional.super_resolution_metrics(predictions, references, data_range)
