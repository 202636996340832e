"""Training transforms applied on the fly with `set_transform`/`with_transform`.

Lensing images have no preferred orientation, so the eight symmetries of the square (the D4
group: four rotations, each with or without a flip) are label-preserving augmentations. This module
holds the one D4 implementation: the training loop, `set_transform` users and test-time
augmentation all call `random_d4` / `d4_transform`. Normalisation is the image processor's, so training and inference normalise identically.
Nothing is materialised: each batch is read from Arrow, transformed and handed to the model.

`with_training_transforms` reads each batch from Arrow as numpy arrays (the `NUMPY_TRANSFORM_FORMAT` formatter)
instead of the Python lists `set_transform` hands a transform: the same values, several times faster for large
images (tests/test_data_transforms.py checks the tensors are identical).
"""
from __future__ import annotations

from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from typing import Any, Optional, Sequence, Union

import datasets
import numpy as np
import torch

D4_ORDER = 8
# `Dataset.with_format(NUMPY_TRANSFORM_FORMAT, transform=f)`: `set_transform(f)` with numpy batches (see below).
NUMPY_TRANSFORM_FORMAT = "lens_hf_numpy_transform"


def _as_tensor(array) -> tuple[torch.Tensor, bool]:
    if isinstance(array, torch.Tensor):
        return array, False
    return torch.from_numpy(np.ascontiguousarray(array)), True


def d4_transform(images, k: int):
    """Element k (0..7) of D4 on the last two axes: a rotation by 90°·(k mod 4), then a flip of the last axis
    when k >= 4. Takes and returns a torch tensor or a numpy array."""
    if not 0 <= k < D4_ORDER:
        raise ValueError(f"a D4 element is an integer in [0, {D4_ORDER}), got {k}")
    tensor, was_numpy = _as_tensor(images)
    out = torch.rot90(tensor, k % 4, dims=(-2, -1))
    out = out.flip(-1) if k >= 4 else out
    return out.numpy() if was_numpy else out


def random_d4(*arrays, generator: Optional[torch.Generator] = None) -> tuple:
    """One random D4 element per example (first axis), the same one for every array given (e.g. the LR and HR
    images of a pair). Tensors stay on their device, numpy arrays come back as numpy.

    The element is drawn from `generator` (on its device), or from torch's global RNG, which DataLoader seeds
    differently in every worker. The training loop passes a generator seeded by (seed, step, rank), so a
    resumed run draws what the uninterrupted run drew."""
    if not arrays:
        raise ValueError("random_d4 needs at least one array")
    tensors = [_as_tensor(a) for a in arrays]
    device = generator.device if generator is not None else "cpu"
    choice = torch.randint(0, D4_ORDER, (len(tensors[0][0]),), generator=generator, device=device)
    choice = choice.to(tensors[0][0].device)
    outputs = []
    for tensor, was_numpy in tensors:
        result = torch.empty_like(tensor)
        for k in range(D4_ORDER):
            rows = choice == k
            if rows.any():
                result[rows] = d4_transform(tensor[rows], k)
        outputs.append(result.numpy() if was_numpy else result)
    return tuple(outputs)


class LensTrainingTransform:
    """`batch -> {"pixel_values", "labels"}` for `Dataset.set_transform`.

    Args:
        processor: a `LensImageProcessor` (or any image processor taking channel-first arrays);
            None passes pixels through unchanged.
        augment: draw a random D4 element per example (training); False for evaluation.
        image_column: the input images (`image`, or `lr` for super-resolution).
        label_column: becomes `labels` (`label`, or `log10_m_axion` for regression); skipped if absent.
        target_column: an image target (`hr`) that gets the same D4 element as the input and
            becomes `labels`, unnormalised; overrides `label_column`.
        generator: optional torch.Generator for reproducible augmentation in one process.
    """

    def __init__(
        self,
        processor: Any = None,
        augment: bool = True,
        image_column: str = "image",
        label_column: Optional[str] = "label",
        target_column: Optional[str] = None,
        generator: Optional[torch.Generator] = None,
    ):
        self.processor = processor
        self.augment = augment
        self.image_column = image_column
        self.label_column = label_column
        self.target_column = target_column
        self.generator = generator

    def __call__(self, batch: dict) -> dict:
        if self.image_column not in batch:
            raise KeyError(f"the transform reads column {self.image_column!r}; the batch has {sorted(batch)}")
        arrays = [_float32_array(batch[self.image_column])]
        if self.target_column is not None:
            arrays.append(_float32_array(batch[self.target_column]))
        if self.augment:
            arrays = list(random_d4(*arrays, generator=self.generator))
        if self.processor is not None:
            pixel_values = self.processor(arrays[0], return_tensors="pt", input_data_format="channels_first")[
                "pixel_values"
            ]
        else:
            pixel_values = torch.from_numpy(np.ascontiguousarray(arrays[0]))
        output = {"pixel_values": pixel_values}
        if self.target_column is not None:
            output["labels"] = torch.from_numpy(np.ascontiguousarray(arrays[1]))
        elif self.label_column is not None and self.label_column in batch:
            labels = np.asarray(batch[self.label_column])
            # float32 regression targets (Python floats would come out float64), int64 class ids
            output["labels"] = torch.from_numpy(labels.astype(np.float32 if labels.dtype.kind == "f" else np.int64))
        return output

    def collate(self, rows: list[dict]) -> dict:
        """The same transform as a DataLoader `collate_fn` over a numpy-formatted dataset.

        `set_transform` hands the transform Python lists (datasets' custom formatter extracts
        rows as Python objects); reading numpy instead skips that conversion, about 6x faster
        for 150x150 images (docs/datasets.md). Use it where data loading would otherwise
        limit a fast accelerator:
        `DataLoader(ds.with_format("numpy"), batch_size=64, collate_fn=transform.collate)`.
        """
        columns = [c for c in (self.image_column, self.target_column, self.label_column) if c is not None and c in rows[0]]
        return self({column: np.stack([row[column] for row in rows]) for column in columns})


def _float32_array(values) -> np.ndarray:
    """`values` (a numpy batch, Python lists, PIL images) as one float32 array; an object array of equal-shape
    rows (what numpy formatting makes of nested list features) is stacked row by row."""
    try:
        return np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        if isinstance(values, str) or not hasattr(values, "__len__") or len(values) == 0:
            raise
        return np.stack([_float32_array(row) for row in values])


try:  # datasets' formatter registry (stable since datasets 1.x, but private): fall back to Python lists without it
    from datasets.formatting import _FORMAT_TYPES, _register_formatter
    from datasets.formatting.formatting import CustomFormatter
except ImportError:  # pragma: no cover - another datasets layout
    CustomFormatter = None


if CustomFormatter is not None:

    class NumpyTransformFormatter(CustomFormatter):
        """`set_transform` with the batch extracted from Arrow as numpy arrays (datasets' numpy extractor: an
        `Array3D` column is one `(N, C, H, W)` array) instead of Python lists. Features that need decoding
        (images, audio) are decoded as in the custom formatter. Unlike `with_format("numpy")` nothing is cast:
        the transform gets the stored dtypes."""

        def format_batch(self, pa_table):
            batch = self.numpy_arrow_extractor().extract_batch(pa_table)
            batch = self.python_features_decoder.decode_batch(batch)
            return self.transform(batch)

    if NUMPY_TRANSFORM_FORMAT not in _FORMAT_TYPES:
        _register_formatter(NumpyTransformFormatter, NUMPY_TRANSFORM_FORMAT)


def with_numpy_transform(dataset: datasets.Dataset, transform) -> datasets.Dataset:
    """`dataset.with_transform(transform)`, except that `transform` receives numpy arrays read straight from
    Arrow rather than Python lists (the same values: float32 images stay float32, class ids come as int64).
    For 150x150 images this is about 7x faster per batch: datasets' list extraction and `np.asarray` on nested
    lists cost about 1.2 ms per image, the numpy extraction 0.05 ms."""
    if CustomFormatter is None:  # pragma: no cover
        return dataset.with_transform(transform)
    return dataset.with_format(NUMPY_TRANSFORM_FORMAT, transform=transform)


def with_training_transforms(
    dataset: Union[datasets.Dataset, datasets.DatasetDict],
    processor: Any = None,
    augment_splits: Sequence[str] = ("train",),
    **transform_kwargs,
) -> Union[datasets.Dataset, datasets.DatasetDict]:
    """A view of `dataset` whose rows come out as model inputs: D4-augmented in `augment_splits`,
    plain elsewhere, normalised by `processor` everywhere. The original dataset is untouched.

    A single Dataset is augmented. `transform_kwargs` go to `LensTrainingTransform`. The view is
    `set_transform`'s (on the fly, per `ds[...]` query or DataLoader batch) with the batch read as
    numpy arrays (`with_numpy_transform`): the same tensors as `ds.with_transform(LensTrainingTransform(...))`,
    faster.
    """
    if isinstance(dataset, datasets.Dataset):
        return with_numpy_transform(dataset, LensTrainingTransform(processor, augment=True, **transform_kwargs))
    return datasets.DatasetDict(
        {
            split: with_numpy_transform(
                split_dataset, LensTrainingTransform(processor, augment=split in augment_splits, **transform_kwargs)
            )
            for split, split_dataset in dataset.items()
        }
    )


@dataclass(frozen=True)
class LensViewAugmentation:
    """The random "view" of a lensing image that contrastive pretraining (SimCLR) compares: what may change
    between two views is what does not change the physics the labels describe. Each step, and why it is allowed:

    - a D4 element (`random_d4`): the sky has no preferred orientation or handedness;
    - a sub-pixel translation (up to `max_shift` px, bilinear): the lens centre is only known to a pixel, and
      the position carries no information about dark-matter substructure;
    - PSF-width jitter (a Gaussian blur of sigma up to `max_blur_sigma` px, added in quadrature to the
      instrument PSF): the seeing varies between exposures and instruments;
    - noise-level jitter (Gaussian noise of up to `max_noise` x the image's standard deviation): exposure time
      and sky background vary; substructure must be recognised through noise;
    - flux scaling (x U(1 - `flux_scale`, 1 + `flux_scale`)): the source's brightness and the zero point do not
      set the lens's mass distribution.

    Never colour jitter (one band: there is no colour, and band ratios would be physics) and never a crop: the
    ring is the signal, and a crop that cuts it away removes the substructure the views must agree on.
    Deterministic given the generator, so augmentation in training is resume-exact and evaluation is fixed."""

    d4: bool = True
    max_shift: float = 1.0
    max_blur_sigma: float = 0.75
    max_noise: float = 0.05
    flux_scale: float = 0.2

    def __post_init__(self):
        for name in ("max_shift", "max_blur_sigma", "max_noise", "flux_scale"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise ValueError(f"LensViewAugmentation.{name} must be a finite number >= 0, got {value!r}")
        if self.flux_scale >= 1:
            raise ValueError(f"LensViewAugmentation.flux_scale must be < 1 (it scales by 1 +- flux_scale), got "
                             f"{self.flux_scale}")

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclass_fields(self)}

    def __call__(self, pixel_values: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One random view of every image of a `(batch, channels, height, width)` tensor."""
        if pixel_values.ndim != 4:
            raise ValueError(f"LensViewAugmentation takes (batch, channels, height, width) images, got shape "
                             f"{tuple(pixel_values.shape)}")
        images = pixel_values
        batch = images.shape[0]

        def uniform(*shape):
            return torch.rand(*shape, generator=generator, device=generator.device).to(images.device, images.dtype)

        if self.d4:
            (images,) = random_d4(images, generator=generator)
        if self.max_shift > 0:
            images = _translate(images, (uniform(batch, 2) * 2 - 1) * self.max_shift)
        if self.max_blur_sigma > 0:
            images = _gaussian_blur(images, uniform(batch) * self.max_blur_sigma)
        if self.max_noise > 0:
            scale = uniform(batch, 1, 1, 1) * self.max_noise * images.std(dim=(1, 2, 3), keepdim=True)
            noise = torch.randn(images.shape, generator=generator, device=generator.device).to(images.device, images.dtype)
            images = images + scale * noise
        if self.flux_scale > 0:
            images = images * (1 + (uniform(batch, 1, 1, 1) * 2 - 1) * self.flux_scale)
        return images


def _translate(images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Shift each image by (dx, dy) pixels (bilinear; zeros enter at the border, where a lensing frame is sky)."""
    batch, _, height, width = images.shape
    theta = torch.zeros(batch, 2, 3, dtype=images.dtype, device=images.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2] = -2 * shifts[:, 0] / width  # grid coordinates span [-1, 1] over the image
    theta[:, 1, 2] = -2 * shifts[:, 1] / height
    grid = torch.nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
    return torch.nn.functional.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _gaussian_blur(images: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Blur image i with a normalised Gaussian of `sigmas[i]` px (sigma 0: unchanged), separably."""
    batch, channels, height, width = images.shape
    radius = max(1, int(np.ceil(3 * float(sigmas.max()))))
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    safe = sigmas.clamp_min(1e-3)[:, None]
    kernels = torch.exp(-0.5 * (offsets[None] / safe) ** 2)
    kernels = torch.where(sigmas[:, None] > 1e-3, kernels, (offsets[None] == 0).to(images.dtype))
    kernels = (kernels / kernels.sum(dim=1, keepdim=True)).repeat_interleave(channels, dim=0)  # (B*C, K)
    flat = images.reshape(1, batch * channels, height, width)
    flat = torch.nn.functional.pad(flat, (radius, radius, radius, radius), mode="replicate")
    flat = torch.nn.functional.conv2d(flat, kernels[:, None, None, :], groups=batch * channels)
    flat = torch.nn.functional.conv2d(flat, kernels[:, None, :, None], groups=batch * channels)
    return flat.reshape(batch, channels, height, width)
