"""Datasets for lensing images: readers for every on-disk format, builders, export, transforms.

- `load_builder(name, config, **kwargs)`: a `DatasetDict` from `dataset_builders/<name>/`.
- `export_dataset(dataset_dict, output_dir, card=...)`: Parquet shards + README that
  `datasets.load_dataset(output_dir)` reads; `push_exported(output_dir, repo_id)` uploads it.
- `with_training_transforms(dataset_dict, processor)`: D4 augmentation + normalisation on the fly.
- readers (`read_npy_image`, `read_fits_image`, ...) raise `LensDataError` naming the bad file.
"""
from .builder_base import BadFileLog, LensBuilderConfig, LensGeneratorBuilder
from .export import DatasetCardInfo, card_for_builder, export_builder, export_dataset, push_exported
from .features import image_array, lens_features
from .loading import available_builders, builder_class, load_builder, prepare_builder
from .readers import (
    LensDataError,
    load_npy,
    read_bologna_catalog,
    read_fits_image,
    read_npy_image,
)
from .splits import assign_split
from .transforms import LensTrainingTransform, LensViewAugmentation, d4_transform, with_training_transforms

__all__ = [
    "BadFileLog",
    "DatasetCardInfo",
    "LensBuilderConfig",
    "LensDataError",
    "LensGeneratorBuilder",
    "LensTrainingTransform",
    "LensViewAugmentation",
    "assign_split",
    "available_builders",
    "builder_class",
    "card_for_builder",
    "d4_transform",
    "export_builder",
    "export_dataset",
    "image_array",
    "lens_features",
    "load_builder",
    "load_npy",
    "prepare_builder",
    "push_exported",
    "read_bologna_catalog",
    "read_fits_image",
    "read_npy_image",
    "with_training_transforms",
]
