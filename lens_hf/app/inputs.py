"""What the app accepts as an image: an uploaded `.npy` (every layout the dataset readers accept, axion
`[image, mass]` object arrays included, never unpickling anything but numpy arrays), a `.fits` file (the first image
HDU, or a chosen one), a PNG, or an image simulated on the spot. Each becomes a channel-first float32 array and
what is known about it (the true class or mass of a simulated image); anything else is an `AppInputError` whose
message the page shows."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.readers import LensDataError, read_fits_image, read_npy_image, to_channel_first, to_finite_float32

SIMULATION_PRESETS = ("model_i", "model_ii", "model_iii", "lens_finding")
MAX_UPLOAD_BYTES = 64 * 2**20  # a lensing cutout is kilobytes to a few megabytes
MAX_IMAGE_SIDE = 1024


class AppInputError(ValueError):
    """An input the app cannot use; the message says what was expected and is shown in the page."""


@dataclass
class LensImage:
    """A channel-first (C, H, W) float32 image and what is known about it."""

    pixels: np.ndarray
    source: str
    true_class: str | None = None
    true_log10_mass: float | None = None
    notes: list[str] = field(default_factory=list)


def read_upload(path: str | Path, hdu: int | None = None) -> LensImage:
    """The image in an uploaded file, by its extension (.npy, .fits/.fit/.fz, .png/.jpg)."""
    if path is None:
        raise AppInputError("no file given: upload a .npy, .fits or .png image, or simulate one")
    path = Path(path)
    if not path.is_file():
        raise AppInputError(f"{path.name}: the upload is not a readable file")
    if path.stat().st_size > MAX_UPLOAD_BYTES:
        raise AppInputError(f"{path.name}: {path.stat().st_size / 2**20:.0f} MiB is too large for one lens image "
                            f"(at most {MAX_UPLOAD_BYTES // 2**20} MiB)")
    suffix = "".join(path.suffixes[-2:]).lower() if path.name.lower().endswith(".fits.fz") else path.suffix.lower()
    try:
        if suffix == ".npy":
            image = read_npy_image(path)
            pixels, mass = image.image, image.mass_ev
            result = LensImage(pixels, path.name, true_log10_mass=math.log10(mass) if mass else None)
            if mass:
                result.notes.append(f"the file carries its axion mass, log10(m/eV) = {math.log10(mass):.3f}")
        elif suffix in (".fits", ".fit", ".fts", ".fits.fz"):
            result = LensImage(read_fits_image(path, hdu=hdu), path.name)
        elif suffix in (".png", ".jpg", ".jpeg"):
            result = LensImage(_read_picture(path), path.name)
        else:
            raise AppInputError(f"{path.name}: unknown file type {suffix or '(none)'}; give a .npy, .fits or .png image")
    except LensDataError as error:
        raise AppInputError(str(error).replace(str(path.parent) + "/", "")) from None
    return checked(result)


def _read_picture(path: Path) -> np.ndarray:
    """A PNG/JPEG as bands: grey stays one band, RGB(A) gives three (alpha dropped)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            picture.load()
            if picture.mode in ("L", "I", "I;16", "F", "1", "P", "LA"):
                array = np.asarray(picture.convert("F"))
            else:
                array = np.asarray(picture.convert("RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise AppInputError(f"{path.name}: not a readable image file ({error})") from None
    return to_finite_float32(to_channel_first(array, path), path)


def checked(image: LensImage) -> LensImage:
    """A (C, H, W) image of a sensible size with finite pixels that are not all equal."""
    pixels = np.asarray(image.pixels)
    if pixels.ndim != 3 or not 1 <= pixels.shape[0] <= 16:
        raise AppInputError(f"{image.source}: expected an image (H, W) or (C, H, W) with up to 16 bands, got shape "
                            f"{pixels.shape}")
    if min(pixels.shape[1:]) < 8 or max(pixels.shape[1:]) > MAX_IMAGE_SIDE:
        raise AppInputError(f"{image.source}: image sides must be 8 to {MAX_IMAGE_SIDE} pixels, got "
                            f"{pixels.shape[1]} x {pixels.shape[2]}")
    if not np.isfinite(pixels).all():
        raise AppInputError(f"{image.source}: the image holds NaN or Inf pixels")
    if float(pixels.max() - pixels.min()) == 0.0:
        raise AppInputError(f"{image.source}: every pixel has the same value; there is nothing to see")
    image.pixels = pixels.astype(np.float32, copy=False)
    return image


def preset_classes(preset: str) -> tuple[str, ...]:
    from ..simulation import get_preset

    return tuple(get_preset(_known_preset(preset)).class_names or ())


def _known_preset(preset: str) -> str:
    if preset not in SIMULATION_PRESETS:
        raise AppInputError(f"unknown simulation preset {preset!r}; choose one of {', '.join(SIMULATION_PRESETS)}")
    return preset


def simulate_image(preset: str, class_name: str, seed: int, log10_mass: float | None = None) -> LensImage:
    """One image of `class_name` from the simulator's `preset`, image `seed` of its stream; an axion image gets
    the axion mass `log10_mass` (log10 m/eV, within the preset's range)."""
    from ..simulation import get_preset, simulate

    preset = _known_preset(preset)
    classes = preset_classes(preset)
    if class_name not in classes:
        raise AppInputError(f"preset {preset} has classes {', '.join(classes)}; got {class_name!r}")
    if seed is None or not float(seed).is_integer() or not 0 <= int(seed) < 2**31:
        raise AppInputError(f"the seed must be a whole number from 0 to {2**31 - 1}, got {seed!r}")
    overrides = {"classes": (class_name,)}
    truth_mass = None
    if class_name == "axion":
        low, high = get_preset(preset).log10_m_axion_range
        if log10_mass is None or not low <= float(log10_mass) <= high:
            raise AppInputError(f"the axion mass log10(m/eV) must lie in [{low}, {high}], got {log10_mass!r}")
        overrides["log10_m_axion_range"] = (float(log10_mass), float(log10_mass))
        truth_mass = float(log10_mass)
    result = simulate(get_preset(preset, **overrides), n=1, seed=int(seed))
    image = LensImage(result.images[0].numpy(), f"simulated {preset} {class_name}, seed {int(seed)}",
                      true_class=class_name, true_log10_mass=truth_mass)
    return checked(image)
