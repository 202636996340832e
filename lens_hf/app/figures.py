"""The app's pictures, as matplotlib figures (no pyplot: every request draws its own figure, threads never share
one): the image under an astronomical stretch with a colour bar, class probabilities with and without D4 TTA,
the MAE reconstruction, and the super-resolved image beside bicubic upsampling."""

from __future__ import annotations

import numpy as np
from matplotlib.colors import FuncNorm, Normalize
from matplotlib.figure import Figure

STRETCHES = ("linear", "log", "asinh")
LOG_SCALE = 1000.0  # log stretch: log10(1 + 1000 x) / 3 of the image scaled to [0, 1] (ds9's default exponent)
ASINH_SOFTENING = 0.1  # asinh stretch: asinh(x / 0.1) / asinh(10), linear below a tenth of the range


def stretch_norm(low: float, high: float, stretch: str):
    """A colour norm on the data values (so the colour bar reads in pixel units) that maps [low, high] to [0, 1]
    linearly, logarithmically or with the asinh stretch of Lupton et al. (1999)."""
    if stretch not in STRETCHES:
        raise ValueError(f"stretch must be one of {STRETCHES}, got {stretch!r}")
    if not high > low:
        high = low + 1.0
    if stretch == "linear":
        return Normalize(low, high)
    span = high - low

    def scaled(x):
        return np.clip((np.asarray(x, dtype=np.float64) - low) / span, 0.0, 1.0)

    if stretch == "log":
        return FuncNorm((lambda x: np.log10(1 + LOG_SCALE * scaled(x)) / np.log10(1 + LOG_SCALE),
                         lambda y: low + span * (10 ** (np.asarray(y) * np.log10(1 + LOG_SCALE)) - 1) / LOG_SCALE),
                        vmin=low, vmax=high)
    top = np.arcsinh(1 / ASINH_SOFTENING)
    return FuncNorm((lambda x: np.arcsinh(scaled(x) / ASINH_SOFTENING) / top,
                     lambda y: low + span * ASINH_SOFTENING * np.sinh(np.asarray(y) * top)), vmin=low, vmax=high)


def _image_panels(columns: int, width: float) -> tuple[Figure, list]:
    """A row of image panels with room on the right for one colour bar. The layout is fixed by hand: matplotlib's
    constrained layout cost about 0.1 s per figure, a third of the app's answer time (measured)."""
    figure = Figure(figsize=(width, 3.4))
    figure.subplots_adjust(left=0.02, right=0.86, bottom=0.04, top=0.84, wspace=0.06)
    return figure, list(figure.subplots(1, columns, squeeze=False)[0])


def _colorbar(figure, shown, axes, label: str) -> None:
    """A colour bar with ticks evenly spaced in the stretched scale, labelled in data values."""
    bar = figure.colorbar(shown, cax=figure.add_axes((0.88, 0.08, 0.018, 0.72)), label=label)
    norm = shown.norm
    ticks = np.linspace(0.0, 1.0, 6) if isinstance(norm, FuncNorm) else None
    if ticks is not None:
        bar.set_ticks(np.asarray(norm.inverse(ticks), dtype=np.float64).tolist())
        values = np.asarray(norm.inverse(ticks), dtype=np.float64)
        tiny = 1e-3 * (norm.vmax - norm.vmin)  # 1.24e-12 is a zero on this scale, and too wide a label
        bar.ax.set_yticklabels([f"{0.0 if abs(value) < tiny else value:.3g}" for value in values])


def image_figure(pixels: np.ndarray, stretch: str = "asinh", title: str = "") -> Figure:
    """Each band of a (C, H, W) image side by side on one stretch, with one colour bar in pixel units."""
    bands = pixels.shape[0]
    figure, axes = _image_panels(bands, 3.2 * bands + 1.8)
    norm = stretch_norm(float(pixels.min()), float(pixels.max()), stretch)
    shown = None
    for band, axis in enumerate(axes):
        shown = axis.imshow(pixels[band], cmap="magma", norm=norm, origin="lower", interpolation="nearest")
        axis.set_title(f"band {band}" if bands > 1 else (title or "image"), fontsize=9)
        axis.set_xticks([])
        axis.set_yticks([])
    _colorbar(figure, shown, axes, f"pixel value ({stretch} stretch)")
    if title and bands > 1:
        figure.suptitle(title, fontsize=10, y=0.98)
    return figure


def probability_figure(answers) -> Figure:
    """One panel per classifier: P(class) as bars, plain and with D4 test-time augmentation."""
    figure = Figure(figsize=(4.2 * max(len(answers), 1), 3.0))
    figure.subplots_adjust(left=0.12 / max(len(answers), 1), right=0.98, bottom=0.12, top=0.9, wspace=0.3)
    axes = figure.subplots(1, max(len(answers), 1), squeeze=False)[0]
    for axis, answer in zip(axes, answers):
        names = list(answer.probabilities)
        positions = np.arange(len(names))
        axis.bar(positions - 0.2, [answer.probabilities[n] for n in names], width=0.4, label="plain")
        axis.bar(positions + 0.2, [answer.probabilities_tta[n] for n in names], width=0.4, label="D4 TTA")
        if answer.decision_threshold is not None and "lens" in names:
            axis.axhline(answer.decision_threshold, color="black", linestyle=":", linewidth=0.8,
                         label=f"lens threshold {answer.decision_threshold:.2f}")
        axis.set_xticks(positions, names)
        axis.set_ylim(0, 1)
        axis.set_ylabel("probability")
        axis.set_title(answer.model.name, fontsize=9)
        axis.legend(fontsize=7)
    return figure


def reconstruction_figure(answer, stretch: str = "linear") -> Figure:
    """Model input | masked input | reconstruction (visible patches pasted, predictions where hidden), first band,
    on one colour scale, the hidden patches outlined."""
    from matplotlib.collections import LineCollection

    from ..metrics.plots import mask_outline_segments

    import matplotlib

    hidden = answer.mask > 0.5
    images = {"model input": answer.model_input[0], "masked input": np.where(hidden, np.nan, answer.masked_input[0]),
              "reconstruction": answer.reconstruction[0]}
    colours = matplotlib.colormaps["magma"].with_extremes(bad="0.55")  # hidden patches grey, not black
    figure, axes = _image_panels(3, 10.0)
    norm = stretch_norm(float(answer.model_input[0].min()), float(answer.model_input[0].max()), stretch)
    shown = None
    for axis, (caption, image) in zip(axes, images.items()):
        shown = axis.imshow(image, cmap=colours, norm=norm, origin="lower", interpolation="nearest")
        if caption != "model input":
            segments = mask_outline_segments(answer.patch_mask, answer.patch_size, answer.mask.shape)
            axis.add_collection(LineCollection(segments, colors="cyan", linewidths=0.6), autolim=False)
        axis.set_title(caption, fontsize=9)
        axis.set_xticks([])
        axis.set_yticks([])
    _colorbar(figure, shown, axes, "normalised pixel value")
    figure.suptitle(f"{answer.model.name}: {answer.mask.mean():.0%} of the pixels hidden", fontsize=10, y=0.98)
    return figure


def super_resolution_figure(answer, stretch: str = "asinh") -> Figure:
    """Low-resolution input | bicubic | super-resolved (first band), on one colour scale."""
    images = {"input": answer.model_input[0], "bicubic": answer.bicubic[0], "super-resolved": answer.super_resolved[0]}
    figure, axes = _image_panels(3, 10.0)
    norm = stretch_norm(float(answer.bicubic.min()), float(answer.bicubic.max()), stretch)
    shown = None
    for axis, (caption, image) in zip(axes, images.items()):
        shown = axis.imshow(image, cmap="magma", norm=norm, origin="lower", interpolation="nearest")
        axis.set_title(f"{caption} ({image.shape[0]} px)", fontsize=9)
        axis.set_xticks([])
        axis.set_yticks([])
    _colorbar(figure, shown, axes, f"pixel value ({stretch} stretch)")
    figure.suptitle(answer.model.name, fontsize=10, y=0.98)
    return figure
