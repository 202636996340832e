"""What every preset shares: image geometry, PSF, noise settings, class labels and validation.

A preset is a dataclass holding every setting of a data set; subclasses add a data set's physics
and its sample_parameters(). Invalid fields raise PresetError naming the field.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Optional

import torch

from ..noise import background_sigma, magnitude_to_counts_per_second
from .instruments import EUCLID_VIS

NOISE_MODELS = ("model_i", "instrument")
NORMALIZATIONS = ("none", "minmax")
VORTEX_MODELS = ("points", "line")
COUNT_UNITS = ("e-", "ADU")
# Per-band fields: a scalar override is broadcast to every band.
_PER_BAND_FIELDS = ("psf_fwhm", "zero_point", "read_noise", "ccd_gain", "sky_brightness")
# Weyl-sequence step for weighted class schedules (golden ratio conjugate).
_GOLDEN_FRACTION = (math.sqrt(5.0) - 1.0) / 2.0


class PresetError(ValueError):
    """A preset field holds a value the simulator cannot use."""


def _band_tuple(value: Any, count: int) -> tuple:
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return (value,) * count


@dataclass
class SimulationPreset:
    """Image formation settings shared by every preset (geometry, PSF, noise, classes).

    Subclasses add the physics of a data set and implement sample_parameters().
    """

    name: ClassVar[str] = "base"
    # Class vocabulary of the preset's labels (None: unlabelled). labels index into it.
    class_names: ClassVar[Optional[tuple]] = None

    image_size: int = 64
    pixel_scale: float = EUCLID_VIS.pixel_scale
    supersampling: int = 1
    bands: tuple = ("VIS",)
    psf_fwhm: tuple = (EUCLID_VIS.psf_fwhm,)
    # Gaussian PSF cut at this many sigma (lenstronomy 1.9.2 numerics: 4).
    psf_truncation: float = 4.0
    noise: bool = False
    noise_model: str = "instrument"
    # Model I noise: Gaussian background rms (counts/s per pixel).
    background_rms: float = 0.01
    zero_point: tuple = (EUCLID_VIS.zero_point,)
    read_noise: tuple = (EUCLID_VIS.read_noise,)
    ccd_gain: tuple = (EUCLID_VIS.ccd_gain,)
    sky_brightness: tuple = (EUCLID_VIS.sky_brightness,)
    exposure_time: float = EUCLID_VIS.exposure_time  # seconds per exposure
    num_exposures: int = EUCLID_VIS.num_exposures
    # If set, each image's total exposure is 10**U(low, high) seconds (Model I).
    exposure_time_log10_range: Optional[tuple] = None
    count_unit: str = "e-"
    # The published Models II/III return model + model: images are twice the noiseless model.
    double_model: bool = False
    normalize: str = "none"
    # Subset of class_names to draw (None: all); labels still index class_names.
    classes: Optional[tuple] = None
    # Relative frequency of each entry of `classes` (None: equal, label = index % n).
    class_weights: Optional[tuple] = None
    # Point-mass subhalos are padded to this many per image (zero mass beyond the count).
    max_subhalos: int = 25
    vortex_model: str = "points"
    vortex_points: int = 100

    def __post_init__(self):
        count = len(self.bands) if isinstance(self.bands, (list, tuple)) else 1
        self.bands = _band_tuple(self.bands, count)
        for name in _PER_BAND_FIELDS:
            setattr(self, name, _band_tuple(getattr(self, name), count))
        for name in ("classes", "class_weights", "exposure_time_log10_range"):
            value = getattr(self, name)
            if isinstance(value, list):
                setattr(self, name, tuple(value))
        self.validate()

    # ------------------------------------------------------------------ validation
    def _fail(self, field_name: str, message: str):
        raise PresetError(f"{type(self).__name__}.{field_name}: {message}")

    def _check_finite(self, field_name: str, value, *, positive=False, non_negative=False):
        values = value if isinstance(value, (list, tuple)) else (value,)
        for item in values:
            if isinstance(item, bool) or not isinstance(item, (int, float)) or not math.isfinite(item):
                self._fail(field_name, f"expected finite number(s), got {value!r}")
            if positive and item <= 0:
                self._fail(field_name, f"must be > 0, got {value!r}")
            if non_negative and item < 0:
                self._fail(field_name, f"must be >= 0, got {value!r}")

    def _check_range(self, field_name: str, value, *, positive=False, lower=None, upper=None):
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            self._fail(field_name, f"expected a (low, high) pair, got {value!r}")
        self._check_finite(field_name, value, positive=positive)
        low, high = value
        if low > high:
            self._fail(field_name, f"low must be <= high, got {value!r}")
        if lower is not None and low < lower or upper is not None and high > upper:
            self._fail(field_name, f"must lie within [{lower}, {upper}], got {value!r}")

    def _check_ellipticity(self, field_name: str, e1: float, e2: float):
        self._check_finite(field_name, (e1, e2))
        modulus = math.hypot(e1, e2)
        if modulus >= 1:
            self._fail(field_name, f"|e| = {modulus:.4g} gives axis ratio q = (1-|e|)/(1+|e|) <= 0; need q in (0, 1]")

    def _check_int(self, field_name: str, value, minimum: int):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self._fail(field_name, f"expected an int >= {minimum}, got {value!r}")

    def validate(self) -> None:
        """Raise PresetError naming the first field that cannot be simulated."""
        self._check_int("image_size", self.image_size, 1)
        self._check_int("supersampling", self.supersampling, 1)
        self._check_finite("pixel_scale", self.pixel_scale, positive=True)
        if not self.bands or not all(isinstance(band, str) for band in self.bands):
            self._fail("bands", f"expected a non-empty tuple of band names, got {self.bands!r}")
        for name in _PER_BAND_FIELDS:
            value = getattr(self, name)
            if len(value) != len(self.bands):
                self._fail(name, f"needs one value per band ({len(self.bands)}: {self.bands}), got {value!r}")
        self._check_finite("psf_fwhm", self.psf_fwhm, non_negative=True)
        self._check_finite("psf_truncation", self.psf_truncation, positive=True)
        self._check_finite("zero_point", self.zero_point)
        self._check_finite("read_noise", self.read_noise, non_negative=True)
        self._check_finite("ccd_gain", self.ccd_gain, positive=True)
        self._check_finite("sky_brightness", self.sky_brightness)
        self._check_finite("background_rms", self.background_rms, non_negative=True)
        self._check_finite("exposure_time", self.exposure_time, positive=True)
        self._check_int("num_exposures", self.num_exposures, 1)
        if self.exposure_time_log10_range is not None:
            self._check_range("exposure_time_log10_range", self.exposure_time_log10_range)
        for name, allowed in (("noise_model", NOISE_MODELS), ("normalize", NORMALIZATIONS),
                              ("vortex_model", VORTEX_MODELS), ("count_unit", COUNT_UNITS)):
            if getattr(self, name) not in allowed:
                self._fail(name, f"expected one of {allowed}, got {getattr(self, name)!r}")
        if not isinstance(self.noise, bool) or not isinstance(self.double_model, bool):
            self._fail("noise" if not isinstance(self.noise, bool) else "double_model", "expected True or False")
        if self.noise and self.noise_model == "model_i" and self.exposure_time_log10_range is None:
            self._fail("exposure_time_log10_range", "Model I noise needs a random exposure range (e.g. (3.0, 3.5))")
        self._check_int("max_subhalos", self.max_subhalos, 0)
        self._check_int("vortex_points", self.vortex_points, 1)
        self._validate_classes()

    def _validate_classes(self):
        if self.class_names is None:
            if self.classes is not None or self.class_weights is not None:
                self._fail("classes", f"preset {self.name!r} is unlabelled; leave classes/class_weights as None")
            return
        classes = self.drawn_classes
        if not classes or len(set(classes)) != len(classes):
            self._fail("classes", f"expected distinct names from {self.class_names}, got {self.classes!r}")
        unknown = [name for name in classes if name not in self.class_names]
        if unknown:
            self._fail("classes", f"unknown class(es) {unknown}; this preset has {self.class_names}")
        if self.class_weights is not None:
            if len(self.class_weights) != len(classes):
                self._fail("class_weights", f"needs one weight per class in {classes}, got {self.class_weights!r}")
            self._check_finite("class_weights", self.class_weights, non_negative=True)
            if sum(self.class_weights) <= 0:
                self._fail("class_weights", "weights must not all be zero")

    # ------------------------------------------------------------------ classes
    @property
    def drawn_classes(self) -> tuple:
        return tuple(self.classes) if self.classes is not None else tuple(self.class_names or ())

    @property
    def labelled(self) -> bool:
        return self.class_names is not None

    def labels_for(self, indices: torch.Tensor) -> Optional[torch.Tensor]:
        """Deterministic, balanced class of each global image index (independent of the seed).

        Equal weights: classes[index % n]. Weighted: a Weyl sequence frac((index + 1/2) * golden)
        split by the cumulative weights, so every prefix of the stream holds each class within
        O(log n) of its share.
        """
        if not self.labelled:
            return None
        classes = self.drawn_classes
        vocabulary = torch.tensor([self.class_names.index(name) for name in classes], dtype=torch.int64,
                                  device=indices.device)
        weights = self.class_weights
        if weights is None or len(set(weights)) == 1:
            return vocabulary[indices % len(classes)]
        position = torch.frac((indices.to(torch.float64) + 0.5) * _GOLDEN_FRACTION)
        edges = torch.tensor(weights, dtype=torch.float64, device=indices.device).cumsum(0)
        edges = edges / edges[-1]
        slot = torch.searchsorted(edges, position, right=True).clamp(max=len(classes) - 1)
        return vocabulary[slot]

    # ------------------------------------------------------------------ rendering settings
    def grid(self, target: bool = False) -> tuple:
        """(image_size, pixel_scale, supersampling) of the images (target=True: SR targets)."""
        if target:
            raise ValueError(f"preset {self.name!r} has no target images (only 'sr_pairs' does)")
        return self.image_size, self.pixel_scale, self.supersampling

    @property
    def has_targets(self) -> bool:
        return False

    def band_background_sigma(self, exposure_time: torch.Tensor) -> torch.Tensor:
        """(B, C) Gaussian background sigma (counts/s, or ADU/s) of the instrument noise."""
        per_band = []
        for band in range(len(self.bands)):
            sigma = background_sigma(self.read_noise[band], exposure_time, self.num_exposures,
                                     self.sky_brightness[band], self.zero_point[band], self.pixel_scale)
            if self.count_unit == "ADU":
                sigma = sigma / self.ccd_gain[band]
            per_band.append(sigma)
        return torch.stack(per_band, dim=-1)

    def counts_per_second(self, magnitude: torch.Tensor) -> torch.Tensor:
        """(B,) magnitudes -> (B, C) count rates per band in the preset's count unit."""
        zero_points = torch.tensor(self.zero_point, dtype=torch.float64, device=magnitude.device)
        rates = magnitude_to_counts_per_second(magnitude[:, None], zero_points)
        if self.count_unit == "ADU":
            rates = rates / torch.tensor(self.ccd_gain, dtype=torch.float64, device=magnitude.device)
        return rates

    def sample_parameters(self, seed: int, indices: torch.Tensor) -> dict:
        raise NotImplementedError(f"{type(self).__name__} does not define sample_parameters()")

    def to_dict(self) -> dict:
        return {"name": self.name, **dataclasses.asdict(self)}

