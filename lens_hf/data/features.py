"""The dataset schema (`image` Array3D (C, H, W) float32, `label` ClassLabel, metadata Value columns), in one
place so every builder writes the same columns."""
from __future__ import annotations

from typing import Optional, Sequence

import datasets

# Physical metadata columns and their Arrow types; a builder picks the ones it can fill.
METADATA_TYPES = {
    "log10_m_axion": "float32",
    "einstein_radius_arcsec": "float32",
    "pixel_scale_arcsec": "float32",
    "uid": "string",
}


def image_array(shape: Sequence[int]) -> datasets.Array3D:
    """A channel-first (C,H,W) float32 image column."""
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"an image column needs a channel-first shape (C,H,W) with C >= 1, got {tuple(shape)}")
    return datasets.Array3D(shape=tuple(int(n) for n in shape), dtype="float32")


def lens_features(
    images: dict[str, Sequence[int]],
    class_names: Optional[Sequence[str]] = None,
    metadata: Sequence[str] = ("uid",),
    extra_float_columns: Sequence[str] = (),
) -> datasets.Features:
    """Features with image columns (`{"image": (C,H,W)}` or `{"lr": ..., "hr": ...}`), an optional
    `label` ClassLabel, the physical metadata columns and any other float32 columns."""
    features = {name: image_array(shape) for name, shape in images.items()}
    if class_names is not None:
        features["label"] = datasets.ClassLabel(names=list(class_names))
    for name in metadata:
        if name not in METADATA_TYPES:
            raise ValueError(f"unknown metadata column {name!r}; known: {sorted(METADATA_TYPES)}")
        features[name] = datasets.Value(METADATA_TYPES[name])
    for name in extra_float_columns:
        features[name] = datasets.Value("float32")
    return datasets.Features(features)
