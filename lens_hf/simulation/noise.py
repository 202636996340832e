"""Noise models: DeepLenseSim Model I counts, and lenstronomy's instrument noise.

Both draw every random number from rng and poisson (keyed by seed and image index), on padded
(B, C * P) layouts, so noise is as reproducible as the noiseless image.
"""
from __future__ import annotations

import torch

from . import rng
from .poisson import poisson


def _padded_flat(images: torch.Tensor):
    """(B, C, H, W) -> (B, C * P_padded) with zero padding, and a function undoing it."""
    batch, channels, height, width = images.shape
    pixels = height * width
    padded = rng.aligned_count(pixels)
    flat = images.reshape(batch, channels, pixels)
    if padded != pixels:
        flat = torch.cat([flat, flat.new_zeros(batch, channels, padded - pixels)], dim=-1)

    def unflatten(values: torch.Tensor) -> torch.Tensor:
        return values.reshape(batch, channels, padded)[..., :pixels].reshape(batch, channels, height, width)

    return flat.reshape(batch, channels * padded), unflatten


# Noise is drawn for a few images at a time, so the temporaries stay in the CPU cache.
_SLICE_ELEMENTS = 1 << 17


def _row_slices(flat: torch.Tensor):
    step = max(1, rng.work_size(flat.device, _SLICE_ELEMENTS) // flat.shape[1])
    return [slice(first, first + step) for first in range(0, flat.shape[0], step)]


def model_i_counts(model: torch.Tensor, exposure_time: torch.Tensor, background_rms: float,
                   keys: torch.Tensor) -> torch.Tensor:
    """DeepLenseSim Model I: Poisson(clip(t * (model + N(0, |model|/t) + N(0, rms^2)), 0)).

    The published simple_sim() adds lenstronomy's Gaussian approximation of Poisson noise and
    a Gaussian background to the model, scales by the exposure time, and then draws Poisson
    counts of that, so the Poisson noise is (knowingly or not) applied twice. The two Gaussians
    are independent, so one normal of variance |model|/t + rms^2 has exactly their distribution
    (and costs half). Returns integer counts in model's dtype. model: (B, C, H, W) flux per
    pixel; exposure_time: (B,).
    """
    flat, unflatten = _padded_flat(model)
    expected = torch.empty_like(flat)
    exposure = exposure_time.to(flat.dtype)[:, None]
    stream = rng.StreamKeys(keys, "model_i_gaussian_noise")
    for rows in _row_slices(flat):
        t = exposure[rows]
        sigma = torch.abs(flat[rows]).div_(t).add_(background_rms * background_rms).sqrt_()
        gaussian = rng.stream_normal(stream.select(rows), flat.shape[1], flat.dtype)
        torch.addcmul(flat[rows], gaussian, sigma, out=expected[rows]).mul_(t).clamp_(min=0)
    return unflatten(poisson(expected, keys, "model_i_counts"))


def magnitude_to_counts_per_second(magnitude, zero_point):
    """Counts per second of a source of this apparent magnitude (zero point: 1 count/s)."""
    return 10.0 ** (-0.4 * (magnitude - zero_point))


def background_sigma(read_noise, exposure_time, num_exposures, sky_brightness, zero_point, pixel_scale):
    """lenstronomy data_util.bkg_noise: Gaussian sigma per pixel, in counts/s.

    exposure_time is the total (all exposures); sky_brightness in mag/arcsec^2.
    """
    sky_counts_per_second = magnitude_to_counts_per_second(sky_brightness, zero_point) * pixel_scale**2
    return torch.sqrt(num_exposures * read_noise**2 + exposure_time * sky_counts_per_second) / exposure_time


def instrument_noise(image: torch.Tensor, exposure_time: torch.Tensor, background: torch.Tensor,
                     keys: torch.Tensor) -> torch.Tensor:
    """lenstronomy SingleBand.noise_for_model: Gaussian background + Gaussian shot noise.

    image: (B, C, H, W) in counts/s; exposure_time: (B,) total seconds; background: (B, C)
    sigma in counts/s. Returns the noise realisation (to be added to image).
    """
    flat, unflatten = _padded_flat(image)
    batch, channels = image.shape[:2]
    noise = torch.empty_like(flat)
    background_stream = rng.StreamKeys(keys, "instrument_background")
    shot_stream = rng.StreamKeys(keys, "instrument_shot_noise")
    for rows in _row_slices(flat):
        per_band = flat[rows].reshape(-1, channels, flat.shape[1] // channels)
        t = exposure_time[rows].to(flat.dtype)[:, None, None]
        shot_sigma = torch.sqrt(torch.clamp(t * per_band, min=0)) / t
        background_draw = rng.stream_normal(background_stream.select(rows), flat.shape[1], flat.dtype)
        shot_draw = rng.stream_normal(shot_stream.select(rows), flat.shape[1], flat.dtype)
        noise[rows] = (background_draw.reshape(per_band.shape) * background[rows].to(flat.dtype)[:, :, None]
                       + shot_draw.reshape(per_band.shape) * shot_sigma).reshape(per_band.shape[0], -1)
    return unflatten(noise)
