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

    Inputs may be numpy arrays or torch tensors, float or integer: a single image `(H, W)`, `(C, H, W)` or
    `(H, W, C)`, a batch `(N, C, H, W)`, `(N, H, W, C)` or (single band) `(N, H, W)`, or a list of single images.
    Pass `input_data_format="channels_first"`/`"channels_last"` when the layout is ambiguous.
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
        self.size = int(size)
        self.num_channels = int(num_channels)
        self.normalization = normalization
        self.image_mean = None if image_mean is None else [float(v) for v in np.atleast_1d(image_mean)]
        self.image_std = None if image_std is None else [float(v) for v in np.atleast_1d(image_std)]
        self.crop_size = None if crop_size is None else int(crop_size)
        self.resample = resample
        self._check_settings(self.__dict__)

    def _check_settings(self, settings: dict) -> None:
        if settings["normalization"] not in NORMALIZATIONS:
            raise ValueError(
                f"LensImageProcessor: normalization must be one of {NORMALIZATIONS}, got {settings['normalization']!r}."
            )
        if settings["resample"] not in RESAMPLE_MODES:
            raise ValueError(f"LensImageProcessor: resample must be one of {RESAMPLE_MODES}, got {settings['resample']!r}.")
        if settings["size"] < 1 or settings["num_channels"] < 1:
            raise ValueError("LensImageProcessor: size and num_channels must be >= 1.")
        if settings["normalization"] == "standardize":
            mean, std = settings["image_mean"], settings["image_std"]
            if mean is None or std is None:
                raise ValueError('LensImageProcessor: normalization="standardize" needs image_mean and image_std.')
            if len(mean) not in (1, settings["num_channels"]) or len(std) not in (1, settings["num_channels"]):
                raise ValueError(
                    f"LensImageProcessor: image_mean/image_std need 1 or num_channels={settings['num_channels']} values, "
                    f"got {len(mean)} and {len(std)}."
                )
            if min(std) <= 0:
                raise ValueError(f"LensImageProcessor: image_std must be positive, got {std}.")

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
    def _as_single_image(self, image: np.ndarray, layout: str | None, index: int) -> np.ndarray:
        channels = self.num_channels
        if image.ndim == 2:
            if channels != 1:
                raise ValueError(f"Image {index} has shape {image.shape} (one band) but num_channels={channels}.")
            return image[None]
        if image.ndim != 3:
            raise ValueError(f"Image {index} must be 2-D or 3-D, got shape {image.shape}.")
        if layout == "channels_first" or (layout is None and image.shape[0] == channels and image.shape[-1] != channels):
            chw = image
        elif layout == "channels_last" or (layout is None and image.shape[-1] == channels and image.shape[0] != channels):
            chw = np.moveaxis(image, -1, 0)
        elif layout is None and image.shape[0] == image.shape[-1] == channels:
            raise ValueError(
                f"Image {index} has shape {image.shape}: ambiguous layout; pass input_data_format="
                "'channels_first' or 'channels_last'."
            )
        else:
            raise ValueError(
                f"Image {index} has shape {image.shape}: no axis of size num_channels={channels} at either end "
                "(expected (C, H, W) or (H, W, C))."
            )
        if chw.shape[0] != channels:
            raise ValueError(f"Image {index} has {chw.shape[0]} band(s), expected num_channels={channels}.")
        return chw

    def _split_images(self, images, layout: str | None) -> list[np.ndarray]:
        """Any accepted input -> list of float32 (C, H, W) arrays."""
        if isinstance(images, (list, tuple)):
            if len(images) == 0:
                raise ValueError("LensImageProcessor got an empty list of images.")
            items = [self._as_single_image(_to_numpy(im), layout, i) for i, im in enumerate(images)]
        else:
            array = _to_numpy(images)
            channels = self.num_channels
            if array.ndim == 4:
                if layout == "channels_last" or (layout is None and array.shape[-1] == channels and array.shape[1] != channels):
                    array = np.moveaxis(array, -1, 1)
                if array.shape[1] != channels:
                    raise ValueError(
                        f"Batch of shape {array.shape}: expected {channels} band(s) in axis 1 (N, C, H, W) "
                        "or in the last axis (N, H, W, C)."
                    )
                items = list(array)
            elif array.ndim == 3 and channels == 1 and layout is None and array.shape[0] != 1 and array.shape[-1] != 1:
                items = [plane[None] for plane in array]  # (N, H, W) batch of single-band images
            else:
                items = [self._as_single_image(array, layout, 0)]
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
        self._check_settings(settings)
        layout = _layout_name(input_data_format)
        items = self._split_images(images, layout)
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


def _to_numpy(image) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        return image.detach().cpu().numpy()
    if hasattr(image, "mode") and hasattr(image, "size") and not isinstance(image, np.ndarray):  # PIL image
        return np.asarray(image)
    array = np.asarray(image)
    if array.dtype == object:
        raise ValueError("LensImageProcessor got an object array; expected numeric pixels.")
    return array


def _layout_name(input_data_format) -> str | None:
    if input_data_format is None:
        return None
    name = getattr(input_data_format, "value", input_data_format)
    if name not in ("channels_first", "channels_last"):
        raise ValueError(f"input_data_format must be 'channels_first' or 'channels_last', got {input_data_format!r}.")
    return name


__all__ = ["LensImageProcessor"]
