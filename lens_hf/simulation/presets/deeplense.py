"""The DeepLenseSim family: its lens, source and substructure physics and the presets built on it.

Defaults reproduce the published Models I, II and III; sr_pairs and pretrain reuse the same
physics for super-resolution pairs and randomised pretraining scenes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Optional

import torch

from ..cosmology import convention_deflection_scale, einstein_radius_per_sqrt_mass
from ..profiles import angle_axis_ratio_to_ellipticity, sersic_total_flux
from .base import SimulationPreset
from .draws import Draws, constant, finish_metadata
from .instruments import EUCLID_VIS, HST_WFC3_F160W, observed_with

SUBSTRUCTURE_CLASSES = ("axion", "cdm", "no_sub")  # sorted: the DeepLenseSim folder names
# Pretraining scenes: which kind of substructure an image got (metadata "substructure_type").
SUBSTRUCTURE_TYPES = ("none", "cdm", "vortex")


def _power_law_masses(uniforms: torch.Tensor, mass_range: tuple, slope: float) -> torch.Tensor:
    """Inverse CDF of dN/dm ~ m^slope on mass_range (the published draw_old_cdm_sub_masses)."""
    low, high = (float(m) ** (slope + 1.0) for m in mass_range)
    return (low + (high - low) * uniforms) ** (1.0 / (slope + 1.0))


@dataclass
class DeepLenseSimPreset(SimulationPreset):
    """The DeepLenseSim lens (SIE + shear), Sersic source and dark-matter substructure classes.

    Defaults are the published values (lenstronomy 1.9.2 + pyHalo, quirks included); every one can
    be overridden.
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
            return constant(batch, self.source_amplitude, r_sersic.device, len(self.bands))
        if magnitude is None:
            magnitude = constant(batch, self.source_magnitude, r_sersic.device)
        unit_flux = sersic_total_flux(torch.ones_like(r_sersic), r_sersic, n_sersic)
        return self.counts_per_second(magnitude) / unit_flux[:, None]

    def lens_light(self, batch: int, device) -> dict:
        """Lens-galaxy light metadata (amplitude 0 when the preset has none)."""
        r_sersic = constant(batch, self.lens_light_r_sersic, device)
        n_sersic = constant(batch, self.lens_light_n_sersic, device)
        if self.lens_light_magnitude is not None:
            unit_flux = sersic_total_flux(torch.ones_like(r_sersic), r_sersic, n_sersic)
            amplitude = self.counts_per_second(constant(batch, self.lens_light_magnitude, device)) / unit_flux[:, None]
        else:
            amplitude = constant(batch, self.lens_light_amplitude or 0.0, device, len(self.bands))
        return {
            "lens_light_amplitude": amplitude,
            "lens_light_r_sersic": r_sersic,
            "lens_light_n_sersic": n_sersic,
            "lens_light_e1": constant(batch, self.lens_light_e1, device),
            "lens_light_e2": constant(batch, self.lens_light_e2, device),
        }

    def exposure_times(self, draws: Draws, batch: int, device) -> torch.Tensor:
        if self.exposure_time_log10_range is not None:
            return 10.0 ** draws.uniform("exposure_time", *self.exposure_time_log10_range)
        return constant(batch, self.exposure_time * self.num_exposures, device)

    # ------------------------------------------------------------------ sampling
    def _drawn_streams(self, *names: str) -> dict:
        """{stream: count} of the named uniform draws sample_parameters makes, for Draws.prefetch:
        the substructure's, the exposure's and the given one-value streams."""
        width = self.max_subhalos
        counts = {name: 1 for name in names}
        counts.update({"cdm_mass": width, "cdm_radius": width, "cdm_angle": width, "axion_log10_mass": 1,
                       "vortex_angle": 1, "source_center": 2})
        if self.exposure_time_log10_range is not None:
            counts["exposure_time"] = 1
        return counts

    def _substructure(self, draws: Draws, is_cdm: torch.Tensor, is_axion: torch.Tensor,
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
            "vortex_theta_e": torch.where(is_axion, constant(batch, k_per_sqrt_m * math.sqrt(self.vortex_mass)
                                                          * sqrt_scale, device), constant(batch, 0.0, device)),
            "vortex_angle": torch.where(is_axion, draws.uniform("vortex_angle", 0.0, 2 * math.pi),
                                        constant(batch, 0.0, device)),
            "vortex_half_length": torch.where(is_axion, self.vortex_length_at_1e22 * 10.0 ** (-22.0 - log10_m),
                                              constant(batch, 0.0, device)),
            "vortex_center_x": constant(batch, 0.0, device),
            "vortex_center_y": constant(batch, 0.0, device),
            "log10_m_axion": torch.where(is_axion, log10_m, constant(batch, math.nan, device)),
        }

    def sample_parameters(self, seed: int, indices: torch.Tensor) -> dict:
        """Metadata (float64, first dim B) of the images with these global indices."""
        batch, device = indices.shape[0], indices.device
        draws = Draws(seed, indices)
        draws.prefetch(self._drawn_streams())
        labels = self.labels_for(indices)
        is_cdm = labels == self.class_names.index("cdm")
        is_axion = labels == self.class_names.index("axion")
        scale = self.deflection_scale()
        r_sersic = constant(batch, self.source_r_sersic, device)
        n_sersic = constant(batch, self.source_n_sersic, device)
        center = draws.uniform("source_center", -self.source_center_range, self.source_center_range, count=2)
        metadata = {
            "einstein_radius_arcsec": constant(batch, self.theta_per_sqrt_mass() * math.sqrt(self.lens_mass) * scale,
                                            device),
            "lens_e1": constant(batch, self.lens_e1, device),
            "lens_e2": constant(batch, self.lens_e2, device),
            "lens_center_x": constant(batch, 0.0, device),
            "lens_center_y": constant(batch, 0.0, device),
            "shear_gamma1": constant(batch, self.shear_gamma1 * scale, device),
            "shear_gamma2": constant(batch, self.shear_gamma2 * scale, device),
            "deflection_scale": constant(batch, scale, device),
            "source_center_x": center[:, 0],
            "source_center_y": center[:, 1],
            "source_r_sersic": r_sersic,
            "source_n_sersic": n_sersic,
            "source_e1": constant(batch, self.source_e1, device),
            "source_e2": constant(batch, self.source_e2, device),
            "source_lensed": constant(batch, 1.0, device),
            "source_amplitude": self.source_amplitudes(r_sersic, n_sersic),
            "exposure_time": self.exposure_times(draws, batch, device),
            "psf_fwhm_arcsec": torch.tensor(self.psf_fwhm, dtype=torch.float64, device=device).expand(batch, -1),
            **self.lens_light(batch, device),
            **self._substructure(draws, is_cdm, is_axion),
        }
        return finish_metadata(self, metadata, seed, indices, labels)


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
@observed_with(EUCLID_VIS)
class ModelIIPreset(DeepLenseSimPreset):
    """DeepLenseSim Model II: 64 px Euclid VIS (zero point 24.0), deflections for z_s = 2.5, image = 2 x model."""

    name: ClassVar[str] = "model_ii"
    image_size: int = 64
    bands: tuple = ("VIS",)
    noise: bool = False
    double_model: bool = True
    z_source_convention: Optional[float] = 2.5
    source_amplitude: Optional[float] = None
    source_magnitude: Optional[float] = 20.0


@dataclass
@observed_with(HST_WFC3_F160W)
class ModelIIIPreset(ModelIIPreset):
    """DeepLenseSim Model III: Model II physics seen by HST WFC3 F160W (64 px at 0.08", seeing 0.08")."""

    name: ClassVar[str] = "model_iii"
    bands: tuple = ("F160W",)


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
        draws = Draws(seed, indices)
        draws.prefetch(self._drawn_streams(
            "lens_angle", "lens_q", "shear_strength", "shear_angle", "source_angle", "source_q", "source_r_sersic",
            "source_n_sersic", "source_magnitude", "substructure_type", "cdm_count", "psf_fwhm", "einstein_radius"))
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
            "lens_center_x": constant(batch, 0.0, device),
            "lens_center_y": constant(batch, 0.0, device),
            "shear_gamma1": shear * torch.cos(2 * shear_angle),
            "shear_gamma2": shear * torch.sin(2 * shear_angle),
            "deflection_scale": constant(batch, self.deflection_scale(), device),
            "source_center_x": center[:, 0],
            "source_center_y": center[:, 1],
            "source_r_sersic": r_sersic,
            "source_n_sersic": n_sersic,
            "source_e1": source_e1,
            "source_e2": source_e2,
            "source_lensed": constant(batch, 1.0, device),
            "source_amplitude": self.source_amplitudes(r_sersic, n_sersic, magnitude),
            "exposure_time": self.exposure_times(draws, batch, device),
            "psf_fwhm_arcsec": psf[:, None],
            "substructure_type": kind.to(torch.float64),
            **self.lens_light(batch, device),
            **self._substructure(draws, kind == 1, kind == 2, cdm_counts=counts),
        }
        return finish_metadata(self, metadata, seed, indices, None)
