"""LensImageProcessor: raw astronomical arrays (counts, flux, FITS data) -> `pixel_values` for LensMAE.

Photographic processors assume uint8 RGB; lensing images are float or integer counts, one to a few bands,
channel-first or channel-last, often with NaN-free but constant or empty frames. Self-contained (numpy, torch,
transformers) so a Hub copy runs without lens_hf.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np
import torch
import torch.nn.functional as F
from transformers.image_processing_base import BatchFeature
from transformers.image_processing_utils import BaseImageProcessor

NORMALIZATIONS = ("minmax", "standardize", "none")
RESAMPLE_MODES = ("bicubic", "bilinear", "area", "nearest")
LAYOUTS = ("channels_first", "channels_last", "none")
MAX_INFERRED_BANDS = 4  # an end axis this small is taken as bands, never as a batch or an image side


class LensImageProcessorKwargs(TypedDict, total=False):
    size: int
    num_channels: int
    normalization: str
    image_mean: list
    image_std: list
    crop_size: int
    resample: str


class LensImageProcessor(BaseImageProcessor):
    r"""
    Turns lensing images into the `pixel_values` a LensMAE model takes.

    Args:
        size (`int`, *optional*, defaults to 64):
            Output side in pixels; images of another size are resized (after the optional centre crop).
        num_channels (`int`, *optional*, defaults to 1):
            Bands the model expects; used to tell channel-first from channel-last and single images from batches.
        normalization (`str`, *optional*, defaults to `"minmax"`):
            `"minmax"`: each image and band mapped to [0, 1] by its own min and max (the DeepLense convention; a
            constant image becomes zeros). `"standardize"`: `(x - image_mean[c]) / image_std[c]` with stored dataset
            statistics. `"none"`: values passed through as float32.
        image_mean (`list[float]`, *optional*):
            Per-band means for `"standardize"`.
        image_std (`list[float]`, *optional*):
            Per-band standard deviations for `"standardize"`.
        crop_size (`int`, *optional*):
            Centre-crop to this side before resizing (e.g. keep the central 100 px of a 150 px cutout).
        resample (`str`, *optional*, defaults to `"bicubic"`):
            `"bicubic"`, `"bilinear"`, `"area"` or `"nearest"`; antialiased when shrinking.

    Inputs may be numpy arrays, torch tensors or PIL images, float or integer: a single image `(H, W)`, `(C, H, W)` or
    `(H, W, C)`, a batch `(N, C, H, W)`, `(N, H, W, C)` or (single band) `(N, H, W)`, or a list of single images.

    Layout: `input_data_format` may be `"channels_first"`, `"channels_last"` or `"none"` (no band axis: a 3-D array
    is a batch `(N, H, W)` of single-band images). Without it the band axis is the end of the array whose size is
    `num_channels`, and a guess that could silently turn one image into a batch of strips (or the reverse) is refused:

    - a 3-D array whose last axis is small (<= 4) but not `num_channels` is an `(H, W, C)` image with the wrong band
      count (e.g. RGB for a 1-band model): an error naming both counts;
    - for a 1-band model, a 3-D array whose first axis N is small (2-4) could be N single-band images or one N-band
      image: an error unless `input_data_format="none"` (a batch; or pass a list or an `(N, 1, H, W)` array). A
      larger N is a batch;
    - a PIL image has a known layout: modes with one band (`"L"`, `"F"`, `"I"`, `"I;16"`, `"1"`) are one band; a
      multi-band mode (`"RGB"`, `"RGBA"`, ...) must have `num_channels` bands, else it is an error saying to convert
      it (e.g. `image.convert("L")`). An RGB image whose three bands are equal, which is what `pipeline(...)` makes of
      a greyscale file, is taken as its one band. `input_data_format` does not apply to PIL images.

    Settings are checked at construction (so at `from_pretrained`) and on per-call overrides: a size or crop_size
    below 1, or a NaN/Inf image_mean/image_std, is a ValueError naming the field.
    """

    model_input_names = ["pixel_values"]
    valid_kwargs = LensImageProcessorKwargs

    def __init__(
        self,
        size: int = 64,
        num_channels: int = 1,
        normalization: str = "minmax",
        image_mean: list | None = None,
        image_std: list | None = None,
        crop_size: int | None = None,
        resample: str = "bicubic",
        **kwargs,
    ):
        super().__init__(**kwargs)
        settings = dict(size=size, num_channels=num_channels, normalization=normalization, image_mean=image_mean,
                        image_std=image_std, crop_size=crop_size, resample=resample)
        self.__dict__.update(self._checked_settings(settings))

    def _checked_settings(self, settings: dict) -> dict:
        """Validated, normalised copy of `settings`: runs at construction (so at `from_pretrained`) and on per-call
        overrides, so that a zero size, a NaN std or an Inf mean fails here rather than as NaN pixels later."""
        settings = dict(settings)
        for key in ("size", "num_channels", "crop_size"):
            if key != "crop_size" or settings[key] is not None:
                settings[key] = _positive_int(key, settings[key])
        for key in ("image_mean", "image_std"):
            if settings[key] is not None:
                settings[key] = _finite_floats(key, settings[key])
        if settings["normalization"] not in NORMALIZATIONS:
            raise ValueError(
                f"LensImageProcessor: normalization must be one of {NORMALIZATIONS}, got {settings['normalization']!r}."
            )
        if settings["resample"] not in RESAMPLE_MODES:
            raise ValueError(f"LensImageProcessor: resample must be one of {RESAMPLE_MODES}, got {settings['resample']!r}.")
        mean, std = settings["image_mean"], settings["image_std"]
        if std is not None and min(std) <= 0:
            raise ValueError(f"LensImageProcessor: image_std must be positive, got {std}.")
        if settings["normalization"] == "standardize":
            if mean is None or std is None:
                raise ValueError('LensImageProcessor: normalization="standardize" needs image_mean and image_std.')
            if len(mean) not in (1, settings["num_channels"]) or len(std) not in (1, settings["num_channels"]):
                raise ValueError(
                    f"LensImageProcessor: image_mean/image_std need 1 or num_channels={settings['num_channels']} values, "
                    f"got {len(mean)} and {len(std)}."
                )
        return settings

    @classmethod
    def from_statistics(cls, images: np.ndarray, **kwargs) -> "LensImageProcessor":
        """A `"standardize"` processor whose per-band mean/std are measured on `images` (N, C, H, W)."""
        images = np.asarray(images, dtype=np.float64)
        if images.ndim != 4:
            raise ValueError(f"from_statistics needs a (N, C, H, W) array, got shape {images.shape}.")
        mean = images.mean(axis=(0, 2, 3)).tolist()
        std = np.maximum(images.std(axis=(0, 2, 3)), 1e-12).tolist()
        return cls(normalization="standardize", image_mean=mean, image_std=std, num_channels=images.shape[1], **kwargs)

    # ----------------------------------------------------------------------------------------------- layout
    @staticmethod
    def _as_single_image(image, layout: str | None, index: int, channels: int) -> np.ndarray:
        if _is_pil(image):
            return _pil_bands(image, index, channels)
        image = _to_numpy(image)
        if image.ndim == 2:
            if channels != 1:
                raise ValueError(f"Image {index} has shape {image.shape} (one band) but num_channels={channels}.")
            return image[None]
        if image.ndim != 3:
            raise ValueError(f"Image {index} must be 2-D or 3-D, got shape {image.shape}.")
        first, last = image.shape[0], image.shape[-1]
        if layout == "none":
            raise ValueError(
                f"Image {index} has shape {image.shape}, but input_data_format='none' means (H, W) images without a "
                "band axis; pass 'channels_first' or 'channels_last' for a (C, H, W) or (H, W, C) image."
            )
        if layout == "channels_first" or (layout is None and first == channels and last != channels):
            chw = image
        elif layout == "channels_last" or (layout is None and last == channels and first != channels):
            chw = np.moveaxis(image, -1, 0)
        elif first == last == channels:
            raise ValueError(
                f"Image {index} has shape {image.shape}: ambiguous layout; pass input_data_format="
                "'channels_first' or 'channels_last'."
            )
        elif last <= MAX_INFERRED_BANDS or first <= MAX_INFERRED_BANDS:
            axis, count = ("last", last) if last <= MAX_INFERRED_BANDS else ("first", first)
            raise ValueError(
                f"Image {index} has shape {image.shape}: {count} bands in the {axis} axis but num_channels={channels}."
                + (" Reduce it to one band first (e.g. PIL's image.convert('L'), or one band of the array)."
                   if channels == 1 else "")
            )
        else:
            raise ValueError(
                f"Image {index} has shape {image.shape}: no axis of size num_channels={channels} at either end "
                "(expected (C, H, W) or (H, W, C))."
            )
        if chw.shape[0] != channels:
            raise ValueError(f"Image {index} has {chw.shape[0]} band(s), expected num_channels={channels}.")
        return chw

    def _split_images(self, images, layout: str | None, channels: int) -> list[np.ndarray]:
        """Any accepted input -> list of (C, H, W) arrays."""
        if isinstance(images, (list, tuple)):
            if len(images) == 0:
                raise ValueError("LensImageProcessor got an empty list of images.")
            items = [self._as_single_image(im, layout, i, channels) for i, im in enumerate(images)]
        elif _is_pil(images):
            items = [self._as_single_image(images, layout, 0, channels)]
        else:
            array = _to_numpy(images)
            if array.ndim == 4:
                if layout == "none":
                    raise ValueError(
                        f"Batch of shape {array.shape} has a band axis; input_data_format='none' is for (N, H, W) "
                        "batches of single-band images."
                    )
                if layout == "channels_last" or (layout is None and array.shape[-1] == channels and array.shape[1] != channels):
                    array = np.moveaxis(array, -1, 1)
                if array.shape[1] != channels:
                    raise ValueError(
                        f"Batch of shape {array.shape}: expected {channels} band(s) in axis 1 (N, C, H, W) "
                        "or in the last axis (N, H, W, C)."
                    )
                items = list(array)
            elif array.ndim == 3 and layout == "none":
                if channels != 1:
                    raise ValueError(
                        f"input_data_format='none' means single-band (N, H, W) images, but num_channels={channels}."
                    )
                items = [plane[None] for plane in array]
            elif (array.ndim == 3 and channels == 1 and layout is None and array.shape[0] != 1
                  and array.shape[-1] > MAX_INFERRED_BANDS):
                count = array.shape[0]
                if count <= MAX_INFERRED_BANDS:
                    raise ValueError(
                        f"Array of shape {array.shape} is ambiguous for num_channels=1: {count} single-band images or "
                        f"one {count}-band image. For a batch pass input_data_format='none' (or a list of (H, W) "
                        f"images, or a ({count}, 1, H, W) array); a {count}-band image does not fit this 1-band "
                        "processor."
                    )
                items = [plane[None] for plane in array]  # (N, H, W) batch of single-band images
            else:
                items = [self._as_single_image(array, layout, 0, channels)]
        for i, item in enumerate(items):
            if item.dtype.kind not in "fiub":
                raise ValueError(f"Image {i} has dtype {item.dtype}; expected a float or integer array.")
            if item.shape[1] < 1 or item.shape[2] < 1:
                raise ValueError(f"Image {i} has an empty spatial shape {item.shape}.")
            if item.dtype.kind == "f" and not np.isfinite(item).all():
                raise ValueError(f"Image {i} contains NaN or Inf pixels (shape {item.shape}).")
        return items

    # --------------------------------------------------------------------------------------------- pipeline
    def _resize_and_normalize(self, batch: torch.Tensor, settings: dict) -> torch.Tensor:
        crop = settings["crop_size"]
        if crop is not None:
            height, width = batch.shape[-2:]
            if crop > min(height, width):
                raise ValueError(f"crop_size={crop} is larger than the image ({height}x{width}).")
            top, left = (height - crop) // 2, (width - crop) // 2
            batch = batch[..., top : top + crop, left : left + crop]
        size = settings["size"]
        if batch.shape[-2:] != (size, size):
            mode = settings["resample"]
            shrinking = batch.shape[-1] > size or batch.shape[-2] > size
            extra = {"antialias": True} if mode in ("bicubic", "bilinear") and shrinking else {}
            if mode in ("bicubic", "bilinear"):
                extra["align_corners"] = False
            batch = F.interpolate(batch, size=(size, size), mode=mode, **extra)
        normalization = settings["normalization"]
        if normalization == "minmax":
            low = batch.amin(dim=(-2, -1), keepdim=True)
            span = batch.amax(dim=(-2, -1), keepdim=True) - low
            batch = torch.where(span > 0, (batch - low) / span.clamp(min=torch.finfo(batch.dtype).tiny), torch.zeros_like(batch))
        elif normalization == "standardize":
            mean = torch.tensor(settings["image_mean"], dtype=batch.dtype).view(1, -1, 1, 1)
            std = torch.tensor(settings["image_std"], dtype=batch.dtype).view(1, -1, 1, 1)
            batch = (batch - mean) / std
        return batch.float()

    def preprocess(self, images, return_tensors: str | None = None, input_data_format: str | None = None, **kwargs) -> BatchFeature:
        """Prepare `images` (see the class docstring); keyword arguments override the stored settings once."""
        unknown = set(kwargs) - set(LensImageProcessorKwargs.__annotations__) - {"data_format", "do_rescale", "do_normalize"}
        if unknown:
            raise ValueError(
                f"LensImageProcessor got unknown argument(s) {sorted(unknown)}; "
                f"valid: {sorted(LensImageProcessorKwargs.__annotations__)}."
            )
        settings = {key: kwargs.get(key, getattr(self, key)) for key in LensImageProcessorKwargs.__annotations__}
        settings = self._checked_settings(settings)
        layout = _layout_name(input_data_format)
        items = self._split_images(images, layout, settings["num_channels"])
        # Work in float64 so integer counts and large raw fluxes keep their precision through resize/normalise.
        if all(item.shape == items[0].shape for item in items):
            batch = torch.from_numpy(np.stack(items).astype(np.float64))
            pixel_values = self._resize_and_normalize(batch, settings)
        else:
            pixel_values = torch.cat(
                [self._resize_and_normalize(torch.from_numpy(item[None].astype(np.float64)), settings) for item in items]
            )
        if return_tensors not in ("pt", "torch"):
            pixel_values = pixel_values.numpy()
        return BatchFeature(data={"pixel_values": pixel_values}, tensor_type=None)

    def __call__(self, images=None, *args, **kwargs) -> BatchFeature:
        if images is None:
            images = kwargs.pop("pixel_values", None)
        if images is None:
            raise ValueError("LensImageProcessor needs `images`.")
        return self.preprocess(images, *args, **kwargs)


def _is_pil(image) -> bool:
    return hasattr(image, "mode") and hasattr(image, "getbands") and not isinstance(image, (np.ndarray, torch.Tensor))


def _pil_bands(image, index: int, channels: int) -> np.ndarray:
    """A PIL image -> (C, H, W); its layout is known, so a band-count mismatch is an error, never a reshuffle."""
    if image.mode in ("P", "PA"):
        raise ValueError(
            f"Image {index} is a PIL palette image (mode {image.mode!r}); convert it first, e.g. image.convert('L')."
        )
    array = np.asarray(image)
    if array.ndim == 2:
        return LensImageProcessor._as_single_image(array, None, index, channels)
    if array.shape[-1] == channels:
        return np.moveaxis(array, -1, 0)
    if channels == 1 and image.mode == "RGB" and (array == array[..., :1]).all():
        return array[None, ..., 0]  # a greyscale image that `pipeline`'s load_image turned into RGB
    hint = "image.convert('L')" if channels == 1 else "a numpy array with the bands in order"
    raise ValueError(
        f"Image {index} is a PIL image in mode {image.mode!r} with {array.shape[-1]} bands but num_channels={channels}; "
        f"convert it first, e.g. {hint}."
    )


def _to_numpy(image) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        return image.detach().cpu().numpy()
    array = np.asarray(image)
    if array.dtype == object:
        raise ValueError("LensImageProcessor got an object array; expected numeric pixels.")
    return array


def _positive_int(name: str, value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer, float, np.floating)) or not (
        float(value).is_integer() and value >= 1
    ):
        raise ValueError(f"LensImageProcessor: {name} must be a positive integer, got {value!r}.")
    return int(value)


def _finite_floats(name: str, values) -> list[float]:
    try:
        floats = [float(v) for v in np.atleast_1d(np.asarray(values, dtype=np.float64))]
    except (TypeError, ValueError):
        raise ValueError(f"LensImageProcessor: {name} must be a number or a list of numbers, got {values!r}.") from None
    if not floats or not np.isfinite(floats).all():
        raise ValueError(f"LensImageProcessor: {name} must be finite numbers, got {values!r}.")
    return floats


def _layout_name(input_data_format) -> str | None:
    if input_data_format is None:
        return None
    name = getattr(input_data_format, "value", input_data_format)
    if name not in LAYOUTS:
        raise ValueError(f"input_data_format must be one of {LAYOUTS}, got {input_data_format!r}.")
    return name


__all__ = ["LensImageProcessor"]
