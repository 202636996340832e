"""Simulation presets: dataclasses whose defaults reproduce the published data sets.

A preset holds every setting of a data set; get_preset(name, field=value, ...) returns one with
any field overridden. Per-image random parameters are drawn by preset.sample_parameters()
from counter-based random numbers keyed by (seed, image index) and returned as the metadata
dict that engine.render() turns into images.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Optional

import torch

from . import rng
from .cosmology import convention_deflection_scale, einstein_radius_per_sqrt_mass
from .noise import background_sigma, magnitude_to_counts_per_second
from .profiles import angle_axis_ratio_to_ellipticity, sersic_total_flux

SUBSTRUCTURE_CLASSES = ("axion", "cdm", "no_sub")  # sorted: the DeepLenseSim folder names
LENS_FINDING_CLASSES = ("nonlens", "lens")
# Pretraining scenes: which kind of substructure an image got (metadata "substructure_type").
SUBSTRUCTURE_TYPES = ("none", "cdm", "vortex")


@dataclass(frozen=True)
class Instrument:
    """One band of an instrument, as lenstronomy's ObservationConfig describes it."""

    name: str
    pixel_scale: float  # arcsec
    psf_fwhm: float  # arcsec (Gaussian seeing)
    zero_point: float  # magnitude of 1 count/s
    read_noise: float  # electrons per exposure
    ccd_gain: float  # electrons per ADU
    sky_brightness: float  # mag / arcsec^2
    exposure_time: float  # seconds per exposure
    num_exposures: int


# lenstronomy <= 1.14.0 (the published Model II); 1.14.1 changed the zero point to 25.72
# (4.875x brighter), the sky to 22.3 and the exposure to 566 s.
EUCLID_VIS = Instrument("Euclid VIS (lenstronomy <= 1.14.0)", 0.101, 0.16, 24.0, 4.2, 3.1, 22.35, 565.0, 4)
HST_WFC3_F160W = Instrument("HST WFC3 F160W", 0.08, 0.08, 25.96, 4.0, 2.5, 22.3, 5400.0, 1)
INSTRUMENTS = {"euclid_vis": EUCLID_VIS, "hst_wfc3_f160w": HST_WFC3_F160W}

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


class _Draws:
    """Named uniform draws for a batch of images (float64, on the keys' device)."""

    def __init__(self, seed: int, indices: torch.Tensor):
        self.keys = rng.image_keys(seed, indices)

    def uniform(self, name: str, low: float, high: float, count: int | None = None) -> torch.Tensor:
        values = rng.uniform(self.keys, name, 1 if count is None else count)
        values = low + (high - low) * values
        return values[:, 0] if count is None else values


def _full(batch: int, value: float, device, columns: int | None = None) -> torch.Tensor:
    shape = (batch,) if columns is None else (batch, columns)
    return torch.full(shape, float(value), dtype=torch.float64, device=device)


def _power_law_masses(uniforms: torch.Tensor, mass_range: tuple, slope: float) -> torch.Tensor:
    """Inverse CDF of dN/dm ~ m^slope on mass_range (the published draw_old_cdm_sub_masses)."""
    low, high = (float(m) ** (slope + 1.0) for m in mass_range)
    return (low + (high - low) * uniforms) ** (1.0 / (slope + 1.0))


@dataclass
class DeepLenseSimPreset(SimulationPreset):
    """The DeepLenseSim lens (SIE + shear), Sersic source and dark-matter substructure classes.

    Defaults are the published values (see DESIGN.md section 3); every one can be overridden.
    """

    class_names: ClassVar[Optional[tuple]] = SUBSTRUCTURE_CLASSES

    lens_mass: float = 1e12  # Msun; theta_E from the published point-mass formula
    z_lens: float = 0.5
    z_source: float = 1.0
    hubble_constant: float = 70.0
    omega_matter: float = 0.3
    omega_baryon: float = 0.05
    # "luminosity" reproduces the published distances; "angular" is the correct formula.
    distances: str = "luminosity"
    # Models II/III define deflections for a source at this redshift (None: no rescaling).
    z_source_convention: Optional[float] = None
    convention_hubble_constant: float = 67.5
    convention_omega_matter: float = 0.309
    convention_omega_baryon: float = 0.049
    lens_e1: float = 0.1
    lens_e2: float = 0.0
    shear_gamma1: float = 0.05
    shear_gamma2: float = 0.0
    source_r_sersic: float = 0.25
    source_n_sersic: float = 1.0
    source_e1: float = -0.1
    source_e2: float = 0.1
    # Source centre ~ U(-range, range) arcsec per axis.
    source_center_range: float = 0.35
    # Surface brightness at R_sersic (Model I) ...
    source_amplitude: Optional[float] = 20.0
    # ... or apparent magnitude through the zero point (Models II/III); exactly one is set.
    source_magnitude: Optional[float] = None
    cdm_count: int = 25
    cdm_mass_range: tuple = (1e6, 1e10)
    cdm_mass_slope: float = -0.9
    cdm_radius_range: tuple = (0.25, 2.0)
    vortex_mass: float = 3e10
    log10_m_axion_range: tuple = (-24.0, -22.0)
    # Vortex half-length L = this * (1e-22 eV / m) arcsec (published: 0.06 / 2).
    vortex_length_at_1e22: float = 0.03
    # Optional light of the lens galaxy (not in the published data): an elliptical Sersic at the
    # lens centre, set by amplitude (surface brightness at R) or magnitude; None: no lens light.
    lens_light_amplitude: Optional[float] = None
    lens_light_magnitude: Optional[float] = None
    lens_light_r_sersic: float = 1.0
    lens_light_n_sersic: float = 4.0
    lens_light_e1: float = 0.1
    lens_light_e2: float = 0.0

    def validate(self) -> None:
        super().validate()
        self._check_finite("lens_mass", self.lens_mass, positive=True)
        self._check_finite("z_lens", self.z_lens, positive=True)
        self._check_finite("z_source", self.z_source, positive=True)
        if self.z_source <= self.z_lens:
            self._fail("z_source", f"must exceed z_lens={self.z_lens}, got {self.z_source}")
        if self.distances not in ("luminosity", "angular"):
            self._fail("distances", f"expected 'luminosity' (published) or 'angular', got {self.distances!r}")
        if self.z_source_convention is not None:
            self._check_finite("z_source_convention", self.z_source_convention, positive=True)
            if self.z_source_convention <= self.z_lens:
                self._fail("z_source_convention", f"must exceed z_lens={self.z_lens}")
        for name in ("hubble_constant", "omega_matter", "convention_hubble_constant", "convention_omega_matter"):
            self._check_finite(name, getattr(self, name), positive=True)
        for name in ("omega_baryon", "convention_omega_baryon"):
            self._check_finite(name, getattr(self, name), non_negative=True)
        self._check_ellipticity("lens_e1/lens_e2", self.lens_e1, self.lens_e2)
        self._check_ellipticity("source_e1/source_e2", self.source_e1, self.source_e2)
        self._check_finite("shear_gamma1/shear_gamma2", (self.shear_gamma1, self.shear_gamma2))
        self._check_finite("source_r_sersic", self.source_r_sersic, positive=True)
        self._check_finite("source_n_sersic", self.source_n_sersic, positive=True)
        self._check_finite("source_center_range", self.source_center_range, non_negative=True)
        if (self.source_amplitude is None) == (self.source_magnitude is None):
            self._fail("source_amplitude", "set exactly one of source_amplitude and source_magnitude")
        if self.source_amplitude is not None:
            self._check_finite("source_amplitude", self.source_amplitude, non_negative=True)
        else:
            self._check_finite("source_magnitude", self.source_magnitude)
        self._check_int("cdm_count", self.cdm_count, 0)
        if self.cdm_count > self.max_subhalos:
            self._fail("max_subhalos", f"must be >= cdm_count={self.cdm_count}, got {self.max_subhalos}")
        self._check_range("cdm_mass_range", self.cdm_mass_range, positive=True)
        self._check_finite("cdm_mass_slope", self.cdm_mass_slope)
        if self.cdm_mass_slope == -1.0:
            self._fail("cdm_mass_slope", "slope -1 (log-uniform) is not supported by the published inverse CDF")
        self._check_range("cdm_radius_range", self.cdm_radius_range)
        self._check_finite("cdm_radius_range", self.cdm_radius_range, non_negative=True)
        self._check_finite("vortex_mass", self.vortex_mass, positive=True)
        self._check_range("log10_m_axion_range", self.log10_m_axion_range)
        self._check_finite("vortex_length_at_1e22", self.vortex_length_at_1e22, positive=True)
        if self.lens_light_amplitude is not None and self.lens_light_magnitude is not None:
            self._fail("lens_light_amplitude", "set at most one of lens_light_amplitude and lens_light_magnitude")
        if self.lens_light_amplitude is not None:
            self._check_finite("lens_light_amplitude", self.lens_light_amplitude, non_negative=True)
        if self.lens_light_magnitude is not None:
            self._check_finite("lens_light_magnitude", self.lens_light_magnitude)
        self._check_finite("lens_light_r_sersic", self.lens_light_r_sersic, positive=True)
        self._check_finite("lens_light_n_sersic", self.lens_light_n_sersic, positive=True)
        self._check_ellipticity("lens_light_e1/lens_light_e2", self.lens_light_e1, self.lens_light_e2)

    # ------------------------------------------------------------------ physics constants
    def theta_per_sqrt_mass(self) -> float:
        return einstein_radius_per_sqrt_mass(self.z_lens, self.z_source, self.hubble_constant,
                                             self.omega_matter, self.omega_baryon, self.distances)

    def deflection_scale(self) -> float:
        if self.z_source_convention is None:
            return 1.0
        return convention_deflection_scale(self.z_lens, self.z_source, self.z_source_convention,
                                           self.convention_hubble_constant, self.convention_omega_matter,
                                           self.convention_omega_baryon)

    def source_amplitudes(self, r_sersic: torch.Tensor, n_sersic: torch.Tensor, magnitude=None) -> torch.Tensor:
        """(B, C) Sersic amplitudes: fixed, or such that the total flux matches the magnitude."""
        batch = r_sersic.shape[0]
        if magnitude is None and self.source_amplitude is not None:
            return _full(batch, self.source_amplitude, r_sersic.device, len(self.bands))
        if magnitude is None:
            magnitude = _full(batch, self.source_magnitude, r_sersic.device)
        unit_flux = sersic_total_flux(torch.ones_like(r_sersic), r_sersic, n_sersic)
        return self.counts_per_second(magnitude) / unit_flux[:, None]

    def lens_light(self, batch: int, device) -> dict:
        """Lens-galaxy light metadata (amplitude 0 when the preset has none)."""
        r_sersic = _full(batch, self.lens_light_r_sersic, device)
        n_sersic = _full(batch, self.lens_light_n_sersic, device)
        if self.lens_light_magnitude is not None:
            unit_flux = sersic_total_flux(torch.ones_like(r_sersic), r_sersic, n_sersic)
            amplitude = self.counts_per_second(_full(batch, self.lens_light_magnitude, device)) / unit_flux[:, None]
        else:
            amplitude = _full(batch, self.lens_light_amplitude or 0.0, device, len(self.bands))
        return {
            "lens_light_amplitude": amplitude,
            "lens_light_r_sersic": r_sersic,
            "lens_light_n_sersic": n_sersic,
            "lens_light_e1": _full(batch, self.lens_light_e1, device),
            "lens_light_e2": _full(batch, self.lens_light_e2, device),
        }

    def exposure_times(self, draws: _Draws, batch: int, device) -> torch.Tensor:
        if self.exposure_time_log10_range is not None:
            return 10.0 ** draws.uniform("exposure_time", *self.exposure_time_log10_range)
        return _full(batch, self.exposure_time * self.num_exposures, device)

    # ------------------------------------------------------------------ sampling
    def _substructure(self, draws: _Draws, is_cdm: torch.Tensor, is_axion: torch.Tensor,
                      cdm_counts: torch.Tensor | None = None) -> dict:
        """Subhalo and vortex parameters; rows that have none get zeros (and NaN axion mass)."""
        batch, device = is_cdm.shape[0], is_cdm.device
        k_per_sqrt_m = self.theta_per_sqrt_mass()
        sqrt_scale = math.sqrt(self.deflection_scale())
        width = self.max_subhalos
        masses = _power_law_masses(draws.uniform("cdm_mass", 0.0, 1.0, width), self.cdm_mass_range,
                                   self.cdm_mass_slope)
        radius = draws.uniform("cdm_radius", *self.cdm_radius_range, count=width)
        angle = draws.uniform("cdm_angle", 0.0, 2 * math.pi, count=width)
        if cdm_counts is None:
            cdm_counts = torch.full((batch,), self.cdm_count, dtype=torch.int64, device=device)
        slot = torch.arange(width, device=device)
        present = is_cdm[:, None] & (slot[None, :] < cdm_counts[:, None])
        zeros = torch.zeros_like(masses)
        log10_m = draws.uniform("axion_log10_mass", *self.log10_m_axion_range)
        return {
            # published: x = r sin(phi), y = r cos(phi)
            "subhalo_x": torch.where(present, radius * torch.sin(angle), zeros),
            "subhalo_y": torch.where(present, radius * torch.cos(angle), zeros),
            "subhalo_mass_msun": torch.where(present, masses, zeros),
            "subhalo_theta_e": torch.where(present, k_per_sqrt_m * torch.sqrt(masses) * sqrt_scale, zeros),
            "vortex_theta_e": torch.where(is_axion, _full(batch, k_per_sqrt_m * math.sqrt(self.vortex_mass)
                                                          * sqrt_scale, device), _full(batch, 0.0, device)),
            "vortex_angle": torch.where(is_axion, draws.uniform("vortex_angle", 0.0, 2 * math.pi),
                                        _full(batch, 0.0, device)),
            "vortex_half_length": torch.where(is_axion, self.vortex_length_at_1e22 * 10.0 ** (-22.0 - log10_m),
                                              _full(batch, 0.0, device)),
            "vortex_center_x": _full(batch, 0.0, device),
            "vortex_center_y": _full(batch, 0.0, device),
            "log10_m_axion": torch.where(is_axion, log10_m, _full(batch, math.nan, device)),
        }

    def sample_parameters(self, seed: int, indices: torch.Tensor) -> dict:
        """Metadata (float64, first dim B) of the images with these global indices."""
        batch, device = indices.shape[0], indices.device
        draws = _Draws(seed, indices)
        labels = self.labels_for(indices)
        is_cdm = labels == self.class_names.index("cdm")
        is_axion = labels == self.class_names.index("axion")
        scale = self.deflection_scale()
        r_sersic = _full(batch, self.source_r_sersic, device)
        n_sersic = _full(batch, self.source_n_sersic, device)
        center = draws.uniform("source_center", -self.source_center_range, self.source_center_range, count=2)
        metadata = {
            "einstein_radius_arcsec": _full(batch, self.theta_per_sqrt_mass() * math.sqrt(self.lens_mass) * scale,
                                            device),
            "lens_e1": _full(batch, self.lens_e1, device),
            "lens_e2": _full(batch, self.lens_e2, device),
            "lens_center_x": _full(batch, 0.0, device),
            "lens_center_y": _full(batch, 0.0, device),
            "shear_gamma1": _full(batch, self.shear_gamma1 * scale, device),
            "shear_gamma2": _full(batch, self.shear_gamma2 * scale, device),
            "deflection_scale": _full(batch, scale, device),
            "source_center_x": center[:, 0],
            "source_center_y": center[:, 1],
            "source_r_sersic": r_sersic,
            "source_n_sersic": n_sersic,
            "source_e1": _full(batch, self.source_e1, device),
            "source_e2": _full(batch, self.source_e2, device),
            "source_lensed": _full(batch, 1.0, device),
            "source_amplitude": self.source_amplitudes(r_sersic, n_sersic),
            "exposure_time": self.exposure_times(draws, batch, device),
            "psf_fwhm_arcsec": torch.tensor(self.psf_fwhm, dtype=torch.float64, device=device).expand(batch, -1),
            **self.lens_light(batch, device),
            **self._substructure(draws, is_cdm, is_axion),
        }
        return _finish_metadata(self, metadata, seed, indices, labels)


def _finish_metadata(preset: SimulationPreset, metadata: dict, seed: int, indices: torch.Tensor, labels) -> dict:
    batch, device = indices.shape[0], indices.device
    metadata["index"] = indices.to(torch.int64)
    metadata["seed"] = torch.full((batch,), seed, dtype=torch.int64, device=device)
    metadata["label"] = labels if labels is not None else torch.full((batch,), -1, dtype=torch.int64, device=device)
    metadata["pixel_scale_arcsec"] = _full(batch, preset.pixel_scale, device)
    metadata["psf_fwhm_arcsec"] = metadata["psf_fwhm_arcsec"].contiguous()
    return metadata


@dataclass
class ModelIPreset(DeepLenseSimPreset):
    """DeepLenseSim Model I: 150 px at 0.05", PSF 0.087", Poisson counts with exposure 10^U(3, 3.5) s."""

    name: ClassVar[str] = "model_i"
    image_size: int = 150
    pixel_scale: float = 0.05
    bands: tuple = ("model_i",)
    psf_fwhm: tuple = (0.087,)
    noise: bool = True
    noise_model: str = "model_i"
    exposure_time_log10_range: Optional[tuple] = (3.0, 3.5)
    source_amplitude: Optional[float] = 20.0
    source_magnitude: Optional[float] = None


@dataclass
class ModelIIPreset(DeepLenseSimPreset):
    """DeepLenseSim Model II: 64 px Euclid VIS (zero point 24.0), deflections for z_s = 2.5, image = 2 x model."""

    name: ClassVar[str] = "model_ii"
    image_size: int = 64
    pixel_scale: float = EUCLID_VIS.pixel_scale
    bands: tuple = ("VIS",)
    psf_fwhm: tuple = (EUCLID_VIS.psf_fwhm,)
    zero_point: tuple = (EUCLID_VIS.zero_point,)
    read_noise: tuple = (EUCLID_VIS.read_noise,)
    ccd_gain: tuple = (EUCLID_VIS.ccd_gain,)
    sky_brightness: tuple = (EUCLID_VIS.sky_brightness,)
    exposure_time: float = EUCLID_VIS.exposure_time
    num_exposures: int = EUCLID_VIS.num_exposures
    noise: bool = False
    double_model: bool = True
    z_source_convention: Optional[float] = 2.5
    source_amplitude: Optional[float] = None
    source_magnitude: Optional[float] = 20.0


@dataclass
class ModelIIIPreset(ModelIIPreset):
    """DeepLenseSim Model III: Model II physics seen by HST WFC3 F160W (64 px at 0.08", seeing 0.08")."""

    name: ClassVar[str] = "model_iii"
    pixel_scale: float = HST_WFC3_F160W.pixel_scale
    bands: tuple = ("F160W",)
    psf_fwhm: tuple = (HST_WFC3_F160W.psf_fwhm,)
    zero_point: tuple = (HST_WFC3_F160W.zero_point,)
    read_noise: tuple = (HST_WFC3_F160W.read_noise,)
    ccd_gain: tuple = (HST_WFC3_F160W.ccd_gain,)
    sky_brightness: tuple = (HST_WFC3_F160W.sky_brightness,)
    exposure_time: float = HST_WFC3_F160W.exposure_time
    num_exposures: int = HST_WFC3_F160W.num_exposures


@dataclass
class SRPairsPreset(ModelIPreset):
    """Super-resolution pairs of one system: LR 75 px at 0.05" with Model I noise, HR 150 px at 0.025" noiseless.

    Both are min-max normalised to [0, 1] per image, as in the DeepLense SR set; the HR image
    sees the same physical PSF.
    """

    name: ClassVar[str] = "sr_pairs"
    image_size: int = 75
    pixel_scale: float = 0.05
    hr_image_size: int = 150
    hr_pixel_scale: float = 0.025
    normalize: str = "minmax"
    classes: Optional[tuple] = ("no_sub",)

    def validate(self) -> None:
        super().validate()
        self._check_int("hr_image_size", self.hr_image_size, 1)
        self._check_finite("hr_pixel_scale", self.hr_pixel_scale, positive=True)

    def grid(self, target: bool = False) -> tuple:
        if target:
            return self.hr_image_size, self.hr_pixel_scale, self.supersampling
        return self.image_size, self.pixel_scale, self.supersampling

    @property
    def has_targets(self) -> bool:
        return True


@dataclass
class PretrainPreset(DeepLenseSimPreset):
    """Randomised scenes for self-supervised pretraining (unlabelled).

    Every image draws its own lens (theta_E, q, angle), shear, Sersic source (R, n, q, angle,
    centre, magnitude), PSF width, exposure and substructure: none, CDM point masses
    (1..max_subhalos) or a vortex (line mass by default), with substructure_fractions.
    """

    name: ClassVar[str] = "pretrain"
    class_names: ClassVar[Optional[tuple]] = None
    image_size: int = 64
    noise: bool = True
    z_source_convention: Optional[float] = None
    source_amplitude: Optional[float] = None
    source_magnitude: Optional[float] = 20.0
    vortex_model: str = "line"
    einstein_radius_range: tuple = (0.5, 1.6)
    lens_axis_ratio_range: tuple = (0.5, 1.0)
    shear_range: tuple = (0.0, 0.08)
    source_r_sersic_range: tuple = (0.1, 0.5)
    source_n_sersic_range: tuple = (0.5, 4.0)
    source_axis_ratio_range: tuple = (0.4, 1.0)
    source_magnitude_range: tuple = (19.0, 22.0)
    psf_fwhm_range: tuple = (0.10, 0.25)
    exposure_time_log10_range: Optional[tuple] = (3.0, 3.7)
    # Relative frequencies of no substructure, CDM subhalos and a vortex.
    substructure_fractions: tuple = (1.0, 1.0, 1.0)

    def validate(self) -> None:
        super().validate()
        if len(self.bands) != 1:
            self._fail("bands", "the pretrain preset renders one band")
        self._check_range("einstein_radius_range", self.einstein_radius_range, positive=True)
        self._check_range("lens_axis_ratio_range", self.lens_axis_ratio_range, positive=True, upper=1.0)
        self._check_range("shear_range", self.shear_range, lower=0.0)
        self._check_range("source_r_sersic_range", self.source_r_sersic_range, positive=True)
        self._check_range("source_n_sersic_range", self.source_n_sersic_range, positive=True)
        self._check_range("source_axis_ratio_range", self.source_axis_ratio_range, positive=True, upper=1.0)
        self._check_range("source_magnitude_range", self.source_magnitude_range)
        self._check_range("psf_fwhm_range", self.psf_fwhm_range, lower=0.0)
        if len(self.substructure_fractions) != len(SUBSTRUCTURE_TYPES):
            self._fail("substructure_fractions", f"needs one weight for each of {SUBSTRUCTURE_TYPES}")
        self._check_finite("substructure_fractions", self.substructure_fractions, non_negative=True)
        if sum(self.substructure_fractions) <= 0:
            self._fail("substructure_fractions", "weights must not all be zero")

    def sample_parameters(self, seed: int, indices: torch.Tensor) -> dict:
        batch, device = indices.shape[0], indices.device
        draws = _Draws(seed, indices)
        lens_e1, lens_e2 = angle_axis_ratio_to_ellipticity(draws.uniform("lens_angle", 0.0, math.pi),
                                                           draws.uniform("lens_q", *self.lens_axis_ratio_range))
        shear = draws.uniform("shear_strength", *self.shear_range)
        shear_angle = draws.uniform("shear_angle", 0.0, math.pi)
        source_e1, source_e2 = angle_axis_ratio_to_ellipticity(
            draws.uniform("source_angle", 0.0, math.pi), draws.uniform("source_q", *self.source_axis_ratio_range))
        r_sersic = draws.uniform("source_r_sersic", *self.source_r_sersic_range)
        n_sersic = draws.uniform("source_n_sersic", *self.source_n_sersic_range)
        center = draws.uniform("source_center", -self.source_center_range, self.source_center_range, count=2)
        magnitude = draws.uniform("source_magnitude", *self.source_magnitude_range)
        edges = torch.tensor(self.substructure_fractions, dtype=torch.float64, device=device).cumsum(0)
        kind = torch.searchsorted(edges / edges[-1], draws.uniform("substructure_type", 0.0, 1.0), right=True)
        kind = kind.clamp(max=len(SUBSTRUCTURE_TYPES) - 1)
        counts = 1 + torch.floor(draws.uniform("cdm_count", 0.0, 1.0) * self.max_subhalos).to(torch.int64)
        counts = counts.clamp(max=self.max_subhalos)
        psf = draws.uniform("psf_fwhm", *self.psf_fwhm_range)
        metadata = {
            "einstein_radius_arcsec": draws.uniform("einstein_radius", *self.einstein_radius_range),
            "lens_e1": lens_e1,
            "lens_e2": lens_e2,
            "lens_center_x": _full(batch, 0.0, device),
            "lens_center_y": _full(batch, 0.0, device),
            "shear_gamma1": shear * torch.cos(2 * shear_angle),
            "shear_gamma2": shear * torch.sin(2 * shear_angle),
            "deflection_scale": _full(batch, self.deflection_scale(), device),
            "source_center_x": center[:, 0],
            "source_center_y": center[:, 1],
            "source_r_sersic": r_sersic,
            "source_n_sersic": n_sersic,
            "source_e1": source_e1,
            "source_e2": source_e2,
            "source_lensed": _full(batch, 1.0, device),
            "source_amplitude": self.source_amplitudes(r_sersic, n_sersic, magnitude),
            "exposure_time": self.exposure_times(draws, batch, device),
            "psf_fwhm_arcsec": psf[:, None],
            "substructure_type": kind.to(torch.float64),
            **self.lens_light(batch, device),
            **self._substructure(draws, kind == 1, kind == 2, cdm_counts=counts),
        }
        return _finish_metadata(self, metadata, seed, indices, None)


@dataclass
class LensFindingPreset(SimulationPreset):
    """Lens finding: 3-band 64 px scenes, lenses (lensed arcs + lens galaxy) vs non-lenses, imbalanced.

    A non-lens is the same kind of galaxy with an unlensed background galaxy somewhere in the
    field. Lenses are `lens_fraction` of the stream. Synthetic (not a published set): the bands
    use Euclid-VIS-like noise with per-band seeing and colours.
    """

    name: ClassVar[str] = "lens_finding"
    class_names: ClassVar[Optional[tuple]] = LENS_FINDING_CLASSES
    image_size: int = 64
    bands: tuple = ("g", "r", "i")
    psf_fwhm: tuple = (0.20, 0.17, 0.16)
    zero_point: tuple = (24.0, 24.0, 24.0)
    read_noise: tuple = (4.2, 4.2, 4.2)
    ccd_gain: tuple = (3.1, 3.1, 3.1)
    sky_brightness: tuple = (22.6, 22.35, 21.9)
    noise: bool = True
    lens_fraction: float = 0.1
    einstein_radius_range: tuple = (0.6, 1.8)
    lens_axis_ratio_range: tuple = (0.6, 1.0)
    shear_range: tuple = (0.0, 0.06)
    lens_light_r_sersic_range: tuple = (0.5, 1.5)
    lens_light_n_sersic_range: tuple = (2.0, 5.0)
    lens_light_magnitude_range: tuple = (18.5, 20.5)
    # magnitude offsets of each band from the first: lens galaxies red, sources blue
    lens_light_colors: tuple = (0.0, -0.6, -1.0)
    source_r_sersic_range: tuple = (0.1, 0.4)
    source_n_sersic_range: tuple = (0.7, 2.0)
    source_axis_ratio_range: tuple = (0.4, 1.0)
    source_magnitude_range: tuple = (20.5, 22.5)
    source_colors: tuple = (0.0, 0.1, 0.2)
    # lensed source centre ~ U(-f, f) * theta_E per axis; a non-lens companion at U(r_min, r_max)"
    source_offset_fraction: float = 0.5
    companion_radius_range: tuple = (1.0, 3.0)

    def __post_init__(self):
        self._check_lens_fraction()
        if self.class_weights is None and self.classes is None:
            self.class_weights = (1.0 - self.lens_fraction, self.lens_fraction)
        super().__post_init__()

    def _check_lens_fraction(self):
        self._check_finite("lens_fraction", self.lens_fraction)
        if not 0.0 <= self.lens_fraction <= 1.0:
            self._fail("lens_fraction", f"must be in [0, 1], got {self.lens_fraction}")

    def validate(self) -> None:
        self._check_lens_fraction()
        super().validate()
        for name in ("einstein_radius_range", "lens_light_r_sersic_range", "lens_light_n_sersic_range",
                     "source_r_sersic_range", "source_n_sersic_range"):
            self._check_range(name, getattr(self, name), positive=True)
        for name in ("lens_axis_ratio_range", "source_axis_ratio_range"):
            self._check_range(name, getattr(self, name), positive=True, upper=1.0)
        self._check_range("shear_range", self.shear_range, lower=0.0)
        self._check_range("companion_radius_range", self.companion_radius_range, lower=0.0)
        for name in ("lens_light_magnitude_range", "source_magnitude_range"):
            self._check_range(name, getattr(self, name))
        for name in ("lens_light_colors", "source_colors"):
            if len(getattr(self, name)) != len(self.bands):
                self._fail(name, f"needs one offset per band {self.bands}")
            self._check_finite(name, getattr(self, name))
        self._check_finite("source_offset_fraction", self.source_offset_fraction, non_negative=True)

    def sample_parameters(self, seed: int, indices: torch.Tensor) -> dict:
        batch, device = indices.shape[0], indices.device
        draws = _Draws(seed, indices)
        labels = self.labels_for(indices)
        is_lens = labels == self.class_names.index("lens")
        theta_e = draws.uniform("einstein_radius", *self.einstein_radius_range)
        lens_angle = draws.uniform("lens_angle", 0.0, math.pi)
        lens_q = draws.uniform("lens_q", *self.lens_axis_ratio_range)
        lens_e1, lens_e2 = angle_axis_ratio_to_ellipticity(lens_angle, lens_q)
        light_e1, light_e2 = angle_axis_ratio_to_ellipticity(
            lens_angle + draws.uniform("lens_light_angle_offset", -0.2, 0.2),
            torch.clamp(lens_q + draws.uniform("lens_light_q_offset", -0.1, 0.1), 0.3, 1.0))
        shear = draws.uniform("shear_strength", *self.shear_range)
        shear_angle = draws.uniform("shear_angle", 0.0, math.pi)
        source_e1, source_e2 = angle_axis_ratio_to_ellipticity(
            draws.uniform("source_angle", 0.0, math.pi), draws.uniform("source_q", *self.source_axis_ratio_range))
        offset = draws.uniform("source_offset", -self.source_offset_fraction, self.source_offset_fraction, count=2)
        companion_radius = draws.uniform("companion_radius", *self.companion_radius_range)
        companion_angle = draws.uniform("companion_angle", 0.0, 2 * math.pi)
        source_x = torch.where(is_lens, offset[:, 0] * theta_e, companion_radius * torch.cos(companion_angle))
        source_y = torch.where(is_lens, offset[:, 1] * theta_e, companion_radius * torch.sin(companion_angle))
        r_sersic = draws.uniform("source_r_sersic", *self.source_r_sersic_range)
        n_sersic = draws.uniform("source_n_sersic", *self.source_n_sersic_range)
        light_r = draws.uniform("lens_light_r_sersic", *self.lens_light_r_sersic_range)
        light_n = draws.uniform("lens_light_n_sersic", *self.lens_light_n_sersic_range)
        colors = torch.tensor(self.source_colors, dtype=torch.float64, device=device)
        light_colors = torch.tensor(self.lens_light_colors, dtype=torch.float64, device=device)
        source_rate = self.counts_per_second(draws.uniform("source_magnitude", *self.source_magnitude_range))
        light_rate = self.counts_per_second(draws.uniform("lens_light_magnitude", *self.lens_light_magnitude_range))
        source_rate = source_rate * 10.0 ** (-0.4 * colors)
        light_rate = light_rate * 10.0 ** (-0.4 * light_colors)
        ones = torch.ones_like(r_sersic)
        zeros_k = _full(batch, 0.0, device, self.max_subhalos)
        metadata = {
            "einstein_radius_arcsec": torch.where(is_lens, theta_e, torch.zeros_like(theta_e)),
            "lens_e1": lens_e1,
            "lens_e2": lens_e2,
            "lens_center_x": _full(batch, 0.0, device),
            "lens_center_y": _full(batch, 0.0, device),
            "shear_gamma1": torch.where(is_lens, shear * torch.cos(2 * shear_angle), torch.zeros_like(shear)),
            "shear_gamma2": torch.where(is_lens, shear * torch.sin(2 * shear_angle), torch.zeros_like(shear)),
            "deflection_scale": _full(batch, 1.0, device),
            "source_center_x": source_x,
            "source_center_y": source_y,
            "source_r_sersic": r_sersic,
            "source_n_sersic": n_sersic,
            "source_e1": source_e1,
            "source_e2": source_e2,
            "source_lensed": is_lens.to(torch.float64),
            "source_amplitude": source_rate / sersic_total_flux(ones, r_sersic, n_sersic)[:, None],
            "lens_light_amplitude": light_rate / sersic_total_flux(ones, light_r, light_n)[:, None],
            "lens_light_r_sersic": light_r,
            "lens_light_n_sersic": light_n,
            "lens_light_e1": light_e1,
            "lens_light_e2": light_e2,
            "exposure_time": _full(batch, self.exposure_time * self.num_exposures, device),
            "psf_fwhm_arcsec": torch.tensor(self.psf_fwhm, dtype=torch.float64, device=device).expand(batch, -1),
            "subhalo_x": zeros_k,
            "subhalo_y": zeros_k.clone(),
            "subhalo_mass_msun": zeros_k.clone(),
            "subhalo_theta_e": zeros_k.clone(),
            "vortex_theta_e": _full(batch, 0.0, device),
            "vortex_angle": _full(batch, 0.0, device),
            "vortex_half_length": _full(batch, 0.0, device),
            "vortex_center_x": _full(batch, 0.0, device),
            "vortex_center_y": _full(batch, 0.0, device),
            "log10_m_axion": _full(batch, math.nan, device),
        }
        return _finish_metadata(self, metadata, seed, indices, labels)


PRESETS = {
    preset.name: preset
    for preset in (ModelIPreset, ModelIIPreset, ModelIIIPreset, SRPairsPreset, LensFindingPreset, PretrainPreset)
}


def get_preset(name: str, **overrides) -> SimulationPreset:
    """A preset instance by name, with any field overridden (e.g. image_size=64, noise=False)."""
    if name not in PRESETS:
        raise KeyError(f"unknown simulation preset {name!r}; available: {sorted(PRESETS)}")
    preset_class = PRESETS[name]
    known = {f.name for f in fields(preset_class)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"preset {name!r} has no field(s) {unknown}; fields: {sorted(known)}")
    return preset_class(**overrides)
