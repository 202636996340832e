"""The evaluation plots embedded in model cards, written as PNG files.

Figures are drawn with matplotlib's object API on an Agg canvas (no pyplot, no global backend
switch), so plotting works headless, in worker threads, and never changes the caller's
matplotlib state. Every `plot_*` function takes arrays (numpy, lists or CPU/GPU torch tensors), writes one
PNG to `path` (creating its folder) and returns the path. The masked-autoencoder picture's pieces
(`paste_visible_patches`, `mask_patches`, `masked_pixels`, `mask_outline_pixels`,
`mask_outline_segments`) are plain numpy, for any other front end (an app) to draw the same picture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from lens_hf.metrics.functional import image_batch, regression_metrics, to_numpy, trapezoid

DPI = 100
IMAGE_CMAP = "magma"
MASKED_GREY = 0.5  # how masked (NaN) pixels are drawn, colour-mapped or RGB
OUTLINE_COLOUR = "cyan"  # the mask outline: in neither magma nor grey


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


def _display_limits(image: np.ndarray) -> tuple[float, float]:
    """The finite range of what `_displayable` shows of one (C, H, W) image: all 3 bands of an RGB composite,
    else the band mean."""
    shown = image if image.shape[0] == 3 else image.mean(axis=0)
    finite = shown[np.isfinite(shown)]
    return (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)


def _displayable(image: np.ndarray, limits: tuple[float, float] | None = None) -> tuple[np.ndarray, str | None]:
    """One (C, H, W) image -> what imshow takes: 2-D with a colour map, or an RGB composite for 3 bands.

    The composite maps `limits` (default: the image's own finite range) to [0, 1], so images given the same
    limits are coloured alike; NaN (masked) pixels show grey.
    """
    if image.shape[0] == 3:
        low, high = _display_limits(image) if limits is None else limits
        rgb = np.clip((image - low) / (high - low), 0, 1) if high > low else np.zeros_like(image)
        rgb = np.where(np.isnan(image), MASKED_GREY, rgb)
        return np.moveaxis(rgb, 0, -1), None
    return image.mean(axis=0) if image.shape[0] > 1 else image[0], IMAGE_CMAP


def _draw_image(axis, image: np.ndarray, limits: tuple[float, float] | None = None):
    """imshow of one (C, H, W) image, colour-mapped between `limits` (default: its own range), NaN grey, no ticks."""
    limits = _display_limits(image) if limits is None else limits
    shown, cmap = _displayable(image, limits)
    scale = {} if cmap is None else {"cmap": colormaps[cmap].with_extremes(bad=str(MASKED_GREY)),
                                     "vmin": limits[0], "vmax": limits[1]}
    drawn = axis.imshow(shown, origin="lower", interpolation="nearest", **scale)
    axis.set_xticks([])
    axis.set_yticks([])
    return drawn


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
            _draw_image(axis, batch[row])
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


def _check_patch_size(patch_size, image_shape) -> tuple[int, int]:
    """The (H / patch, W / patch) grid of patches, or ValueError if `patch_size` does not tile the image."""
    if isinstance(patch_size, bool) or not isinstance(patch_size, (int, np.integer)) or patch_size < 1:
        raise ValueError(f"`patch_size` must be a positive integer, got {patch_size!r}.")
    height, width = image_shape
    if height % patch_size or width % patch_size:
        raise ValueError(f"Image size {height}x{width} is not a multiple of patch_size {patch_size}.")
    return height // patch_size, width // patch_size


def _mask_grid(mask, patch_size: int, image_shape, count: int | None) -> np.ndarray:
    """A ViTMAE mask -> (N, H / patch, W / patch) booleans, True = masked.

    `mask`: (num_patches,) for one image (`count` None) or (count, num_patches) for a batch, patches numbered
    row-major over the patch grid as ViTMAE's `patchify`; 1 = masked (hidden from the encoder), 0 = visible.
    """
    hidden = to_numpy(mask, "mask")
    grid = _check_patch_size(patch_size, image_shape)
    expected = (grid[0] * grid[1],) if count is None else (count, grid[0] * grid[1])
    if hidden.shape != expected:
        layout = "(num_patches,)" if count is None else "(N, num_patches)"
        raise ValueError(f"`mask` must be {layout} = {expected}, got {hidden.shape} "
                         f"(a {grid[0]}x{grid[1]} grid of {patch_size}-pixel patches).")
    if not np.isin(hidden, (0.0, 1.0)).all():
        raise ValueError("`mask` must hold only 1 (masked patch) and 0 (visible patch).")
    return hidden.reshape(-1, *grid) > 0.5


def _images_with_mask(images, mask, patch_size: int, name: str) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """(images as (N, C, H, W), mask as an (N, gh, gw) patch grid, the images' own shape).

    One image's mask (num_patches,) goes with one image, (H, W) or (C, H, W); a batch mask (N, num_patches) with
    a batch, (N, H, W) or (N, C, H, W): the mask's rank is what tells a (C, H, W) image from an (N, H, W) batch.
    """
    hidden = to_numpy(mask, "mask")
    if hidden.ndim == 1:
        image = to_numpy(images, name)
        if image.ndim not in (2, 3):
            raise ValueError(f"`{name}` must be one image, (H, W) or (C, H, W), to go with a one-image mask "
                             f"(num_patches,); got shape {image.shape}.")
        batch = image.reshape(1, -1, *image.shape[-2:])
    elif hidden.ndim == 2:
        batch = _plot_images(images, name)
    else:
        raise ValueError(f"`mask` must be (num_patches,) for one image or (N, num_patches) for a batch, "
                         f"got shape {hidden.shape}.")
    grid = _mask_grid(hidden, patch_size, batch.shape[-2:], None if hidden.ndim == 1 else len(batch))
    return batch, grid, tuple(np.shape(images))


def _patch_pixels(grid: np.ndarray, patch_size: int) -> np.ndarray:
    """(N, gh, gw) patch booleans -> (N, gh * patch, gw * patch) pixel booleans."""
    return np.repeat(np.repeat(grid, patch_size, axis=-2), patch_size, axis=-1)


def _single_or_batch(mask, patch_size: int, image_shape) -> tuple[np.ndarray, bool]:
    """The patch grid of a one-image (num_patches,) or batch (N, num_patches) mask, and whether it was one image."""
    mask = to_numpy(mask, "mask")
    single = mask.ndim == 1
    if not single and mask.ndim != 2:
        raise ValueError(f"`mask` must be (num_patches,) for one image or (N, num_patches) for a batch, "
                         f"got shape {mask.shape}.")
    if len(image_shape) != 2:
        raise ValueError(f"`image_shape` must be (H, W), got {tuple(image_shape)}.")
    return _mask_grid(mask, patch_size, tuple(image_shape), None if single else len(mask)), single


def masked_pixels(mask, patch_size: int, image_shape) -> np.ndarray:
    """Which pixels of an (H, W) image lie in a masked patch: (H, W) booleans for one image's mask
    (num_patches,), (N, H, W) for a batch mask (N, num_patches)."""
    grid, single = _single_or_batch(mask, patch_size, image_shape)
    pixels = _patch_pixels(grid, patch_size)
    return pixels[0] if single else pixels


def mask_outline_pixels(mask, patch_size: int, image_shape) -> np.ndarray:
    """The outline of the masked region as pixels, for drawing it into an image array (e.g. in an app).

    True on the masked pixels that touch (4-neighbour) a visible pixel or the image border: the inner rim of the
    masked region, one pixel wide. Borders between two masked patches are not outlined. (H, W) for one image's
    mask (num_patches,), (N, H, W) for a batch mask (N, num_patches).
    """
    grid, single = _single_or_batch(mask, patch_size, image_shape)
    pixels = np.pad(_patch_pixels(grid, patch_size), ((0, 0), (1, 1), (1, 1)))  # outside the image = not masked
    inner = pixels[:, 1:-1, 1:-1]
    surrounded = pixels[:, :-2, 1:-1] & pixels[:, 2:, 1:-1] & pixels[:, 1:-1, :-2] & pixels[:, 1:-1, 2:]
    outline = inner & ~surrounded
    return outline[0] if single else outline


def mask_outline_segments(mask, patch_size: int, image_shape):
    """The outline of the masked region as line segments on patch borders, for drawing over an image.

    Each segment is one patch edge between a masked patch and a visible one (or the image border), as
    [[x0, y0], [x1, y1]] in imshow's data coordinates (x = column, y = row, pixel centres on integers, so edges lie
    on half-integers); `matplotlib.collections.LineCollection` takes the array as is, with either `origin`. One
    image's mask (num_patches,) -> a (K, 2, 2) array; a batch mask (N, num_patches) -> a list of N such arrays.
    """
    grid, single = _single_or_batch(mask, patch_size, image_shape)
    outlines = []
    for patches in grid:
        padded = np.pad(patches, 1)
        across_rows = padded[:-1, 1:-1] != padded[1:, 1:-1]  # (gh + 1, gw): edge above patch row r, column c
        across_columns = padded[1:-1, :-1] != padded[1:-1, 1:]  # (gh, gw + 1): edge left of column c, row r
        edges = [[[c * patch_size - 0.5, r * patch_size - 0.5], [(c + 1) * patch_size - 0.5, r * patch_size - 0.5]]
                 for r, c in np.argwhere(across_rows)]
        edges += [[[c * patch_size - 0.5, r * patch_size - 0.5], [c * patch_size - 0.5, (r + 1) * patch_size - 0.5]]
                  for r, c in np.argwhere(across_columns)]
        outlines.append(np.array(edges, dtype=float).reshape(-1, 2, 2))
    return outlines[0] if single else outlines


def mask_patches(images, mask, patch_size: int) -> np.ndarray:
    """Images with masked patches set to NaN (drawn blank): what the encoder saw.

    `mask` is ViTMAE-style, 1 = masked, patches numbered row-major over the (H / patch, W / patch) grid as
    ViTMAE's `patchify`: (N, num_patches) with images (N, H, W) / (N, C, H, W), or (num_patches,) with one image
    (H, W) / (C, H, W). Returns the images' own shape.
    """
    batch, grid, shape = _images_with_mask(images, mask, patch_size, "images")
    return np.where(_patch_pixels(grid, patch_size)[:, None], np.nan, batch).reshape(shape)


def paste_visible_patches(inputs, mask, reconstructions, patch_size: int) -> np.ndarray:
    """The MAE picture: the input itself on the visible patches, the reconstruction only on the masked ones.

    The decoder is trained on the masked patches only, so what it outputs at the visible ones means nothing (a
    checkerboard of untrained blocks); those pixels are the encoder's own input instead. `reconstructions` must be
    in the input's units (under norm_pix_loss de-normalise them first: `lens_hf.tasks.pretraining.predicted_images`). Shapes as
    `mask_patches`; `reconstructions` has the shape of `inputs`, and so has the result.
    """
    batch, grid, shape = _images_with_mask(inputs, mask, patch_size, "inputs")
    predicted = to_numpy(reconstructions, "reconstructions")
    if predicted.shape != shape:
        raise ValueError(f"`reconstructions` must have the shape of `inputs` {shape}, got {predicted.shape}.")
    return np.where(_patch_pixels(grid, patch_size)[:, None], predicted.reshape(batch.shape), batch).reshape(shape)




def plot_reconstruction_grid(inputs, mask, reconstructions, patch_size: int, path, num_examples: int = 4,
                             title: str = "Masked autoencoder reconstruction") -> Path:
    """Rows of input | masked input (what the encoder saw, masked patches grey) | reconstruction (visible patches
    pasted from the input, the predictions only in the masked ones), the masked region outlined on patch borders.

    The three images of a row share one colour scale, the input's range (shown by a colour bar for single-band
    and band-mean images; 3-band images are RGB composites scaled alike), so a prediction is read against the
    pixels it should match. `reconstructions`: (N, C, H, W) in the input's units, every patch predicted (under
    norm_pix_loss, `lens_hf.tasks.pretraining.predicted_images` first). `mask`: (N, num_patches), 1 = masked.
    """
    images = _plot_images(inputs, "inputs")
    predicted = _plot_images(reconstructions, "reconstructions")
    if predicted.shape != images.shape:
        raise ValueError(f"`reconstructions` must have the shape of `inputs` {images.shape}, got {predicted.shape}.")
    grid = _mask_grid(mask, patch_size, images.shape[-2:], len(images))
    rows = min(num_examples, len(images))
    if rows < 1:
        raise ValueError("No image to plot: the batches are empty or num_examples < 1.")
    hidden = grid.reshape(len(images), -1)[:rows]
    columns = {
        "input": images[:rows],
        "masked input": mask_patches(images[:rows], hidden, patch_size),
        "reconstruction": paste_visible_patches(images[:rows], hidden, predicted[:rows], patch_size),
    }
    outlines = mask_outline_segments(hidden, patch_size, images.shape[-2:])
    figure = _new_figure(2.2 * len(columns), 2.2 * rows + 0.4)
    figure.set_layout_engine("constrained")  # room for one colour bar per row
    axes = figure.subplots(rows, len(columns), squeeze=False)
    for row in range(rows):
        limits = _display_limits(images[row])
        for column, (name, batch) in enumerate(columns.items()):
            axis = axes[row, column]
            drawn = _draw_image(axis, batch[row], limits)
            if name != "input":
                axis.add_collection(LineCollection(outlines[row], colors=OUTLINE_COLOUR, linewidths=0.8),
                                    autolim=False)
            if row == 0:
                axis.set_title(name, fontsize=10)
        if drawn.get_array().ndim == 2:
            figure.colorbar(drawn, ax=axes[row].tolist(), fraction=0.04, pad=0.02)
    figure.suptitle(title, fontsize=11)
    return _save(figure, path)


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
