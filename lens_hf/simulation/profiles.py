"""Closed-form lens and light profiles, batched over images, in lenstronomy's conventions.

Shapes: coordinates are (P,) or (B, P); per-image parameters are (B, 1) (or (B, K, 1) for
sets of point masses), so one call evaluates a whole batch. Angles are in arcsec.
Conventions (checked against lenstronomy in tests/test_simulation_lenstronomy.py):
  e1 = (1-q)/(1+q) cos 2phi, e2 = (1-q)/(1+q) sin 2phi;
  the SIE Einstein radius and the Sersic radius are product averages of the axes
  (a major-axis radius is R / sqrt(q));
  light profiles return surface brightness (flux per arcsec^2).
"""
from __future__ import annotations

import torch

# lenstronomy's SIE is its NIE with this core; kept so the centre pixel is finite.
SIE_CORE = 1e-10
# lenstronomy's POINT_MASS floors the distance at this radius.
POINT_MASS_MIN_RADIUS = 1e-8
# Maximum ellipticity modulus lenstronomy accepts before clipping (q >= 5e-5).
MAX_ELLIPTICITY = 0.9999
# The SIE's eccentricity sqrt(1 - q^2) is floored here: atan(e t)/e and atanh(e t)/e then stay
# finite for a round lens, and differ from their e -> 0 limit by < 1e-12 relative.
_MIN_ECCENTRICITY = 1e-6


def ellipticity_to_angle_axis_ratio(e1: torch.Tensor, e2: torch.Tensor):
    """(phi, q) of lenstronomy's eccentricities; the modulus is clipped at 0.9999 as there."""
    phi = torch.atan2(e2, e1) / 2
    modulus = torch.clamp(torch.sqrt(e1 * e1 + e2 * e2), max=MAX_ELLIPTICITY)
    return phi, (1 - modulus) / (1 + modulus)


def angle_axis_ratio_to_ellipticity(phi: torch.Tensor, q: torch.Tensor):
    modulus = (1 - q) / (1 + q)
    return modulus * torch.cos(2 * phi), modulus * torch.sin(2 * phi)


def sie_coefficients(theta_e, e1, e2, center_x, center_y) -> dict:
    """Per-image (B, 1) quantities of sie_deflection_from (computed once per batch)."""
    phi, q = ellipticity_to_angle_axis_ratio(e1, e2)
    sqrt_q = torch.sqrt(q)
    eccentricity = torch.clamp(torch.sqrt((1 - q) * (1 + q)), min=_MIN_ECCENTRICITY)
    core = SIE_CORE / sqrt_q
    q_squared = q * q
    return dict(
        cos_phi=torch.cos(phi), sin_phi=torch.sin(phi), eccentricity=eccentricity,
        # lenstronomy: theta_E (product average) -> b = theta_E sqrt(q)
        strength=theta_e * sqrt_q / eccentricity,
        q_squared=q_squared, q_squared_core_squared=q_squared * core * core, core=core,
        q_squared_core=q_squared * core, center_x=center_x, center_y=center_y)


def sie_deflection(x, y, theta_e, e1, e2, center_x, center_y):
    """Singular isothermal ellipsoid (lenstronomy 'SIE'): Keeton & Kochanek's closed form."""
    return sie_deflection_from(x, y, sie_coefficients(theta_e, e1, e2, center_x, center_y))


def sie_deflection_from(x, y, c: dict):
    """sie_deflection from sie_coefficients: per pixel a few in-place multiply-adds, a sqrt,
    an atan and an atanh (few temporaries, so a slice of images stays in the CPU cache)."""
    dx, dy = x - c["center_x"], y - c["center_y"]
    # rotate into the frame of the major axis
    xr = (dx * c["cos_phi"]).addcmul_(dy, c["sin_phi"])
    yr = dy.mul_(c["cos_phi"]).addcmul_(dx, c["sin_phi"], value=-1.0)
    # psi = sqrt(q^2 (core^2 + xr^2) + yr^2)
    psi = torch.mul(xr, xr, out=dx).mul_(c["q_squared"]).add_(c["q_squared_core_squared"]).addcmul_(yr, yr).sqrt_()
    alpha_xr = torch.div(xr, psi + c["core"], out=xr).mul_(c["eccentricity"]).atan_().mul_(c["strength"])
    alpha_yr = torch.div(yr, psi.add_(c["q_squared_core"]), out=yr).mul_(c["eccentricity"]).atanh_().mul_(c["strength"])
    alpha_x = (alpha_xr * c["cos_phi"]).addcmul_(alpha_yr, c["sin_phi"], value=-1.0)
    alpha_y = alpha_xr.mul_(c["sin_phi"]).addcmul_(alpha_yr, c["cos_phi"])
    return alpha_x, alpha_y


def shear_deflection(x, y, gamma1, gamma2):
    """External shear about the origin (lenstronomy 'SHEAR' with ra_0 = dec_0 = 0)."""
    return gamma1 * x + gamma2 * y, gamma2 * x - gamma1 * y


def point_mass_deflection(x, y, theta_e, center_x, center_y):
    """Sum of K point masses per image.

    x, y: (P,) or (B, P); theta_e, center_x, center_y: (B, K). Padding entries with
    theta_e = 0 contribute exactly zero, so a fixed K can hold variable counts. In-place steps
    keep the (B, K, P) temporaries to three.
    """
    dx = x.unsqueeze(-2) - center_x.unsqueeze(-1)
    dy = y.unsqueeze(-2) - center_y.unsqueeze(-1)
    strength = dx * dx
    strength.addcmul_(dy, dy).clamp_(min=POINT_MASS_MIN_RADIUS**2)
    torch.div((theta_e * theta_e).unsqueeze(-1).expand_as(strength), strength, out=strength)
    return dx.mul_(strength).sum(dim=-2), dy.mul_(strength).sum(dim=-2)


def add_point_mass_deflection_on_grid(alpha_x, alpha_y, axis_x, axis_y, theta_e, center_x, center_y):
    """alpha += the deflection of K point masses per image, on a regular pixel grid.

    alpha_x, alpha_y: (B, R, C), updated in place; pixel (r, c) sits at (axis_x[c], axis_y[r]).
    theta_e, center_x, center_y: (B, K). On a grid the offsets from a mass are separable, so they
    are computed per row and per column (B, K, R) and (B, K, C); each mass then costs one
    broadcast add for r^2 and two addcdiv passes over the image, half the passes of
    point_mass_deflection, with no (B, K, P) temporaries. Masses are added one after the other
    in a fixed order, elementwise, so every image gets the same bytes in any batch. Columns
    whose theta_e is 0 in every image of the batch are skipped (they would add exact zeros).
    """
    offset_x = axis_x - center_x.unsqueeze(-1)
    offset_y = axis_y - center_y.unsqueeze(-1)
    square_x, square_y = offset_x * offset_x, offset_y * offset_y
    strength = (theta_e * theta_e).unsqueeze(-1)
    floor = POINT_MASS_MIN_RADIUS**2
    # r^2 < floor needs both a column and a row within the floor radius of the mass
    needs_floor = ((square_x.amin(-1) < floor) & (square_y.amin(-1) < floor)).any(0).tolist()
    present = (theta_e != 0).any(0).tolist()
    # per-mass views: columns vary along the last axis, rows along the one before
    columns_squared, rows_squared = square_x.unsqueeze(-2).unbind(1), square_y.unsqueeze(-1).unbind(1)
    pulls_x, pulls_y = (strength * offset_x).unsqueeze(-2).unbind(1), (strength * offset_y).unsqueeze(-1).unbind(1)
    radius_squared = torch.empty_like(alpha_x)
    for k in range(theta_e.shape[1]):
        if not present[k]:
            continue
        torch.add(rows_squared[k], columns_squared[k], out=radius_squared)
        if needs_floor[k]:
            radius_squared.clamp_(min=floor)
        alpha_x.addcdiv_(pulls_x[k], radius_squared)
        alpha_y.addcdiv_(pulls_y[k], radius_squared)


def vortex_point_positions(angle, half_length, center_x, center_y, n_points: int):
    """Centres of the published vortex: n_points evenly spaced on [-L, L] along `angle`."""
    fraction = torch.linspace(-1.0, 1.0, n_points, dtype=half_length.dtype, device=half_length.device)
    along = half_length * fraction  # (B, n_points)
    return center_x + along * torch.cos(angle), center_y + along * torch.sin(angle)


def vortex_points_deflection(x, y, theta_total, angle, half_length, center_x, center_y, n_points: int):
    """The published vortex: n_points equal point masses whose theta_E^2 sum to theta_total^2.

    Per-image parameters are (B, 1).
    """
    positions_x, positions_y = vortex_point_positions(angle, half_length, center_x, center_y, n_points)
    theta_each = (theta_total / n_points**0.5).expand(-1, n_points)
    return point_mass_deflection(x, y, theta_each, positions_x, positions_y)


def line_mass_deflection(x, y, theta_total, angle, half_length, center_x, center_y):
    """Uniform line mass on the segment centre +- L e^{i angle} (the fast vortex form).

    alpha(z) = theta_total^2 / (2L) u conj(log((z - c + L u) / (z - c - L u))), u = e^{i angle}:
    the limit of many equal point masses spread evenly along the segment.
    """
    cos_a, sin_a = torch.cos(angle), torch.sin(angle)
    dx, dy = x - center_x, y - center_y
    end_x, end_y = half_length * cos_a, half_length * sin_a
    plus_x, plus_y = dx + end_x, dy + end_y
    minus_x, minus_y = dx - end_x, dy - end_y
    # (z + Lu) * conj(z - Lu): its log modulus and argument give log((z + Lu)/(z - Lu))
    ratio_re = plus_x * minus_x + plus_y * minus_y
    ratio_im = plus_y * minus_x - plus_x * minus_y
    log_modulus = 0.5 * (
        torch.log(torch.clamp(plus_x * plus_x + plus_y * plus_y, min=POINT_MASS_MIN_RADIUS**2))
        - torch.log(torch.clamp(minus_x * minus_x + minus_y * minus_y, min=POINT_MASS_MIN_RADIUS**2))
    )
    argument = torch.atan2(ratio_im, ratio_re)
    scale = theta_total * theta_total / (2 * half_length)
    return (
        scale * (cos_a * log_modulus + sin_a * argument),
        scale * (sin_a * log_modulus - cos_a * argument),
    )


def vortex_line_deflection(x, y, theta_total, angle, half_length, center_x, center_y, n_points: int):
    """The line-mass stand-in for the n_points vortex (vortex_model="line").

    The points at linspace(-L, L, n) are the midpoints of n equal cells spanning
    +-L n/(n-1), so the uniform line covers that extent; it then matches the points to ~1e-5 of
    the peak deflection 0.25" from the segment (tests/test_simulation_lenstronomy.py).
    """
    extent = half_length * (n_points / (n_points - 1)) if n_points > 1 else half_length
    return line_mass_deflection(x, y, theta_total, angle, extent, center_x, center_y)


def sersic_b_n(n_sersic):
    """lenstronomy's b(n) approximation (not the exact incomplete-gamma root)."""
    return torch.clamp(1.9992 * n_sersic - 0.3271, min=1e-5)


# lenstronomy 1.9.2 LightModel defaults (1.14 lowered the smoothing to 1e-4, raised the cut to 1000).
SERSIC_SMOOTHING = 1e-3
SERSIC_MAX_RADIUS_FRACTION = 100.0


def sersic_coefficients(amplitude, r_sersic, n_sersic, e1, e2, center_x, center_y) -> dict:
    """Per-image (B, 1) quantities of sersic_ellipse_from (computed once per batch)."""
    phi, q = ellipticity_to_angle_axis_ratio(e1, e2)
    sqrt_q = torch.sqrt(q)
    cos_phi, sin_phi = torch.cos(phi), torch.sin(phi)
    b_n = sersic_b_n(n_sersic)
    coefficients = dict(
        major_cos=cos_phi * sqrt_q, major_sin=sin_phi * sqrt_q, minor_cos=cos_phi / sqrt_q,
        minor_sin=-sin_phi / sqrt_q, r_sersic=r_sersic, inverse_n=1.0 / n_sersic, b_n=b_n,
        amplitude=amplitude, center_x=center_x, center_y=center_y)
    # sersic_ellipse_from's prescaled form (default smoothing): the ellipse axes divided by the
    # radius, so the per-pixel division by it is folded into these per-image numbers
    scale = 1.0 / torch.clamp(r_sersic, min=SERSIC_SMOOTHING)
    coefficients["prescaled"] = dict(
        major_cos=coefficients["major_cos"] * scale, major_sin=coefficients["major_sin"] * scale,
        minor_cos=coefficients["minor_cos"] * scale, minor_sin=coefficients["minor_sin"] * scale,
        floor=SERSIC_SMOOTHING * scale)
    return coefficients


def sersic_ellipse(x, y, amplitude, r_sersic, n_sersic, e1, e2, center_x, center_y,
                   smoothing: float = SERSIC_SMOOTHING, max_radius_fraction: float = SERSIC_MAX_RADIUS_FRACTION):
    """Elliptical Sersic surface brightness (lenstronomy 'SERSIC_ELLIPSE').

    amplitude is the surface brightness at r_sersic; r_sersic is the product-average
    (intermediate-axis) half-light radius.
    """
    n_sersic = torch.as_tensor(n_sersic, dtype=r_sersic.dtype, device=r_sersic.device)
    coefficients = sersic_coefficients(amplitude, r_sersic, n_sersic, e1, e2, center_x, center_y)
    return sersic_ellipse_from(x, y, coefficients, smoothing, max_radius_fraction)


def sersic_ellipse_from(x, y, c: dict, smoothing: float = SERSIC_SMOOTHING,
                        max_radius_fraction: float = SERSIC_MAX_RADIUS_FRACTION, source_offset=None):
    """sersic_ellipse from sersic_coefficients, in place on few temporaries.

    source_offset=(alpha_x, alpha_y): evaluate at (x - alpha_x, y - alpha_y), overwriting the
    deflections (the ray-traced source plane without another pair of temporaries).
    With the default smoothing the prescaled coefficients are used: the same profile with one
    pass fewer (the division by the radius), the same bytes when the radius is a power of two
    (the published 0.25") and a last-bit rounding difference otherwise.
    """
    if source_offset is None:
        dx, dy = x - c["center_x"], y - c["center_y"]
    else:
        dx = torch.sub(x, source_offset[0], out=source_offset[0]).sub_(c["center_x"])
        dy = torch.sub(y, source_offset[1], out=source_offset[1]).sub_(c["center_y"])
    if "prescaled" in c and smoothing == SERSIC_SMOOTHING:
        # the ellipse axes already divided by max(R, smoothing): max(r / R', smoothing / R')
        axes, floor, radius = c["prescaled"], c["prescaled"]["floor"], None
    else:
        axes, floor, radius = c, smoothing, torch.clamp(c["r_sersic"], min=smoothing)
    x_ell = (dx * axes["major_cos"]).addcmul_(dy, axes["major_sin"])
    y_ell = dy.mul_(axes["minor_cos"]).addcmul_(dx, axes["minor_sin"])
    # fraction = max(r, smoothing) / max(R, smoothing)
    fraction = torch.mul(x_ell, x_ell, out=dx).addcmul_(y_ell, y_ell).sqrt_().clamp_(min=floor)
    if radius is not None:
        fraction.div_(radius)
    outside = bool(fraction.max() > max_radius_fraction) if fraction.numel() else False
    mask = fraction > max_radius_fraction if outside else None
    if bool((c["inverse_n"] != 1).any()):
        scaled = torch.pow(fraction, c["inverse_n"])
    else:  # n = 1 (the published source): pow(f, 1) is f, skip the pass
        scaled = fraction
    # exp(b_n - b_n * scaled)
    brightness = scaled.mul_(-c["b_n"]).add_(c["b_n"]).exp_()
    amplitude = c["amplitude"]
    if not (isinstance(amplitude, float) and amplitude == 1.0):
        brightness = brightness.mul_(amplitude)
    if mask is not None:
        brightness.masked_fill_(mask, 0.0)
    return brightness


def sersic_total_flux(amplitude, r_sersic, n_sersic):
    """Total flux of a Sersic profile of product-average radius r_sersic (lenstronomy's formula)."""
    b_n = sersic_b_n(n_sersic)
    return (amplitude * r_sersic * r_sersic * 2 * torch.pi * n_sersic * torch.exp(b_n)
            / torch.pow(b_n, 2 * n_sersic) * torch.exp(torch.lgamma(2 * n_sersic)))
