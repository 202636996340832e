"""The evaluation plots embedded in model cards, written as PNG files.

Figures are drawn with matplotlib's object API on an Agg canvas (no pyplot, no global backend
switch), so plotting works headless, in worker threads, and never changes the caller's
matplotlib state. Every function takes arrays (numpy, lists or CPU/GPU torch tensors), writes one
PNG to `path` (creating its folder) and returns the path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lens_hf.metrics.functional import image_batch, regression_metrics, to_numpy, trapezoid

DPI = 100
IMAGE_CMAP = "magma"


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"Plots are written as PNG; {path} should end in .png.")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=DPI)
    return path


def _plot_images(images, name: str) -> np.ndarray:
    """Images to draw: NaN is allowed (masked patches are drawn blank)."""
    return image_batch(images, name, require_finite=False)


def _displayable(image: np.ndarray) -> tuple[np.ndarray, str | None]:
    """One (C, H, W) image -> what imshow takes: 2-D with a colour map, or an RGB composite for 3 bands."""
    if image.shape[0] == 3:
        finite = np.nan_to_num(image, nan=np.nanmin(image) if np.isfinite(image).any() else 0.0)
        low, high = finite.min(), finite.max()
        rgb = (finite - low) / (high - low) if high > low else np.zeros_like(finite)
        rgb = np.where(np.isnan(image), 0.5, rgb)  # masked pixels of an RGB image show as grey
        return np.moveaxis(rgb, 0, -1), None
    return image.mean(axis=0) if image.shape[0] > 1 else image[0], IMAGE_CMAP


def _image_grid(columns: Mapping[str, np.ndarray], path, num_examples: int, title: str) -> Path:
    """Rows = examples, columns = the named image batches (all with the same N)."""
    lengths = {name: len(batch) for name, batch in columns.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"All image batches must hold the same number of examples, got {lengths}.")
    rows = min(num_examples, next(iter(lengths.values())))
    if rows < 1:
        raise ValueError("No image to plot: the batches are empty or num_examples < 1.")
    figure = _new_figure(2.2 * len(columns), 2.2 * rows + 0.4)
    axes = figure.subplots(rows, len(columns), squeeze=False)
    for column, (name, batch) in enumerate(columns.items()):
        for row in range(rows):
            axis = axes[row, column]
            image, cmap = _displayable(batch[row])
            axis.imshow(image, cmap=cmap, origin="lower", interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(name, fontsize=10)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    return _save(figure, path)


def _finish_rate_plot(figure, axis, path, xlabel: str, ylabel: str, title: str, legend: str) -> Path:
    """Labels, a [0, 1] rate axis, the legend, and the saved file: the common end of the ROC and PR plots."""
    axis.set_ylim(0, 1.01)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.legend(loc=legend, fontsize=8)
    figure.tight_layout()
    return _save(figure, path)


def plot_roc_curves(curves: Mapping[str, Mapping[str, Sequence[float]]], path, title: str = "ROC curves",
                    log_fpr: bool = False) -> Path:
    """ROC curves, one line per entry of `curves` (name -> {"fpr", "tpr"}), AUC in the legend.

    `classification_metrics(...)["roc_curves"]` plugs in directly. `log_fpr=True` stretches the
    low false-positive-rate end, where lens searches operate.
    """
    if not curves:
        raise ValueError("`curves` is empty: pass name -> {'fpr': [...], 'tpr': [...]}.")
    figure = _new_figure(5.0, 4.5)
    axis = figure.subplots()
    for name, curve in curves.items():
        if "fpr" not in curve or "tpr" not in curve:
            raise ValueError(f"Curve {name!r} needs 'fpr' and 'tpr' lists, got keys {sorted(curve)}.")
        fpr, tpr = to_numpy(curve["fpr"], f"{name}.fpr"), to_numpy(curve["tpr"], f"{name}.tpr")
        if fpr.shape != tpr.shape or fpr.ndim != 1:
            raise ValueError(f"Curve {name!r}: fpr {fpr.shape} and tpr {tpr.shape} must be equal-length 1-D lists.")
        style = {"linestyle": "--", "color": "black"} if name == "micro" else {}
        axis.plot(fpr, tpr, label=f"{name} (AUC {trapezoid(tpr, fpr):.3f})", **style)
    if log_fpr:
        axis.set_xscale("log")
        axis.set_xlim(1e-4, 1)
    else:
        axis.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle=":")
        axis.set_xlim(0, 1)
    return _finish_rate_plot(figure, axis, path, "false positive rate", "true positive rate", title, "lower right")


def plot_precision_recall_curve(curve: Mapping[str, Sequence[float]], path, chosen: Mapping[str, float] | None = None,
                                positive_fraction: float | None = None,
                                title: str = "Precision-recall curve") -> Path:
    """Precision against recall (a step line), average precision in the legend.

    `curve`: {"precision", "recall"} in the order `functional.precision_recall_curve` gives them (the lens-finding
    metrics' `precision_recall_curve` plugs in directly). `chosen`: {"precision", "recall"} and optionally
    "threshold" of the operating point to mark (the validation-chosen threshold). `positive_fraction`: drawn as
    the precision of a random classifier, the floor of this plot on an imbalanced sample.
    """
    if "precision" not in curve or "recall" not in curve:
        raise ValueError(f"`curve` needs 'precision' and 'recall' lists, got keys {sorted(curve)}.")
    precision, recall = to_numpy(curve["precision"], "curve.precision"), to_numpy(curve["recall"], "curve.recall")
    if precision.shape != recall.shape or precision.ndim != 1 or len(precision) < 2:
        raise ValueError(f"`curve`: precision {precision.shape} and recall {recall.shape} must be equal-length 1-D "
                         "lists of at least 2 points.")
    if np.any(np.diff(recall) > 0):
        raise ValueError("`curve`: recall must not increase along the curve (sklearn's order: by increasing "
                         "threshold, ending at recall 0).")
    average = float(-np.sum(np.diff(recall) * precision[:-1]))  # sklearn's average precision on the same points
    figure = _new_figure(5.0, 4.5)
    axis = figure.subplots()
    axis.plot(recall, precision, drawstyle="steps-post", label=f"lens (AP {average:.3f})")
    if positive_fraction is not None:
        axis.axhline(positive_fraction, color="grey", linewidth=0.8, linestyle=":",
                     label=f"random ({positive_fraction:.3f})")
    if chosen is not None:
        missing = {"precision", "recall"} - set(chosen)
        if missing:
            raise ValueError(f"`chosen` needs 'precision' and 'recall', missing {sorted(missing)}.")
        label = f"threshold {chosen['threshold']:.3g}" if chosen.get("threshold") is not None else "operating point"
        axis.plot([chosen["recall"]], [chosen["precision"]], marker="o", color="black", linestyle="none",
                  label=f"{label} (P {chosen['precision']:.2f}, R {chosen['recall']:.2f})")
    axis.set_xlim(0, 1)
    return _finish_rate_plot(figure, axis, path, "recall (completeness)", "precision (purity)", title, "lower left")


def plot_confusion_matrix(matrix, class_names: Sequence[str], path, normalize: bool = True,
                          title: str = "Confusion matrix") -> Path:
    """Confusion matrix (rows = true class), shaded by row fraction, with counts written in each cell."""
    counts = to_numpy(matrix, "matrix")
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"`matrix` must be square (K, K), got shape {counts.shape}.")
    if len(class_names) != counts.shape[0]:
        raise ValueError(f"`class_names` has {len(class_names)} names for a {counts.shape[0]}-class matrix.")
    row_totals = counts.sum(axis=1, keepdims=True)
    shown = counts / np.where(row_totals > 0, row_totals, 1) if normalize else counts
    size = 1.2 + 0.9 * len(class_names)
    figure = _new_figure(size + 1.0, size)
    axis = figure.subplots()
    image = axis.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    figure.colorbar(image, ax=axis, fraction=0.046, label="fraction of true class" if normalize else "count")
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            text = f"{shown[i, j]:.2f}\n({int(counts[i, j])})" if normalize else f"{int(counts[i, j])}"
            axis.text(j, i, text, ha="center", va="center", fontsize=8,
                      color="white" if shown[i, j] > 0.6 * (shown.max() or 1) else "black")
    axis.set_xticks(range(len(class_names)), labels=list(class_names), rotation=30)
    axis.set_yticks(range(len(class_names)), labels=list(class_names))
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    axis.set_title(title)
    figure.tight_layout()
    return _save(figure, path)


def plot_regression_scatter(references, predictions, path, title: str = "Axion mass regression",
                            quantity: str = "log10(m / eV)") -> Path:
    """True vs predicted values with the identity line and MAE/RMSE/bias in the corner."""
    summary = regression_metrics(predictions, references)
    truth, predicted = to_numpy(references, "references").ravel(), to_numpy(predictions, "predictions").ravel()
    figure = _new_figure(4.8, 4.5)
    axis = figure.subplots()
    axis.scatter(truth, predicted, s=8, alpha=0.6, edgecolors="none")
    low, high = min(truth.min(), predicted.min()), max(truth.max(), predicted.max())
    pad = 0.05 * (high - low or 1.0)
    axis.plot([low - pad, high + pad], [low - pad, high + pad], color="black", linewidth=0.8)
    axis.set_xlim(low - pad, high + pad)
    axis.set_ylim(low - pad, high + pad)
    axis.text(0.04, 0.96, f"MAE {summary['mae']:.3f} dex\nRMSE {summary['rmse']:.3f} dex\n"
                          f"bias {summary['bias']:+.3f} dex\nN = {summary['num_examples']}",
              transform=axis.transAxes, va="top", fontsize=8,
              bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8})
    axis.set_xlabel(f"true {quantity}")
    axis.set_ylabel(f"predicted {quantity}")
    axis.set_title(title)
    figure.tight_layout()
    return _save(figure, path)


def plot_similarity_histogram(features_a, features_b, path, title: str = "View similarity") -> Path:
    """Cosine similarity of matching views (the same image) against non-matching pairs: a contrastive encoder
    separates the two distributions."""
    a, b = to_numpy(features_a, "features_a"), to_numpy(features_b, "features_b")
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    similarity = a @ b.T
    figure = _new_figure(4.8, 3.4)
    axis = figure.subplots()
    bins = np.linspace(-1, 1, 61)
    axis.hist(similarity[~np.eye(len(a), dtype=bool)], bins=bins, density=True, alpha=0.6, label="different images")
    axis.hist(np.diag(similarity), bins=bins, density=True, alpha=0.6, label="two views of one image")
    axis.set_xlabel("cosine similarity of encoder features")
    axis.set_ylabel("density")
    axis.set_title(title)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return _save(figure, path)


def plot_sr_grid(low_resolution, bicubic, super_resolved, high_resolution, path, num_examples: int = 4,
                 title: str = "Super-resolution") -> Path:
    """Rows of LR | bicubic | SR | HR for the first `num_examples` images."""
    return _image_grid({
        "LR": _plot_images(low_resolution, "low_resolution"),
        "bicubic": _plot_images(bicubic, "bicubic"),
        "SR": _plot_images(super_resolved, "super_resolved"),
        "HR": _plot_images(high_resolution, "high_resolution"),
    }, path, num_examples, title)


def mask_patches(images, mask, patch_size: int) -> np.ndarray:
    """Images with masked patches set to NaN (drawn as blank), from a ViTMAE-style (N, num_patches) mask.

    Patches are numbered row-major over the (H / patch, W / patch) grid, as ViTMAE's `patchify`.
    """
    batch = _plot_images(images, "images")
    hidden = to_numpy(mask, "mask")
    n, _, height, width = batch.shape
    if height % patch_size or width % patch_size:
        raise ValueError(f"Image size {height}x{width} is not a multiple of patch_size {patch_size}.")
    grid = (height // patch_size, width // patch_size)
    if hidden.shape != (n, grid[0] * grid[1]):
        raise ValueError(f"`mask` must be (N, num_patches) = ({n}, {grid[0] * grid[1]}), got {hidden.shape}.")
    pixels = np.kron(hidden.reshape(n, *grid), np.ones((patch_size, patch_size))) > 0.5
    return np.where(pixels[:, None], np.nan, batch)


def plot_reconstruction_grid(inputs, mask, reconstructions, patch_size: int, path, num_examples: int = 4,
                             title: str = "Masked autoencoder reconstruction") -> Path:
    """Rows of input | masked input (what the encoder saw) | reconstruction."""
    images = _plot_images(inputs, "inputs")
    return _image_grid({
        "input": images,
        "masked": mask_patches(images, mask, patch_size),
        "reconstruction": _plot_images(reconstructions, "reconstructions"),
    }, path, num_examples, title)


def plot_loss_curves(curves: Mapping[str, Sequence[float] | tuple[Sequence[float], Sequence[float]]], path,
                     title: str = "Loss", xlabel: str = "step", log_y: bool = False) -> Path:
    """One line per named curve: a list of values (x = 0, 1, ...) or a (steps, values) pair."""
    if not curves:
        raise ValueError("`curves` is empty: pass name -> values or name -> (steps, values).")
    figure = _new_figure(5.5, 3.8)
    axis = figure.subplots()
    for name, curve in curves.items():
        if isinstance(curve, tuple) and len(curve) == 2:
            steps, values = to_numpy(curve[0], f"{name} steps"), to_numpy(curve[1], f"{name} values")
        else:
            values = to_numpy(curve, name)
            steps = np.arange(len(values))
        if steps.shape != values.shape or values.ndim != 1 or len(values) == 0:
            raise ValueError(f"Curve {name!r}: steps {steps.shape} and values {values.shape} must be equal, "
                             "non-empty 1-D sequences.")
        axis.plot(steps, values, label=name, marker="o" if len(values) < 20 else None, markersize=3)
    if log_y:
        axis.set_yscale("log")
    axis.set_xlabel(xlabel)
    axis.set_ylabel("loss")
    axis.set_title(title)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return _save(figure, path)
