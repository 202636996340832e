"""The task metrics of lens-hf as plain numpy functions.

These are what the bundled `evaluate` modules call, and what training scripts can call directly on
arrays. ROC curves, ROC AUC, average precision, precision/recall/F1 and the confusion matrix come from
`sklearn.metrics`; this module adds the input checks, the DeepLense conventions (micro-averaged
one-vs-rest AUC, TPR at fixed FPR read off the full ROC curve) and the result layout. The regression,
super-resolution (PSNR, Gaussian-window SSIM) and masked-reconstruction metrics are written here; the
tests check SSIM and PSNR against scikit-image. Every function validates its input and raises a
`ValueError` that names the argument and what was expected; results are plain Python floats and
lists, ready for `json.dump`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn import metrics as skm

DEFAULT_FPR_TARGETS = (1e-2, 1e-3)
# numpy < 2 only has the old name; lens_hf.metrics.plots labels its ROC curves with it.
trapezoid = getattr(np, "trapezoid", None) or np.trapz


# -- input validation ----------------------------------------------------------------------------
def to_numpy(values, name: str, dtype=np.float64) -> np.ndarray:
    """Array-like (list, numpy, torch tensor on any device) -> numpy array of `dtype`."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    try:
        array = np.asarray(values, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise ValueError(f"`{name}` must be numeric and rectangular (same length in every row): {err}") from err
    return array


def _check_finite(array: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(array)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"`{name}` holds {int(bad.sum())} NaN/inf value(s) (first at index {first}); "
                         "metrics need finite values.")


def _check_same_length(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if len(a) != len(b):
        raise ValueError(f"`{name_a}` has {len(a)} entries but `{name_b}` has {len(b)}; they must match.")
    if len(a) == 0:
        raise ValueError(f"`{name_a}` and `{name_b}` are empty; metrics need at least one example.")


def _integer_labels(references, num_classes: int | None, name: str = "references") -> np.ndarray:
    labels = to_numpy(references, name)
    if labels.ndim != 1:
        raise ValueError(f"`{name}` must be a 1-D sequence of integer class ids, got shape {labels.shape}.")
    _check_finite(labels, name)
    if not np.all(labels == np.round(labels)):
        raise ValueError(f"`{name}` must hold integer class ids, got non-integer values.")
    labels = labels.astype(np.int64)
    if labels.min() < 0 or (num_classes is not None and labels.max() >= num_classes):
        raise ValueError(f"`{name}` holds class ids in [{labels.min()}, {labels.max()}] but the scores have "
                         f"{num_classes} column(s); ids must lie in [0, {num_classes - 1}].")
    return labels


def _one_value_per_example(values, name: str) -> np.ndarray:
    array = to_numpy(values, name)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(f"`{name}` must hold one value per example, shape (N,) or (N, 1); got {array.shape}.")
    return array


# -- ROC, AUC, precision-recall ------------------------------------------------------------------
def _check_binary(labels: np.ndarray, scores: np.ndarray, what: str) -> tuple[int, int]:
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        present = "positive" if positives else "negative"
        raise ValueError(f"{what} is undefined when only one class is present: all {len(labels)} references "
                         f"are {present}. Evaluate on a split that holds both classes.")
    return positives, negatives


def roc_curve(labels, scores, name: str = "ROC") -> dict:
    """ROC points (fpr, tpr, thresholds) at every distinct score, starting at (0, 0) with threshold +inf.

    `sklearn.metrics.roc_curve(drop_intermediate=False)`: collinear points are kept, so every threshold
    is an operating point. `labels` are 0/1 (or booleans), 1 = positive.
    """
    labels, scores = np.asarray(labels, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    _check_binary(labels, scores, name)
    fpr, tpr, thresholds = skm.roc_curve(labels, scores, pos_label=1, drop_intermediate=False)
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": thresholds.tolist()}


def _area(curve: dict) -> float:
    """Trapezoidal area under a `roc_curve` result: over all distinct thresholds, so ties count one half."""
    return float(skm.auc(curve["fpr"], curve["tpr"]))


def roc_auc(labels, scores, name: str = "ROC AUC") -> float:
    """Area under the ROC curve: `sklearn.metrics.auc` over every point of `roc_curve`, so ties count one half."""
    return _area(roc_curve(labels, scores, name))


def average_precision(labels, scores) -> float:
    """Sum over thresholds of (recall step) × precision: the step-wise area, without interpolation
    (`sklearn.metrics.average_precision_score`)."""
    labels, scores = np.asarray(labels, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    _check_binary(labels, scores, "Average precision")
    return float(skm.average_precision_score(labels, scores, pos_label=1))


def _highest_tpr(curve: dict, target_fpr: float) -> float:
    fpr, tpr = np.asarray(curve["fpr"]), np.asarray(curve["tpr"])
    return float(tpr[fpr <= target_fpr + 1e-12].max())


def tpr_at_fpr(labels, scores, target_fpr: float) -> float:
    """The highest true-positive rate reachable with a false-positive rate at or below `target_fpr`,
    read off the full ROC curve (every threshold)."""
    return _highest_tpr(roc_curve(labels, scores, "TPR at fixed FPR"), target_fpr)


# -- task metrics --------------------------------------------------------------------------------
# Probabilities computed from logits are rounded to this many decimals: softmaxes that are equal in exact
# arithmetic (rows with the same logit differences) then tie on every CPU, instead of being ordered by the last
# bit of the machine's exp (on the golden 3-class case that moved the micro AUC by 4e-6 between two machines;
# rounded, it equals the 50-digit result).
LOGIT_PROBABILITY_DECIMALS = 12


def _class_probabilities(predictions, from_logits: bool) -> np.ndarray:
    scores = to_numpy(predictions, "predictions")
    if scores.ndim == 1:  # binary: the score of the positive class
        if from_logits:
            scores = np.round(1.0 / (1.0 + np.exp(-scores)), LOGIT_PROBABILITY_DECIMALS)
        _check_finite(scores, "predictions")
        if scores.min() < 0 or scores.max() > 1:
            raise ValueError("1-D `predictions` are read as the probability of class 1 and must lie in [0, 1]; "
                             "pass from_logits=True for logits.")
        return np.stack([1.0 - scores, scores], axis=1)
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise ValueError(f"`predictions` must be (num_examples, num_classes) class scores with at least 2 "
                         f"columns, or 1-D positive-class probabilities; got shape {scores.shape}.")
    _check_finite(scores, "predictions")
    if from_logits:
        shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
        return np.round(shifted / shifted.sum(axis=1, keepdims=True), LOGIT_PROBABILITY_DECIMALS)
    if scores.min() < 0 or not np.allclose(scores.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("`predictions` rows must be class probabilities (non-negative, summing to 1) for the "
                         "micro-averaged AUC to be meaningful; pass from_logits=True to apply a softmax.")
    return scores


def classification_metrics(predictions, references, class_names: Sequence[str] | None = None,
                           from_logits: bool = False) -> dict:
    """Accuracy, ROC AUC (micro, macro, per class), ROC curves and the confusion matrix.

    `predictions`: (N, K) class probabilities (or logits with `from_logits=True`), or (N,)
    probabilities of class 1 for binary tasks. `references`: (N,) integer class ids.
    Micro AUC is the one-vs-rest AUC of the flattened one-hot references against the flattened
    probabilities (what DeepLense reports); macro is the mean of the per-class one-vs-rest AUCs.
    Confusion matrix rows are true classes, columns predicted classes.
    """
    probabilities = _class_probabilities(predictions, from_logits)
    num_classes = probabilities.shape[1]
    labels = _integer_labels(references, num_classes)
    _check_same_length(probabilities, labels, "predictions", "references")
    names = [str(i) for i in range(num_classes)] if class_names is None else [str(n) for n in class_names]
    if len(names) != num_classes:
        raise ValueError(f"`class_names` has {len(names)} names but the scores have {num_classes} classes.")
    one_hot = np.eye(num_classes)[labels]
    per_class, curves = {}, {}
    for k, name in enumerate(names):
        curve = roc_curve(one_hot[:, k], probabilities[:, k], f"ROC AUC of class {name!r}")
        curves[name] = {"fpr": curve["fpr"], "tpr": curve["tpr"]}
        per_class[name] = _area(curve)
    micro = roc_curve(one_hot.ravel(), probabilities.ravel(), "Micro-averaged ROC AUC")
    curves["micro"] = {"fpr": micro["fpr"], "tpr": micro["tpr"]}
    predicted = probabilities.argmax(axis=1)
    confusion = skm.confusion_matrix(labels, predicted, labels=np.arange(num_classes))
    return {
        "accuracy": float(np.mean(predicted == labels)),
        "roc_auc_micro": _area(micro),
        "roc_auc_macro": float(np.mean(list(per_class.values()))),
        "roc_auc_per_class": per_class,
        "roc_curves": curves,
        "confusion_matrix": confusion.tolist(),
        "class_names": names,
        "num_examples": int(len(labels)),
    }


def _scores_at_threshold(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """F1, precision and recall when score >= `threshold` counts as a lens; no predicted lens at all gives
    precision 0 (and F1 0), not a warning."""
    precision, recall, f1, _ = skm.precision_recall_fscore_support(labels, (scores >= threshold).astype(np.int64),
                                                                   average="binary", zero_division=0.0)
    return {"f1": float(f1), "precision": float(precision), "recall": float(recall)}


def lens_finding_metrics(predictions, references, threshold: float = 0.5,
                         fpr_targets: Sequence[float] = DEFAULT_FPR_TARGETS) -> dict:
    """ROC AUC, average precision, TPR at fixed FPRs, and F1/precision/recall at `threshold`.

    `predictions`: (N,) lens scores (higher = more lens-like; any scale for the ranking metrics,
    the F1 threshold applies to the same scale). `references`: (N,) 1 = lens, 0 = non-lens.
    With n negatives the smallest non-zero FPR is 1/n: TPR at FPR 1e-3 needs >= 1000 negatives
    to mean more than "TPR with zero false positives" (reported as `num_negatives`).
    """
    scores = _one_value_per_example(predictions, "predictions")
    _check_finite(scores, "predictions")
    labels = _integer_labels(references, 2)
    _check_same_length(scores, labels, "predictions", "references")
    positives, negatives = _check_binary(labels, scores, "Lens-finding ROC AUC")
    curve = roc_curve(labels, scores)
    result = {
        "roc_auc": _area(curve),
        "average_precision": average_precision(labels, scores),
    }
    for target in fpr_targets:
        result[f"tpr_at_fpr_{target:.0e}".replace("e-0", "e-")] = _highest_tpr(curve, target)
    result.update(_scores_at_threshold(labels, scores, threshold))
    result.update({
        "threshold": float(threshold),
        "num_positives": positives,
        "num_negatives": negatives,
    })
    return result


def precision_recall_curve(labels, scores) -> dict:
    """Precision and recall at every distinct score (`sklearn.metrics.precision_recall_curve`), by increasing
    threshold, ending at (recall 0, precision 1) without a threshold: `precision` and `recall` have one entry more
    than `thresholds`. What the precision-recall plot draws; on imbalanced lens samples it shows the purity a
    search trades for completeness, which the ROC curve hides."""
    labels, scores = np.asarray(labels, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    _check_binary(labels, scores, "Precision-recall curve")
    precision, recall, thresholds = skm.precision_recall_curve(labels, scores, pos_label=1)
    return {"precision": precision.tolist(), "recall": recall.tolist(), "thresholds": thresholds.tolist()}


def _f1_of_curve(curve: dict) -> np.ndarray:
    """F1 at each threshold of a `precision_recall_curve` result (0 where precision and recall are both 0)."""
    precision, recall = np.asarray(curve["precision"][:-1]), np.asarray(curve["recall"][:-1])
    total = precision + recall
    return np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)


def f1_optimal_threshold(labels, scores) -> dict:
    """The score threshold (predict a lens when score >= threshold) with the highest F1 on these examples, read
    off `precision_recall_curve`, with the F1, precision and recall it gives.

    Chosen on the validation split and applied unchanged to the test split, it replaces an arbitrary 0.5 (which
    a model trained on 10 % lenses, or with class weights, has no reason to sit at). Ties (equal F1 to 1e-12
    relative) go to the highest threshold: the purer of the equally good samples. The threshold is one of the
    scores, so it can be compared exactly with scores of the same dtype.
    """
    scores = _one_value_per_example(scores, "scores")
    _check_finite(scores, "scores")
    labels = _integer_labels(labels, 2, "labels")
    _check_same_length(scores, labels, "scores", "labels")
    curve = precision_recall_curve(labels, scores)
    f1 = _f1_of_curve(curve)
    best = int(np.flatnonzero(np.isclose(f1, f1.max(), rtol=1e-12, atol=0.0))[-1])  # thresholds increase
    return {"threshold": float(curve["thresholds"][best]), "f1": float(f1[best]),
            "precision": float(curve["precision"][best]), "recall": float(curve["recall"][best])}


DEFAULT_DECISION_THRESHOLD = 0.5


def lens_finding_evaluation(predictions, references, decision_threshold: float | None = None,
                            threshold_source: str | None = None,
                            fpr_targets: Sequence[float] = DEFAULT_FPR_TARGETS) -> dict:
    """What the lens-finding task reports on a split: `lens_finding_metrics` with `f1`, `precision` and `recall`
    at `decision_threshold` (the one chosen on the validation split, `f1_optimal_threshold`), the same three at
    0.5 as `f1_at_0.5`, `precision_at_0.5`, `recall_at_0.5`, the threshold as `threshold` and where it came from
    as `threshold_source`, and the precision-recall curve points (`precision_recall_curve`).

    Without a `decision_threshold` (no validation split was scored) the threshold is 0.5 and `threshold_source`
    says so, so `f1` never silently means something else.
    """
    if decision_threshold is None:
        decision_threshold = DEFAULT_DECISION_THRESHOLD
        threshold_source = "default 0.5 (no validation-chosen threshold)"
    elif isinstance(decision_threshold, bool) or not isinstance(decision_threshold, (int, float, np.floating)) \
            or not np.isfinite(decision_threshold):
        raise ValueError(f"`decision_threshold` must be a finite score, got {decision_threshold!r}.")
    result = lens_finding_metrics(predictions, references, decision_threshold, fpr_targets)
    scores, labels = _one_value_per_example(predictions, "predictions"), _integer_labels(references, 2)
    for key, value in _scores_at_threshold(labels, scores, DEFAULT_DECISION_THRESHOLD).items():
        result[f"{key}_at_0.5"] = value
    result["threshold_source"] = threshold_source or "given"
    result["precision_recall_curve"] = precision_recall_curve(labels, scores)
    return result


def regression_metrics(predictions, references) -> dict:
    """MAE, RMSE, bias and scatter of predicted vs true log10 mass, in dex.

    bias = mean(pred - true); scatter = population std of (pred - true), so rmse² = bias² + scatter².
    `r2` is the coefficient of determination.
    """
    predicted = _one_value_per_example(predictions, "predictions")
    truth = _one_value_per_example(references, "references")
    _check_same_length(predicted, truth, "predictions", "references")
    _check_finite(predicted, "predictions")
    _check_finite(truth, "references")
    residual = predicted - truth
    total = np.sum((truth - truth.mean()) ** 2)
    return {
        "mae": float(np.mean(np.abs(residual))),
        "rmse": float(np.sqrt(np.mean(residual ** 2))),
        "bias": float(np.mean(residual)),
        "scatter": float(np.std(residual)),
        "r2": float(1.0 - np.sum(residual ** 2) / total) if total > 0 else float("nan"),
        "num_examples": int(len(truth)),
    }


# -- images: super-resolution --------------------------------------------------------------------
def image_batch(values, name: str, require_finite: bool = True) -> np.ndarray:
    """(N, H, W) or (N, C, H, W) -> (N, C, H, W) float64."""
    images = to_numpy(values, name)
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4:
        raise ValueError(f"`{name}` must be a batch of images (N, H, W) or (N, C, H, W), got shape {images.shape}.")
    if require_finite:
        _check_finite(images, name)
    return images


def _gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    offsets = np.arange(size) - (size - 1) / 2
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum()


def _filter_valid(images: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable correlation over the last two axes, keeping only positions where the window fits."""
    size = len(kernel)
    rows = np.lib.stride_tricks.sliding_window_view(images, size, axis=-2) @ kernel
    return np.lib.stride_tricks.sliding_window_view(rows, size, axis=-1) @ kernel


def ssim_per_image(predictions, references, data_range: float = 1.0, window_size: int = 11,
                   sigma: float = 1.5) -> np.ndarray:
    """Mean SSIM per image (averaged over channels) with a Gaussian window, as Wang et al. 2004.

    Matches skimage's structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=...): the SSIM map is averaged over the pixels whose
    whole window lies inside the image.
    """
    x, y = image_batch(predictions, "predictions"), image_batch(references, "references")
    if x.shape != y.shape:
        raise ValueError(f"`predictions` {x.shape} and `references` {y.shape} must have the same shape.")
    if min(x.shape[-2:]) < window_size:
        raise ValueError(f"SSIM needs images of at least {window_size}x{window_size} px, got {x.shape[-2:]}.")
    kernel = _gaussian_kernel(window_size, sigma)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = _filter_valid(x, kernel), _filter_valid(y, kernel)
    var_x = _filter_valid(x * x, kernel) - mu_x ** 2
    var_y = _filter_valid(y * y, kernel) - mu_y ** 2
    cov = _filter_valid(x * y, kernel) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return ssim_map.mean(axis=(1, 2, 3))


def super_resolution_metrics(predictions, references, data_range: float = 1.0) -> dict:
    """Mean PSNR (dB), SSIM and MSE over a batch of super-resolved images against the HR targets.

    PSNR is computed per image, 10·log10(data_range² / MSE), then averaged (an exact image gives inf).
    """
    x, y = image_batch(predictions, "predictions"), image_batch(references, "references")
    if x.shape != y.shape:
        raise ValueError(f"`predictions` {x.shape} and `references` {y.shape} must have the same shape.")
    mse_per_image = np.mean((x - y) ** 2, axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        psnr_per_image = 10 * np.log10(data_range ** 2 / mse_per_image)
    return {
        "psnr": float(np.mean(psnr_per_image)),
        "ssim": float(np.mean(ssim_per_image(x, y, data_range))),
        "mse": float(np.mean(mse_per_image)),
        "num_images": int(len(x)),
    }


def bicubic_upsample(low_resolution, size: tuple[int, int], data_range: float = 1.0) -> np.ndarray:
    """Bicubic upsampling (torch, a = -0.75, align_corners=False) to `size`, clipped to [0, data_range]."""
    import torch

    images = image_batch(low_resolution, "low_resolution")
    upsampled = torch.nn.functional.interpolate(torch.from_numpy(images), size=tuple(size), mode="bicubic",
                                                align_corners=False)
    return upsampled.clamp(0.0, data_range).numpy()


def bicubic_baseline_metrics(low_resolution, references, data_range: float = 1.0) -> dict:
    """The metrics of `super_resolution_metrics` for plain bicubic upsampling of the LR inputs.

    The baseline every SR model must beat; reported beside the model's own numbers.
    """
    targets = image_batch(references, "references")
    lr = image_batch(low_resolution, "low_resolution")
    _check_same_length(lr, targets, "low_resolution", "references")
    if lr.shape[1] != targets.shape[1]:
        raise ValueError(f"`low_resolution` has {lr.shape[1]} channel(s), `references` {targets.shape[1]}.")
    return super_resolution_metrics(bicubic_upsample(lr, targets.shape[-2:], data_range), targets, data_range)


# -- masked reconstruction ------------------------------------------------------------------------
def masked_reconstruction_metrics(predictions, references, mask) -> dict:
    """Mean squared error on masked patches (the MAE objective) and on visible ones.

    `predictions`, `references`: (N, num_patches, patch_dim) patch pixels (normalised the same way
    as the training target). `mask`: (N, num_patches), 1 = masked (hidden from the encoder).
    The masked MSE is the mean over masked patches of each patch's mean squared error.
    """
    x, y = to_numpy(predictions, "predictions"), to_numpy(references, "references")
    hidden = to_numpy(mask, "mask")
    if x.ndim != 3 or x.shape != y.shape:
        raise ValueError(f"`predictions` {x.shape} and `references` {y.shape} must both be (N, num_patches, "
                         "patch_dim) with equal shapes.")
    if hidden.shape != x.shape[:2]:
        raise ValueError(f"`mask` must be (N, num_patches) = {x.shape[:2]}, got {hidden.shape}.")
    for array, name in ((x, "predictions"), (y, "references"), (hidden, "mask")):
        _check_finite(array, name)
    if not np.isin(hidden, (0, 1)).all():
        raise ValueError("`mask` must hold only 0 (visible) and 1 (masked).")
    if hidden.sum() == 0:
        raise ValueError("`mask` marks no patch as masked; the masked-patch MSE is undefined.")
    per_patch = np.mean((x - y) ** 2, axis=-1)
    visible = 1 - hidden
    return {
        "masked_mse": float(np.sum(per_patch * hidden) / hidden.sum()),
        "visible_mse": float(np.sum(per_patch * visible) / visible.sum()) if visible.sum() else float("nan"),
        "mask_ratio": float(hidden.mean()),
        "num_images": int(len(x)),
    }


def view_retrieval_metrics(features_a, features_b) -> dict:
    """How well two augmented views of the same images find each other among all images of a split (the
    SimCLR pretext task, scored on the encoder's features): row i of `features_a` and of `features_b` are views of
    image i. `top1`: fraction of rows whose nearest `features_b` row (cosine) is its own view (chance 1/N);
    `positive_cosine` / `negative_cosine`: mean cosine similarity of matching / non-matching pairs."""
    a, b = to_numpy(features_a, "features_a"), to_numpy(features_b, "features_b")
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"`features_a` {a.shape} and `features_b` {b.shape} must both be (N, dim) with equal shapes.")
    if len(a) < 2:
        raise ValueError("view retrieval needs at least 2 images")
    for array, name in ((a, "features_a"), (b, "features_b")):
        _check_finite(array, name)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    similarity = a @ b.T
    n = len(a)
    off_diagonal = ~np.eye(n, dtype=bool)
    return {
        "top1": float(np.mean(similarity.argmax(axis=1) == np.arange(n))),
        "positive_cosine": float(np.mean(np.diag(similarity))),
        "negative_cosine": float(np.mean(similarity[off_diagonal])),
        "chance_top1": 1.0 / n,
        "num_images": int(n),
    }


def scalar_metrics(result: dict, prefix: str = "") -> dict[str, float]:
    """The scalar entries of a metrics result, nested dicts flattened with '/' (curves and matrices dropped).

    What a tracker, `metrics.json` summary or a model card's `eval_results` can take.
    """
    flat = {}
    for key, value in result.items():
        if isinstance(value, dict):
            flat.update(scalar_metrics(value, f"{prefix}{key}/"))
        elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
            flat[f"{prefix}{key}"] = float(value)
    return flat
