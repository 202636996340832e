"""Pixel grids, supersampling and the Gaussian PSF, in lenstronomy's numerics.

The PSF is scipy.ndimage.gaussian_filter(mode="nearest", truncate=T) per band, which is what
lenstronomy applies for a 'GAUSSIAN' PSF (1.9.2 truncates at 4 sigma): a normalised 1-D
kernel of radius int(T * sigma + 0.5) pixels, applied along rows and columns. Everything here
is shifted adds and multiplies, which torch rounds identically for any batch layout.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch

from .rng import aligned_count

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def pixel_grid(image_size: int, pixel_scale: float, supersampling: int = 1, *,
               dtype=torch.float32, device=None):
    """See _pixel_grid; cached, as every slice of a batch uses the same grid."""
    return _pixel_grid(int(image_size), float(pixel_scale), int(supersampling), dtype, str(torch.device(device or "cpu")))


def pixel_axis(image_size: int, pixel_scale: float, supersampling: int = 1, *, dtype=torch.float32, device=None,
               row: bool = False):
    """(N * S,) sample coordinates along one axis: pixel_grid's y of one column; row=True: the x
    of one of pixel_grid's rows, (row_length(N * S),) (the image's columns, then any padding)."""
    fine = int(image_size) * int(supersampling)
    length = row_length(fine) if row else fine
    return _pixel_axis(int(image_size), float(pixel_scale), int(supersampling), length, dtype,
                       str(torch.device(device or "cpu")))


# Elementwise CPU kernels run 2 vectors (32 float32 values with AVX-512) per step and the rest of
# a row one value at a time; the point masses' passes loop over image rows (broadcast operands),
# so a 150-value row runs 22 of them scalar. pixel_grid's rows are therefore padded to a multiple
# of this when that adds at most a tenth (150 -> 160: the point masses 9% faster, the same bytes).
_ROW_MULTIPLE = 32


def row_length(fine: int) -> int:
    """Values per row of pixel_grid for an image (or sub-pixel grid) `fine` samples wide."""
    wide = -(-fine // _ROW_MULTIPLE) * _ROW_MULTIPLE
    return wide if 10 * (wide - fine) <= fine else fine


# The cached grids are built as ordinary tensors even when first asked for under the engine's
# torch.inference_mode() (so any later caller can use them freely).
@lru_cache(maxsize=32)
@torch.inference_mode(False)
def _pixel_axis(image_size: int, pixel_scale: float, supersampling: int, length: int, dtype, device: str):
    fine = image_size * supersampling
    axis = (torch.arange(length, dtype=torch.float64) - (fine - 1) / 2.0) * (pixel_scale / supersampling)
    return axis.to(dtype=dtype, device=device)


@lru_cache(maxsize=32)
@torch.inference_mode(False)
def _pixel_grid(image_size: int, pixel_scale: float, supersampling: int, dtype, device: str):
    """Flattened, padded (x, y) sample positions of an image (and its sub-pixels).

    Pixel (row j, column i) of an N-pixel image sits at x = (i - (N-1)/2) * pixel_scale,
    y = (j - (N-1)/2) * pixel_scale (lenstronomy's grid, east to the right). With
    supersampling S the S x S sub-pixel centres of each pixel are returned instead, row-major
    over the (N*S) x (N*S) grid. Each row holds row_length(N*S) values: the N*S samples, then
    (if any) positions continuing the row, computed and dropped by unpad_to_image. The tail is
    padded (with the first position) to a multiple of rng.VECTOR_ALIGNMENT, so the
    transcendental kernels see the same layout for every image.
    """
    fine = image_size * supersampling
    columns = _pixel_axis(image_size, pixel_scale, supersampling, row_length(fine), torch.float64, "cpu")
    rows = _pixel_axis(image_size, pixel_scale, supersampling, fine, torch.float64, "cpu")
    y, x = torch.meshgrid(rows, columns, indexing="ij")
    x, y = x.reshape(-1), y.reshape(-1)
    padding = aligned_count(x.numel()) - x.numel()
    if padding:
        x = torch.cat([x, x[:1].expand(padding)])
        y = torch.cat([y, y[:1].expand(padding)])
    return x.to(dtype=dtype, device=device), y.to(dtype=dtype, device=device)


def unpad_to_image(values: torch.Tensor, image_size: int, supersampling: int = 1) -> torch.Tensor:
    """(..., P_padded) sub-pixel values on pixel_grid -> (..., N, N) pixel means."""
    fine = image_size * supersampling
    length = row_length(fine)
    image = values[..., : fine * length].reshape(*values.shape[:-1], fine, length)
    if length != fine:
        image = image[..., :fine]
    if supersampling == 1:
        return image
    blocks = image.reshape(*values.shape[:-1], image_size, supersampling, image_size, supersampling)
    total = None
    for row in range(supersampling):  # S^2 slices, added in a fixed order
        for column in range(supersampling):
            part = blocks[..., :, row, :, column]
            total = part if total is None else total + part
    return total / float(supersampling * supersampling)


def gaussian_kernel_1d(fwhm_arcsec: torch.Tensor, pixel_scale: float, truncation: float,
                       max_radius: int | None = None) -> torch.Tensor:
    """(..., 2R+1) normalised Gaussian taps, scipy's: radius int(truncation * sigma + 0.5).

    Images whose own radius is below R get exact zeros in the outer taps, so a batch can share
    one R without changing any image. fwhm_arcsec <= 0 gives the identity kernel.
    """
    sigma = fwhm_arcsec.to(torch.float64) / FWHM_PER_SIGMA / pixel_scale
    radius = torch.floor(truncation * sigma + 0.5)
    if max_radius is None:
        max_radius = int(radius.max().item()) if radius.numel() else 0
    offsets = torch.arange(-max_radius, max_radius + 1, dtype=torch.float64, device=sigma.device)
    safe_sigma = torch.where(sigma > 0, sigma, torch.ones_like(sigma)).unsqueeze(-1)
    taps = torch.exp(-0.5 * (offsets / safe_sigma) ** 2)
    taps = torch.where(offsets.abs() <= radius.unsqueeze(-1), taps, torch.zeros_like(taps))
    taps = torch.where(sigma.unsqueeze(-1) > 0, taps, (offsets == 0).to(taps.dtype).expand_as(taps))
    total = taps[..., 0]
    for index in range(1, taps.shape[-1]):  # fixed summation order
        total = total + taps[..., index]
    return taps / total.unsqueeze(-1)


def gaussian_blur(images: torch.Tensor, taps: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Separable blur of (B, C, H, W) images with per-(image, band) symmetric taps (B, C, 2R+1).

    Edge pixels are repeated (scipy mode='nearest'). The taps are symmetric, so each axis
    costs one multiply and R (add, multiply-add) pairs: w0 p(i) + sum_r w_r (p(i-r) + p(i+r)).
    """
    radius = (taps.shape[-1] - 1) // 2
    weights = taps[..., radius:].to(images.dtype)[..., None, None]  # (B, C, R+1, 1, 1)
    if radius == 0:
        return torch.mul(images, weights[:, :, 0], out=out)

    def blur_axis(values: torch.Tensor, dim: int, result: torch.Tensor | None,
                  padded: torch.Tensor | None = None) -> torch.Tensor:
        size = values.shape[dim]
        if padded is None:
            edge_shape = list(values.shape)
            edge_shape[dim] = radius
            padded = torch.cat([values.narrow(dim, 0, 1).expand(edge_shape), values,
                                values.narrow(dim, size - 1, 1).expand(edge_shape)], dim=dim)
        result = torch.mul(values, weights[:, :, 0], out=result)
        pair = torch.empty_like(result)
        for offset in range(1, radius + 1):
            torch.add(padded.narrow(dim, radius - offset, size), padded.narrow(dim, radius + offset, size), out=pair)
            result.addcmul_(pair, weights[:, :, offset])
        return result

    # the first pass writes between R edge rows of a padded buffer, so the second reads its shifted
    # rows from there (two small copies instead of concatenating the whole image again)
    batch, channels, height, width = images.shape
    padded_rows = images.new_empty((batch, channels, height + 2 * radius, width))
    rows = padded_rows.narrow(-2, radius, height)
    blur_axis(images, -1, rows)
    edge_shape = (batch, channels, radius, width)
    padded_rows.narrow(-2, 0, radius).copy_(rows.narrow(-2, 0, 1).expand(edge_shape))
    padded_rows.narrow(-2, height + radius, radius).copy_(rows.narrow(-2, height - 1, 1).expand(edge_shape))
    return blur_axis(rows, -2, out, padded=padded_rows)
