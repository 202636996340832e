"""Scenes that are not DeepLenseSim's: the lens-finding set (lenses vs non-lenses, three bands)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Optional

import torch

from ..profiles import angle_axis_ratio_to_ellipticity, sersic_total_flux
from .base import SimulationPreset
from .draws import Draws, constant, finish_metadata

LENS_FINDING_CLASSES = ("nonlens", "lens")


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
        draws = Draws(seed, indices)
        draws.prefetch({name: 1 for name in (
            "einstein_radius", "lens_angle", "lens_q", "lens_light_angle_offset", "lens_light_q_offset", "shear_strength",
            "shear_angle", "source_angle", "source_q", "companion_radius", "companion_angle", "source_r_sersic",
            "source_n_sersic", "lens_light_r_sersic", "lens_light_n_sersic", "source_magnitude",
            "lens_light_magnitude")} | {"source_offset": 2})
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
        zeros_k = constant(batch, 0.0, device, self.max_subhalos)
        metadata = {
            "einstein_radius_arcsec": torch.where(is_lens, theta_e, torch.zeros_like(theta_e)),
            "lens_e1": lens_e1,
            "lens_e2": lens_e2,
            "lens_center_x": constant(batch, 0.0, device),
            "lens_center_y": constant(batch, 0.0, device),
            "shear_gamma1": torch.where(is_lens, shear * torch.cos(2 * shear_angle), torch.zeros_like(shear)),
            "shear_gamma2": torch.where(is_lens, shear * torch.sin(2 * shear_angle), torch.zeros_like(shear)),
            "deflection_scale": constant(batch, 1.0, device),
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
            "exposure_time": constant(batch, self.exposure_time * self.num_exposures, device),
            "psf_fwhm_arcsec": torch.tensor(self.psf_fwhm, dtype=torch.float64, device=device).expand(batch, -1),
            "subhalo_x": zeros_k,
            "subhalo_y": zeros_k.clone(),
            "subhalo_mass_msun": zeros_k.clone(),
            "subhalo_theta_e": zeros_k.clone(),
            "vortex_theta_e": constant(batch, 0.0, device),
            "vortex_angle": constant(batch, 0.0, device),
            "vortex_half_length": constant(batch, 0.0, device),
            "vortex_center_x": constant(batch, 0.0, device),
            "vortex_center_y": constant(batch, 0.0, device),
            "log10_m_axion": constant(batch, math.nan, device),
        }
        return finish_metadata(self, metadata, seed, indices, labels)

