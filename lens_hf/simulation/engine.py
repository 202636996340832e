"""simulate() and render(): metadata -> images, batched over images on any torch device.

simulate() draws each image's parameters (presets/), stores them as metadata and renders
from that stored metadata, so render(preset, metadata) gives back the same bytes (noise
included: it is keyed by the stored seed and index).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from . import noise as noise_models
from .optics import gaussian_blur, gaussian_kernel_1d, pixel_axis, pixel_grid, unpad_to_image
from .presets import SimulationPreset
from .profiles import (add_point_mass_deflection_on_grid, sersic_coefficients, sersic_ellipse_from,
                       sie_coefficients, sie_deflection_from, vortex_line_deflection, vortex_point_positions)
from .rng import check_seed, image_keys, work_size

# Keys every metadata dict holds, by shape: (N,), (N, bands), (N, max_subhalos).
PER_IMAGE_KEYS = (
    "einstein_radius_arcsec", "lens_e1", "lens_e2", "lens_center_x", "lens_center_y",
    "shear_gamma1", "shear_gamma2", "deflection_scale",
    "source_center_x", "source_center_y", "source_r_sersic", "source_n_sersic", "source_e1", "source_e2",
    "source_lensed", "lens_light_r_sersic", "lens_light_n_sersic", "lens_light_e1", "lens_light_e2",
    "vortex_theta_e", "vortex_angle", "vortex_half_length", "vortex_center_x", "vortex_center_y",
    "log10_m_axion", "exposure_time", "pixel_scale_arcsec",
)
PER_BAND_KEYS = ("source_amplitude", "lens_light_amplitude", "psf_fwhm_arcsec")
PER_SUBHALO_KEYS = ("subhalo_x", "subhalo_y", "subhalo_theta_e", "subhalo_mass_msun")
INTEGER_KEYS = ("index", "seed", "label")
# Metadata that may legitimately be NaN (no axion in the image).
_NAN_ALLOWED = ("log10_m_axion",)
_NON_NEGATIVE = ("einstein_radius_arcsec", "source_r_sersic", "source_n_sersic", "lens_light_r_sersic",
                 "lens_light_n_sersic", "vortex_theta_e", "vortex_half_length", "exposure_time",
                 "pixel_scale_arcsec", "source_amplitude", "lens_light_amplitude", "psf_fwhm_arcsec",
                 "subhalo_theta_e", "subhalo_mass_msun")
# Images are rendered in slices of at most this many (image x band x pixel) values: elementwise
# torch kernels run several times faster when their operands stay in the CPU cache.
_SLICE_ELEMENTS = 1 << 17
_NOISE_SLICE_ELEMENTS = 1 << 23  # noise.py slices finer itself


@dataclass
class SimulationResult:
    """What simulate() returns. images/targets are on the CPU; metadata tensors too."""

    images: torch.Tensor  # (N, C, H, W)
    labels: Optional[torch.Tensor]  # (N,) int64, None for unlabelled presets
    class_names: Optional[list]
    targets: Optional[torch.Tensor]  # sr_pairs: (N, 1, H_hr, W_hr); else None
    metadata: dict

    def __len__(self) -> int:
        return self.images.shape[0]


def _check_device_dtype(device, dtype) -> torch.device:
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    return torch.device(device)


def _check_preset(preset) -> None:
    if not isinstance(preset, SimulationPreset):
        raise TypeError(f"expected a simulation preset (get_preset(name)), got {type(preset).__name__}")
    preset.validate()


def validate_metadata(preset: SimulationPreset, metadata: dict) -> int:
    """Raise ValueError naming the first missing, misshapen or invalid metadata entry; return N."""
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict of tensors, got {type(metadata).__name__}")
    required = PER_IMAGE_KEYS + PER_BAND_KEYS + PER_SUBHALO_KEYS + INTEGER_KEYS
    missing = [key for key in required if key not in metadata]
    if missing:
        raise ValueError(f"metadata is missing {missing}")
    count = int(torch.as_tensor(metadata["index"]).shape[0])
    bands = len(preset.bands)
    for key in required:
        value = torch.as_tensor(metadata[key])
        if key in PER_BAND_KEYS:
            expected = (count, bands)
        elif key in PER_SUBHALO_KEYS:
            expected = (count, int(value.shape[1]) if value.dim() == 2 else -1)
        else:
            expected = (count,)
        if tuple(value.shape) != expected:
            raise ValueError(f"metadata[{key!r}]: expected shape {expected}, got {tuple(value.shape)}")
        if key in INTEGER_KEYS:
            continue
        finite = torch.isfinite(value) | (torch.isnan(value) if key in _NAN_ALLOWED else False)
        if not bool(finite.all()):
            raise ValueError(f"metadata[{key!r}] holds non-finite values")
        if key in _NON_NEGATIVE and bool((value < 0).any()):
            raise ValueError(f"metadata[{key!r}] must be >= 0 (negative mass, size or flux)")
    for prefix in ("lens", "source", "lens_light"):
        e1, e2 = torch.as_tensor(metadata[f"{prefix}_e1"]), torch.as_tensor(metadata[f"{prefix}_e2"])
        if bool((torch.sqrt(e1 * e1 + e2 * e2) >= 1).any()):
            raise ValueError(f"metadata[{prefix}_e1/{prefix}_e2]: |e| >= 1 means axis ratio q <= 0; need q in (0, 1]")
    widths = {torch.as_tensor(metadata[key]).shape[1] for key in PER_SUBHALO_KEYS}
    if len(widths) != 1:
        raise ValueError(f"metadata subhalo arrays {PER_SUBHALO_KEYS} must share one width, got {sorted(widths)}")
    return count


def _column(values: torch.Tensor, dtype) -> torch.Tensor:
    return values.to(dtype)[:, None]


def _batch_coefficients(preset, meta: dict, dtype, scale: float) -> dict:
    """Every per-image quantity the pixels need, computed once per batch ((B, 1) or (B, K)).

    Slices of the batch take row slices of these (views), so the small per-image arithmetic
    is not repeated for every slice.
    """
    col = {key: _column(meta[key], dtype) for key in PER_IMAGE_KEYS}
    # surface brightness -> flux per pixel: the amplitude times the pixel area; the published
    # Models II/III return model + model, folded in here: doubling is exact in floating point and
    # the blur is linear, so 2 x flux gives the bytes of blurring and then adding the image to itself
    pixel_area = scale * scale * (2.0 if preset.double_model else 1.0)
    coefficients = {
        "sie": sie_coefficients(col["einstein_radius_arcsec"], col["lens_e1"], col["lens_e2"],
                                col["lens_center_x"], col["lens_center_y"]),
        "shear": {"gamma1": col["shear_gamma1"], "gamma2": col["shear_gamma2"]},
        "source": sersic_coefficients(1.0, col["source_r_sersic"], col["source_n_sersic"], col["source_e1"],
                                      col["source_e2"], col["source_center_x"], col["source_center_y"]),
        "source_flux": meta["source_amplitude"].to(dtype) * pixel_area,
        "lensed": (meta["source_lensed"] > 0.5).to(dtype)[:, None],
        "subhalos": {key: meta[key].to(dtype) for key in ("subhalo_theta_e", "subhalo_x", "subhalo_y")},
        "vortex": {key: col[key] for key in ("vortex_theta_e", "vortex_angle", "vortex_half_length",
                                             "vortex_center_x", "vortex_center_y")},
    }
    if bool((meta["lens_light_amplitude"] > 0).any()):
        coefficients["lens_light"] = sersic_coefficients(
            1.0, col["lens_light_r_sersic"], col["lens_light_n_sersic"], col["lens_light_e1"], col["lens_light_e2"],
            col["lens_center_x"], col["lens_center_y"])
        coefficients["lens_light_flux"] = meta["lens_light_amplitude"].to(dtype) * pixel_area
    return coefficients


def _select_rows(values, rows: slice):
    """The same nested dict of per-image tensors, for a slice of the images."""
    if isinstance(values, dict):
        return {key: _select_rows(value, rows) for key, value in values.items()}
    return values[rows] if isinstance(values, torch.Tensor) else values


def _main_lens_deflection(c: dict, x, y):
    """(B, P) deflection of the SIE and the external shear."""
    alpha_x, alpha_y = sie_deflection_from(x, y, c["sie"])
    # external shear (lenstronomy 'SHEAR' about the origin): (g1 x + g2 y, g2 x - g1 y)
    alpha_x.addcmul_(x, c["shear"]["gamma1"]).addcmul_(y, c["shear"]["gamma2"])
    alpha_y.addcmul_(x, c["shear"]["gamma2"]).addcmul_(y, c["shear"]["gamma1"], value=-1.0)
    return alpha_x, alpha_y


def _shared_main_lens(coefficients: dict, x, y):
    """The SIE + shear deflection (1, P) when every image of the batch has the same main lens, else None.

    The DeepLenseSim presets fix the lens and the shear (only the source and the substructure are
    drawn per image), so the ~30 passes of the SIE are done once per batch and each slice copies
    them (one pass). Elementwise kernels give a row the same bytes in any batch, so the images
    are unchanged.
    """
    rows = [coefficients["sie"][key] for key in ("strength", "eccentricity", "q_squared", "core", "cos_phi",
                                                 "sin_phi", "center_x", "center_y")]
    rows += [coefficients["shear"]["gamma1"], coefficients["shear"]["gamma2"]]
    table = torch.cat(rows, dim=1)
    if table.shape[0] < 2 or not bool((table == table[:1]).all()):
        return None
    first = _select_rows({"sie": coefficients["sie"], "shear": coefficients["shear"]}, slice(0, 1))
    return _main_lens_deflection(first, x, y)


def _deflection(preset, c: dict, x, y, axis):
    """(B, P) deflection of the main lens, shear, subhalos and vortex (x, y: pixel_grid; axis: its
    (row, column) axes, pixel_axis(row=True) and pixel_axis())."""
    shared = c.get("shared_main_lens")
    if shared is not None:
        count = c["source_flux"].shape[0]
        alpha_x = torch.empty((count, x.shape[-1]), dtype=x.dtype, device=x.device).copy_(shared[0].expand(count, -1))
        alpha_y = torch.empty_like(alpha_x).copy_(shared[1].expand(count, -1))
    else:
        alpha_x, alpha_y = _main_lens_deflection(c, x, y)

    theta = c["subhalos"]["subhalo_theta_e"]
    # Images without subhalos add nothing; skipping them gives the same bytes.
    rows = torch.nonzero((theta > 0).any(dim=1)).squeeze(1)
    if rows.numel():
        masses = [c["subhalos"][key].index_select(0, rows) for key in ("subhalo_theta_e", "subhalo_x", "subhalo_y")]
        _add_point_masses(alpha_x, alpha_y, rows, axis, *masses)

    vortex = c["vortex"]
    rows = torch.nonzero(vortex["vortex_theta_e"][:, 0] > 0).squeeze(1)
    if rows.numel():
        args = [vortex[key].index_select(0, rows) for key in
                ("vortex_theta_e", "vortex_angle", "vortex_half_length", "vortex_center_x", "vortex_center_y")]
        if preset.vortex_model == "points":
            theta_total, angle, half_length, center_x, center_y = args
            points_x, points_y = vortex_point_positions(angle, half_length, center_x, center_y, preset.vortex_points)
            theta_each = (theta_total / preset.vortex_points**0.5).expand(-1, preset.vortex_points)
            _add_point_masses(alpha_x, alpha_y, rows, axis, theta_each, points_x, points_y)
        else:
            vortex_x, vortex_y = vortex_line_deflection(x, y, *args, n_points=preset.vortex_points)
            alpha_x.index_add_(0, rows, vortex_x)
            alpha_y.index_add_(0, rows, vortex_y)
    return alpha_x, alpha_y


def _add_point_masses(alpha_x, alpha_y, rows, axis, theta_e, center_x, center_y):
    """alpha[rows] += point masses (B_rows, K), on pixel_grid's rows (axis: (columns, rows) axes)."""
    columns, lines = axis
    every_row = rows.numel() == alpha_x.shape[0]  # rows is then 0..B-1
    targets = (alpha_x, alpha_y) if every_row else (alpha_x.index_select(0, rows), alpha_y.index_select(0, rows))
    grids = [target[:, : lines.numel() * columns.numel()].view(-1, lines.numel(), columns.numel())
             for target in targets]
    add_point_mass_deflection_on_grid(*grids, columns, lines, theta_e, center_x, center_y)
    if not every_row:
        alpha_x.index_copy_(0, rows, targets[0])
        alpha_y.index_copy_(0, rows, targets[1])


def _surface_brightness(preset, c: dict, grid: tuple, size: int, supersampling: int) -> torch.Tensor:
    """(B, C, H, W) noiseless flux per pixel before the PSF."""
    x, y, axis = grid
    alpha_x, alpha_y = _deflection(preset, c, x, y, axis)
    if not bool((c["lensed"] > 0).all()):  # non-lenses (lens_finding) see the source directly
        alpha_x.mul_(c["lensed"])
        alpha_y.mul_(c["lensed"])
    source = sersic_ellipse_from(x, y, c["source"], source_offset=(alpha_x, alpha_y))
    bands = c["source_flux"].shape[1]
    if bands == 1 and "lens_light" not in c:
        light = source.mul_(c["source_flux"])[:, None, :]
    else:
        light = source[:, None, :] * c["source_flux"][:, :, None]
        if "lens_light" in c:
            galaxy = sersic_ellipse_from(x, y, c["lens_light"])
            light.addcmul_(galaxy[:, None, :], c["lens_light_flux"][:, :, None])
    return unpad_to_image(light, size, supersampling)


def _render_batch_noiseless(preset, meta: dict, dtype, target: bool, images: torch.Tensor) -> torch.Tensor:
    """Noiseless images of a batch (PSF applied, doubled where the preset says so), in slices, into images."""
    size, scale, supersampling = preset.grid(target)
    device = meta["index"].device
    grid = (*pixel_grid(size, scale, supersampling, dtype=dtype, device=device),
            (pixel_axis(size, scale, supersampling, dtype=dtype, device=device, row=True),
             pixel_axis(size, scale, supersampling, dtype=dtype, device=device)))
    coefficients = _batch_coefficients(preset, meta, dtype, scale)
    shared = _shared_main_lens(coefficients, grid[0], grid[1])
    taps = gaussian_kernel_1d(meta["psf_fwhm_arcsec"], scale, preset.psf_truncation)
    count, bands = meta["index"].shape[0], len(preset.bands)
    step = max(1, work_size(device, _SLICE_ELEMENTS) // (bands * grid[0].numel()))
    for start in range(0, count, step):
        rows = slice(start, start + step)
        part = _select_rows(coefficients, rows)
        part["shared_main_lens"] = shared
        light = _surface_brightness(preset, part, grid, size, supersampling)
        gaussian_blur(light, taps[rows], out=images[rows])
    return images


def _finish_slice(preset, images, meta, target: bool, with_noise: bool) -> torch.Tensor:
    """Noise (if any) and normalisation of a slice of noiseless images."""
    if with_noise and preset.noise and not target:
        keys = image_keys(meta["seed"], meta["index"])
        if preset.noise_model == "model_i":
            images = noise_models.model_i_counts(images, meta["exposure_time"], preset.background_rms, keys)
        else:
            sigma = preset.band_background_sigma(meta["exposure_time"])
            images = images + noise_models.instrument_noise(images, meta["exposure_time"], sigma, keys)
    if preset.normalize == "minmax":
        flat = images.reshape(images.shape[0], -1)
        low = flat.min(dim=1).values[:, None, None, None]
        high = flat.max(dim=1).values[:, None, None, None]
        images = (images - low) / torch.clamp(high - low, min=torch.finfo(images.dtype).tiny)
    return images


def _slices(meta: dict, step: int):
    count = meta["index"].shape[0]
    for start in range(0, count, step):
        yield start, {key: value[start : start + step] for key, value in meta.items()}


def _render_batch(preset, meta: dict, dtype, target: bool, with_noise: bool = True) -> torch.Tensor:
    """The images of a batch of metadata rows (N, C, H, W): an ordinary tensor, written in place.

    The work runs under torch.inference_mode(): the same kernels and bytes, without autograd's
    bookkeeping on each of the thousands of small ops and views (about 9% of the time). Its
    temporaries are inference tensors; the result is allocated outside it, so callers get an
    ordinary tensor (usable in autograd, in-place ops and DataLoader workers).
    """
    size, _, _ = preset.grid(target)
    bands = len(preset.bands)
    pixels = size * size * bands
    device = meta["index"].device
    count = meta["index"].shape[0]
    images = torch.empty((count, bands, size, size), dtype=dtype, device=device)
    # noise runs on bigger slices: its fixed cost per call is higher
    step = max(1, work_size(device, _NOISE_SLICE_ELEMENTS) // pixels)
    with torch.inference_mode():
        _render_batch_noiseless(preset, meta, dtype, target, images)
        for start, part in _slices(meta, step):
            noiseless = images[start : start + step]
            finished = _finish_slice(preset, noiseless, part, target, with_noise)
            if finished is not noiseless:
                noiseless.copy_(finished)
    return images


def _joined(parts: list) -> torch.Tensor:
    """torch.cat, without the copy when there is one part."""
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def _progress(total: int, enabled: bool, description: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="img")


def simulate(preset: SimulationPreset, n: int, seed: int = 0, device="cpu", batch_size: int = 512,
             dtype: torch.dtype = torch.float32, progress: bool = False, start: int = 0) -> SimulationResult:
    """Simulate images start .. start + n - 1 of the preset's stream for this seed.

    Image i depends only on (preset, seed, i): any batch_size, device split or start offset
    gives the same images (bit-identical on CPU with one intra-op thread).
    """
    _check_preset(preset)
    device = _check_device_dtype(device, dtype)
    for name, value, minimum in (("n", n, 0), ("batch_size", batch_size, 1), ("start", start, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"simulate(): {name} must be an int >= {minimum}, got {value!r}")
    check_seed(seed)
    images, targets, metadata_parts = [], [], []
    bar = _progress(n, progress, f"simulate {preset.name}")
    for batch_start in range(start, start + n, batch_size):
        indices = torch.arange(batch_start, min(batch_start + batch_size, start + n), device=device)
        meta = preset.sample_parameters(seed, indices)
        images.append(_render_batch(preset, meta, dtype, target=False).cpu())
        if preset.has_targets:
            targets.append(_render_batch(preset, meta, dtype, target=True).cpu())
        metadata_parts.append({key: value.cpu() for key, value in meta.items()})
        if bar is not None:
            bar.update(indices.numel())
    if bar is not None:
        bar.close()
    if not images:  # n == 0
        size, _, _ = preset.grid()
        empty = torch.empty((0, len(preset.bands), size, size), dtype=dtype)
        meta = preset.sample_parameters(seed, torch.arange(0, device="cpu"))
        images, metadata_parts = [empty], [meta]
        if preset.has_targets:
            hr = preset.grid(target=True)[0]
            targets = [torch.empty((0, len(preset.bands), hr, hr), dtype=dtype)]
    # one batch: its (contiguous) tensors as they are, without torch.cat's copy
    metadata = {key: _joined([part[key] for part in metadata_parts]).contiguous() for key in metadata_parts[0]}
    labels = metadata["label"].clone() if preset.labelled else None
    return SimulationResult(
        images=_joined(images),
        labels=labels,
        class_names=list(preset.class_names) if preset.labelled else None,
        targets=_joined(targets) if preset.has_targets else None,
        metadata=metadata,
    )


def render(preset: SimulationPreset, metadata: dict, *, device="cpu", dtype: torch.dtype = torch.float32,
           batch_size: int = 512, noise: bool = True, targets: bool = False) -> torch.Tensor:
    """Re-render the images described by a metadata dict (e.g. SimulationResult.metadata).

    noise=False gives the noiseless model; targets=True the SR high-resolution images.
    Returns (N, C, H, W) on the CPU.
    """
    _check_preset(preset)
    device = _check_device_dtype(device, dtype)
    count = validate_metadata(preset, metadata)
    if targets and not preset.has_targets:
        raise ValueError(f"preset {preset.name!r} has no target images (only 'sr_pairs' does)")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"render(): batch_size must be an int >= 1, got {batch_size!r}")
    outputs = []
    for start in range(0, count, batch_size):
        meta = {key: torch.as_tensor(value)[start : start + batch_size].to(device) for key, value in metadata.items()}
        outputs.append(_render_batch(preset, meta, dtype, target=targets, with_noise=noise).cpu())
    if not outputs:
        size = preset.grid(targets)[0]
        return torch.empty((0, len(preset.bands), size, size), dtype=dtype)
    return _joined(outputs)
