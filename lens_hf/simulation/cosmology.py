"""Einstein radii and deflection rescaling, from astropy, with the published quirks.

DeepLenseSim computes theta_E = sqrt(4 G M / c^2 * D_ls / (D_l D_s)) with *luminosity*
distances and D_ls = D_L(z_s) - D_L(z_l) (flat LCDM, H0 = 70, Om0 = 0.3) and converts with
206265 arcsec per radian; for M = 1e12 Msun at z = 0.5 -> 1.0 this is 1.2815". Models II/III
then ray-trace with deflections defined for a convention source at z = 2.5 while the source
sits at z = 1.0 (pyHalo's cosmology, H0 = 67.5, Om0 = 0.309): every deflection is scaled by
the ratio of the two D_ls/D_s, 0.63346.
"""
from __future__ import annotations

import math
from functools import lru_cache

# The published code's radian-to-arcsec factor (not 180*3600/pi).
PUBLISHED_ARCSEC_PER_RADIAN = 206265.0


def _flat_lcdm(hubble_constant: float, omega_matter: float, omega_baryon: float):
    from astropy.cosmology import FlatLambdaCDM

    return FlatLambdaCDM(H0=hubble_constant, Om0=omega_matter, Ob0=omega_baryon)


def _distance_between(cosmology, z_near: float, z_far: float):
    """Angular-diameter distance between two redshifts (astropy 8 renamed the two-argument call)."""
    try:
        return cosmology.angular_diameter_distance(z_near, z_far)
    except TypeError:  # astropy < 8
        return cosmology.angular_diameter_distance_z1z2(z_near, z_far)


def _check_redshifts(z_lens: float, z_source: float, what: str) -> None:
    if not (math.isfinite(z_lens) and math.isfinite(z_source)) or z_lens <= 0 or z_source <= z_lens:
        raise ValueError(f"{what}: need 0 < z_lens < z_source, got z_lens={z_lens}, z_source={z_source}")


@lru_cache(maxsize=64)
def einstein_radius_per_sqrt_mass(z_lens: float, z_source: float, hubble_constant: float = 70.0,
                                  omega_matter: float = 0.3, omega_baryon: float = 0.05,
                                  distances: str = "luminosity") -> float:
    """Point-mass Einstein radius (arcsec) of 1 Msun; theta_E(M) = this * sqrt(M / Msun).

    distances="luminosity" reproduces the published DeepLenseSim quirk (D_ls = D_L(z_s) - D_L(z_l));
    "angular" is the physically correct angular-diameter version.
    """
    from astropy import units
    from astropy.constants import G, M_sun, c

    _check_redshifts(z_lens, z_source, "einstein_radius_per_sqrt_mass")
    cosmology = _flat_lcdm(hubble_constant, omega_matter, omega_baryon)
    if distances == "luminosity":
        d_lens = cosmology.luminosity_distance(z_lens)
        d_source = cosmology.luminosity_distance(z_source)
        d_lens_source = d_source - d_lens
    elif distances == "angular":
        d_lens = cosmology.angular_diameter_distance(z_lens)
        d_source = cosmology.angular_diameter_distance(z_source)
        d_lens_source = _distance_between(cosmology, z_lens, z_source)
    else:
        raise ValueError(f"distances must be 'luminosity' (published) or 'angular', got {distances!r}")
    theta = (4 * G * M_sun / c**2 * d_lens_source / (d_lens * d_source)).to(units.dimensionless_unscaled) ** 0.5
    return float(theta.value) * PUBLISHED_ARCSEC_PER_RADIAN


@lru_cache(maxsize=64)
def convention_deflection_scale(z_lens: float, z_source: float, z_source_convention: float,
                                hubble_constant: float = 67.5, omega_matter: float = 0.309,
                                omega_baryon: float = 0.049) -> float:
    """Factor on deflections defined for a source at z_source_convention, for a source at z_source."""
    _check_redshifts(z_lens, z_source, "convention_deflection_scale")
    _check_redshifts(z_lens, z_source_convention, "convention_deflection_scale")
    cosmology = _flat_lcdm(hubble_constant, omega_matter, omega_baryon)

    def efficiency(z: float) -> float:
        return float(_distance_between(cosmology, z_lens, z).value
                     / cosmology.angular_diameter_distance(z).value)

    return efficiency(z_source) / efficiency(z_source_convention)
