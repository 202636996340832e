"""Training transforms applied on the fly with `set_transform`/`with_transform`.

Lensing images have no preferred orientation, so the eight symmetries of the square (the D4
group: four rotations, each with or without a flip) are label-preserving augmentations. This module
holds the one D4 implementation: the training loop, `set_transform` users and test-time
augmentation all call `random_d4` / `d4_transform`. Normalisation is the image processor's, so training and inference normalise identically.
Nothing is materialised: each batch is read from Arrow, transformed and handed to the model.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import datasets
import numpy as np
import torch

D4_ORDER = 8


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
        arrays = [np.asarray(batch[self.image_column], dtype=np.float32)]
        if self.target_column is not None:
            arrays.append(np.asarray(batch[self.target_column], dtype=np.float32))
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


def with_training_transforms(
    dataset: Union[datasets.Dataset, datasets.DatasetDict],
    processor: Any = None,
    augment_splits: Sequence[str] = ("train",),
    **transform_kwargs,
) -> Union[datasets.Dataset, datasets.DatasetDict]:
    """A view of `dataset` whose rows come out as model inputs: D4-augmented in `augment_splits`,
    plain elsewhere, normalised by `processor` everywhere. The original dataset is untouched.

    A single Dataset is augmented. `transform_kwargs` go to `LensTrainingTransform`.
    """
    if isinstance(dataset, datasets.Dataset):
        return dataset.with_transform(LensTrainingTransform(processor, augment=True, **transform_kwargs))
    return datasets.DatasetDict(
        {
            split: split_dataset.with_transform(
                LensTrainingTransform(processor, augment=split in augment_splits, **transform_kwargs)
            )
            for split, split_dataset in dataset.items()
        }
    )
