"""Datasets for lensing images: readers for every on-disk format, builders, export, transforms."""
from .builder_base import BadFileLog, LensBuilderConfig, LensGeneratorBuilder
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
