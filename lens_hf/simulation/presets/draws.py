"""Helpers of sample_parameters(): named uniform draws keyed by (seed, image index), constant
columns and the metadata columns every preset adds.
"""
from __future__ import annotations

import torch

from .. import rng


class Draws:
    """Named uniform draws for a batch of images (float64, on the keys' device)."""

    def __init__(self, seed: int, indices: torch.Tensor):
        self.keys = rng.image_keys(seed, indices)
        self._prefetched = {}

    def prefetch(self, counts: dict) -> None:
        """Hash the named streams {name: count} together now (rng.uniforms: the same values,
        far fewer ops); uniform() then reads them."""
        self._prefetched.update(rng.uniforms(self.keys, counts))

    def uniform(self, name: str, low: float, high: float, count: int | None = None) -> torch.Tensor:
        width = 1 if count is None else count
        values = self._prefetched.get(name)
        if values is None or values.shape[1] != width:
            values = rng.uniform(self.keys, name, width)
        values = low + (high - low) * values
        return values[:, 0] if count is None else values


def constant(batch: int, value: float, device, columns: int | None = None) -> torch.Tensor:
    """(batch,) or (batch, columns) float64 filled with value."""
    shape = (batch,) if columns is None else (batch, columns)
    return torch.full(shape, float(value), dtype=torch.float64, device=device)


def finish_metadata(preset, metadata: dict, seed: int, indices: torch.Tensor, labels) -> dict:
    """Add index, seed, label (-1: unlabelled) and pixel scale to a preset's metadata."""
    batch, device = indices.shape[0], indices.device
    metadata["index"] = indices.to(torch.int64)
    metadata["seed"] = torch.full((batch,), seed, dtype=torch.int64, device=device)
    metadata["label"] = labels if labels is not None else torch.full((batch,), -1, dtype=torch.int64, device=device)
    metadata["pixel_scale_arcsec"] = constant(batch, preset.pixel_scale, device)
    metadata["psf_fwhm_arcsec"] = metadata["psf_fwhm_arcsec"].contiguous()
    return metadata
