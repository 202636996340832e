"""Masked-autoencoder reconstruction metrics: MSE on masked patches (the MAE objective) and on visible ones."""

import datasets
import evaluate

from lens_hf.metrics import functional
from lens_hf.metrics import references

_DESCRIPTION = """
The reconstruction error of a masked autoencoder, as the MAE paper defines its loss: the mean over
masked patches of each patch's mean squared error between predicted and target pixels (targets
normalised per patch when the model uses norm_pix_loss). Comparing it on training and held-out
images shows over-fitting of the pretraining. The MSE on visible patches is reported beside it.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (array of shape (N, num_patches, patch_dim)): predicted patch pixels (the decoder logits).
    references (array of shape (N, num_patches, patch_dim)): target patch pixels (`model.patchify(pixel_values)`,
        normalised as in training).
    mask (array of shape (N, num_patches)): 1 = masked, 0 = visible (the `mask` output of ViTMAE/LensMAE).
Returns:
    masked_mse, visible_mse, mask_ratio (`float`), num_images (`int`).
Raises:
    ValueError: shapes that differ, NaN/inf values, a mask with values other than 0/1 or no masked patch.
Example:
    >>> import numpy as np, lens_hf.metrics
    >>> metric = lens_hf.metrics.load("masked_reconstruction")
    >>> target = np.random.rand(2, 4, 16)
    >>> metric.compute(predictions=target * 0.9, references=target, mask=[[1, 1, 1, 0], [1, 0, 1, 1]])
"""

_CITATION = references.citations("mae")

_PATCHES = datasets.Sequence(datasets.Sequence(datasets.Value("float32")))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MaskedReconstruction(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": _PATCHES, "references": _PATCHES,
                                        "mask": datasets.Sequence(datasets.Value("int8"))}),
            reference_urls=["https://arxiv.org/abs/2111.06377"],
        )

    def _compute(self, predictions, references, mask):
        return functional.masked_reconstruction_metrics(predictions, references, mask)
