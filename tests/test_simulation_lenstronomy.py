"""The simulator against lenstronomy (an independent implementation), in float64.

Deflections of every profile on random parameters must agree to 1e-6 arcsec, whole noiseless
images of every preset (same parameters, rendered by lenstronomy's ImageModel) to 1e-4 of the
peak. lenstronomy 1.14 differs from the 1.9.2 the published data used in a few defaults; they
are matched explicitly here: Sersic smoothing 1e-3 and cut at 100 R_sersic, PSF truncation 4
sigma, and Model II's Euclid zero point (24.0, passed through our amplitudes).
"""
import math

import numpy as np
import pytest
import torch

from lens_hf.simulation import get_preset, profiles, render, simulate

lenstronomy = pytest.importorskip("lenstronomy")
from lenstronomy.Data.imaging_data import ImageData  # noqa: E402
from lenstronomy.Data.psf import PSF  # noqa: E402
from lenstronomy.ImSim.image_model import ImageModel  # noqa: E402
from lenstronomy.LensModel.lens_model import LensModel  # noqa: E402
from lenstronomy.LightModel.light_model import LightModel  # noqa: E402

DEFLECTION_TOLERANCE = 1e-6  # arcsec
IMAGE_TOLERANCE = 1e-4  # of the image peak
SERSIC_1_9_2 = {"smoothing": 1e-3}


def _column(value):
    return torch.tensor([[value]], dtype=torch.float64)


@pytest.fixture(scope="module")
def sample_points():
    generator = np.random.default_rng(1)
    return generator.uniform(-4, 4, 3000), generator.uniform(-4, 4, 3000)


def _max_difference(ours, theirs):
    return max(np.abs(ours[0][0].numpy() - theirs[0]).max(), np.abs(ours[1][0].numpy() - theirs[1]).max())


@pytest.mark.parametrize("trial", range(8))
def test_sie_and_shear_deflections_match_lenstronomy(sample_points, trial):
    x, y = sample_points
    generator = np.random.default_rng(100 + trial)
    theta_e = generator.uniform(0.2, 2.5)
    e1, e2 = generator.uniform(-0.45, 0.45, 2)
    center_x, center_y = generator.uniform(-0.5, 0.5, 2)
    gamma1, gamma2 = generator.uniform(-0.1, 0.1, 2)
    X, Y = torch.tensor(x), torch.tensor(y)
    sie = profiles.sie_deflection(X, Y, _column(theta_e), _column(e1), _column(e2), _column(center_x),
                                  _column(center_y))
    reference = LensModel(["SIE"]).alpha(x, y, [dict(theta_E=theta_e, e1=e1, e2=e2, center_x=center_x,
                                                      center_y=center_y)])
    assert _max_difference(sie, reference) <= DEFLECTION_TOLERANCE
    shear = profiles.shear_deflection(X, Y, _column(gamma1), _column(gamma2))
    reference = LensModel(["SHEAR"]).alpha(x, y, [dict(gamma1=gamma1, gamma2=gamma2)])
    assert _max_difference(shear, reference) <= DEFLECTION_TOLERANCE


def test_nearly_round_sie_uses_the_series_and_still_matches(sample_points):
    x, y = sample_points
    X, Y = torch.tensor(x), torch.tensor(y)
    for e1 in (1e-9, 1e-6, 1e-4):
        ours = profiles.sie_deflection(X, Y, _column(1.0), _column(e1), _column(0.0), _column(0.0), _column(0.0))
        reference = LensModel(["SIE"]).alpha(x, y, [dict(theta_E=1.0, e1=e1, e2=0.0, center_x=0.0, center_y=0.0)])
        assert _max_difference(ours, reference) <= DEFLECTION_TOLERANCE


def test_point_masses_and_exact_vortex_match_lenstronomy(sample_points):
    x, y = sample_points
    X, Y = torch.tensor(x), torch.tensor(y)
    generator = np.random.default_rng(7)
    theta = generator.uniform(0.0, 0.1, 25)
    centers_x, centers_y = generator.uniform(-2, 2, 25), generator.uniform(-2, 2, 25)
    ours = profiles.point_mass_deflection(X, Y, torch.tensor(theta)[None], torch.tensor(centers_x)[None],
                                          torch.tensor(centers_y)[None])
    reference = LensModel(["POINT_MASS"] * 25).alpha(
        x, y, [dict(theta_E=t, center_x=cx, center_y=cy) for t, cx, cy in zip(theta, centers_x, centers_y)])
    assert _max_difference(ours, reference) <= DEFLECTION_TOLERANCE

    # the published vortex: 100 point masses on linspace(-L, L) rotated by the angle
    theta_total, angle, half_length = 0.221961, 1.1, 0.4
    ours = profiles.vortex_points_deflection(X, Y, _column(theta_total), _column(angle), _column(half_length),
                                             _column(0.0), _column(0.0), n_points=100)
    coords = np.linspace(-half_length, half_length, 100)
    kwargs = [dict(theta_E=theta_total / 10, center_x=c * math.cos(angle), center_y=c * math.sin(angle))
              for c in coords]
    reference = LensModel(["POINT_MASS"] * 100).alpha(x, y, kwargs)
    assert _max_difference(ours, reference) <= DEFLECTION_TOLERANCE


def test_point_masses_on_the_pixel_grid_match_lenstronomy():
    """The separable grid form the renderer uses: masses on a pixel centre (lenstronomy's 1e-8 floor),
    zero-mass padding (adds nothing) and a batch of two images."""
    axis = (torch.arange(40, dtype=torch.float64) - 19.5) * 0.1
    generator = np.random.default_rng(3)
    theta = generator.uniform(0.001, 0.1, (2, 6))
    centers_x, centers_y = generator.uniform(-2, 2, (2, 6)), generator.uniform(-2, 2, (2, 6))
    centers_x[0, 0], centers_y[0, 0] = axis[7].item(), axis[30].item()  # exactly on pixel (row 30, column 7)
    theta[1, 4:] = 0.0  # padding
    alpha_x, alpha_y = torch.zeros(2, 40, 40, dtype=torch.float64), torch.zeros(2, 40, 40, dtype=torch.float64)
    profiles.add_point_mass_deflection_on_grid(alpha_x, alpha_y, axis, axis, torch.tensor(theta),
                                               torch.tensor(centers_x), torch.tensor(centers_y))
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    for image in range(2):
        kwargs = [dict(theta_E=t, center_x=cx, center_y=cy)
                  for t, cx, cy in zip(theta[image], centers_x[image], centers_y[image]) if t > 0]
        reference = LensModel(["POINT_MASS"] * len(kwargs)).alpha(x.numpy().ravel(), y.numpy().ravel(), kwargs)
        assert np.abs(alpha_x[image].numpy().ravel() - reference[0]).max() <= DEFLECTION_TOLERANCE
        assert np.abs(alpha_y[image].numpy().ravel() - reference[1]).max() <= DEFLECTION_TOLERANCE
    assert torch.isfinite(alpha_x).all() and torch.isfinite(alpha_y).all()


@pytest.mark.parametrize("half_length", [0.03, 0.3, 3.0])  # the published range of L
def test_line_mass_vortex_matches_the_100_point_vortex_away_from_the_segment(half_length):
    grid = torch.linspace(-3.2, 3.2, 129, dtype=torch.float64)
    y, x = torch.meshgrid(grid, grid, indexing="ij")
    x, y = x.reshape(-1), y.reshape(-1)
    theta, angle, center_x, center_y = 0.221961, 0.7, 0.05, -0.02
    args = [_column(v) for v in (theta, angle, half_length, center_x, center_y)]
    line = [c[0] for c in profiles.vortex_line_deflection(x, y, *args, n_points=100)]
    points = [c[0] for c in profiles.vortex_points_deflection(x, y, *args, n_points=100)]
    along = (x - center_x) * math.cos(angle) + (y - center_y) * math.sin(angle)
    across = -(x - center_x) * math.sin(angle) + (y - center_y) * math.cos(angle)
    distance = torch.sqrt(torch.clamp(along.abs() - half_length, min=0) ** 2 + across**2)
    away = distance > 0.5
    tolerance = 1e-4 * theta  # 1e-4 of the vortex's Einstein radius, ~1e-5 of the peak deflection
    assert torch.hypot(line[0] - points[0], line[1] - points[1])[away].max() <= tolerance
    # the raw segment of half-length L (no cell correction) is measurably worse for long vortices
    raw = [c[0] for c in profiles.line_mass_deflection(x, y, *args)]
    if half_length >= 0.3:
        assert torch.hypot(raw[0] - points[0], raw[1] - points[1])[away].max() > tolerance


def test_line_mass_far_field_is_a_point_mass_of_the_same_total():
    x = torch.tensor([30.0, -25.0, 0.0, 12.0], dtype=torch.float64)
    y = torch.tensor([0.0, 10.0, -40.0, 19.0], dtype=torch.float64)
    args = [_column(v) for v in (0.3, 0.4, 0.5, 0.0, 0.0)]
    line = profiles.line_mass_deflection(x, y, *args)
    point = profiles.point_mass_deflection(x, y, args[0], args[3], args[4])
    assert torch.allclose(line[0], point[0], rtol=1e-3, atol=1e-6)
    assert torch.allclose(line[1], point[1], rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("trial", range(6))
def test_sersic_light_matches_lenstronomy(sample_points, trial):
    x, y = sample_points
    generator = np.random.default_rng(200 + trial)
    amp, radius, index = generator.uniform(1, 30), generator.uniform(0.05, 1.0), generator.uniform(0.5, 5)
    e1, e2 = generator.uniform(-0.45, 0.45, 2)
    center_x, center_y = generator.uniform(-0.5, 0.5, 2)
    ours = profiles.sersic_ellipse(torch.tensor(x), torch.tensor(y), _column(amp), _column(radius), _column(index),
                                   _column(e1), _column(e2), _column(center_x), _column(center_y))[0].numpy()
    reference = LightModel(["SERSIC_ELLIPSE"], profile_kwargs_list=[SERSIC_1_9_2]).surface_brightness(
        x, y, [dict(amp=amp, R_sersic=radius, n_sersic=index, e1=e1, e2=e2, center_x=center_x,
                    center_y=center_y, max_R_frac=100.0)])
    assert np.abs(ours - reference).max() <= 1e-12 * reference.max()
    total = profiles.sersic_total_flux(_column(amp), _column(radius), _column(index)).item()
    expected = LightModel(["SERSIC_ELLIPSE"]).total_flux(
        [dict(amp=amp, R_sersic=radius, n_sersic=index, e1=e1, e2=e2, center_x=0, center_y=0)])[0]
    assert total == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------------------------- whole images


def lenstronomy_image(preset, metadata, row, target=False):
    """Render one metadata row with lenstronomy's ImageModel (single lens plane)."""
    meta = {key: value[row] for key, value in metadata.items()}
    size, scale, supersampling = preset.grid(target)
    half = (size - 1) / 2 * scale
    data = ImageData(image_data=np.zeros((size, size)), ra_at_xy_0=-half, dec_at_xy_0=-half,
                     transform_pix2angle=np.diag([scale, scale]))
    lens_list = ["SIE", "SHEAR"]
    lens_kwargs = [
        dict(theta_E=float(meta["einstein_radius_arcsec"]), e1=float(meta["lens_e1"]), e2=float(meta["lens_e2"]),
             center_x=float(meta["lens_center_x"]), center_y=float(meta["lens_center_y"])),
        dict(gamma1=float(meta["shear_gamma1"]), gamma2=float(meta["shear_gamma2"])),
    ]
    for theta, cx, cy in zip(meta["subhalo_theta_e"].tolist(), meta["subhalo_x"].tolist(),
                             meta["subhalo_y"].tolist()):
        if theta > 0:
            lens_list.append("POINT_MASS")
            lens_kwargs.append(dict(theta_E=theta, center_x=cx, center_y=cy))
    if float(meta["vortex_theta_e"]) > 0:
        assert preset.vortex_model == "points"
        n = preset.vortex_points
        coords = np.linspace(-float(meta["vortex_half_length"]), float(meta["vortex_half_length"]), n)
        angle = float(meta["vortex_angle"])
        for c in coords:
            lens_list.append("POINT_MASS")
            lens_kwargs.append(dict(theta_E=float(meta["vortex_theta_e"]) / math.sqrt(n),
                                    center_x=float(meta["vortex_center_x"]) + c * math.cos(angle),
                                    center_y=float(meta["vortex_center_y"]) + c * math.sin(angle)))
    source_shape = dict(R_sersic=float(meta["source_r_sersic"]), n_sersic=float(meta["source_n_sersic"]),
                        e1=float(meta["source_e1"]), e2=float(meta["source_e2"]),
                        center_x=float(meta["source_center_x"]), center_y=float(meta["source_center_y"]),
                        max_R_frac=100.0)
    light_shape = dict(R_sersic=float(meta["lens_light_r_sersic"]), n_sersic=float(meta["lens_light_n_sersic"]),
                       e1=float(meta["lens_light_e1"]), e2=float(meta["lens_light_e2"]),
                       center_x=float(meta["lens_center_x"]), center_y=float(meta["lens_center_y"]),
                       max_R_frac=100.0)
    bands = []
    for band in range(len(preset.bands)):
        psf = PSF(psf_type="GAUSSIAN", fwhm=float(meta["psf_fwhm_arcsec"][band]), pixel_size=scale,
                  truncation=preset.psf_truncation)
        source = [dict(amp=float(meta["source_amplitude"][band]), **source_shape)]
        light = [dict(amp=float(meta["lens_light_amplitude"][band]), **light_shape)]
        lensed = float(meta["source_lensed"]) > 0.5
        model = ImageModel(data, psf, lens_model_class=LensModel(lens_list),
                           source_model_class=LightModel(["SERSIC_ELLIPSE"], profile_kwargs_list=[SERSIC_1_9_2]),
                           lens_light_model_class=LightModel(["SERSIC_ELLIPSE"] * (1 if lensed else 2),
                                                             profile_kwargs_list=[SERSIC_1_9_2] * (1 if lensed else 2)),
                           kwargs_numerics={"supersampling_factor": supersampling})
        if lensed:
            image = model.image(lens_kwargs, source, kwargs_lens_light=light)
        else:  # a non-lens: the background galaxy is seen directly
            image = model.image(lens_kwargs, [dict(source[0], amp=0.0)], kwargs_lens_light=light + source)
        bands.append(image * (2.0 if preset.double_model else 1.0))
    return np.stack(bands)


def _compare(preset, count, seed=3, target=False, **simulate_kwargs):
    result = simulate(preset, n=count, seed=seed, dtype=torch.float64, batch_size=2, **simulate_kwargs)
    ours = render(preset, result.metadata, dtype=torch.float64, noise=False, targets=target).numpy()
    for row in range(count):
        reference = lenstronomy_image(preset, result.metadata, row, target=target)
        scale = np.abs(reference).max()
        assert scale > 0
        assert np.abs(ours[row] - reference).max() <= IMAGE_TOLERANCE * scale, (preset.name, row)
    return result


def test_model_i_images_match_lenstronomy():
    result = _compare(get_preset("model_i"), 3)  # one axion, one cdm, one no_sub
    assert result.labels.tolist() == [0, 1, 2]


@pytest.mark.parametrize("name", ["model_ii", "model_iii"])
def test_model_ii_and_iii_images_match_lenstronomy_single_plane_with_rescaled_lens(name):
    preset = get_preset(name)
    result = _compare(preset, 3)
    # the single-plane equivalents of the Model II/III deflection rescaling (docs/simulation.md)
    assert float(result.metadata["einstein_radius_arcsec"][0]) == pytest.approx(0.8118, abs=1e-4)
    assert float(result.metadata["shear_gamma1"][0]) == pytest.approx(0.0317, abs=1e-4)
    cdm_theta = result.metadata["subhalo_theta_e"][1]
    cdm_mass = result.metadata["subhalo_mass_msun"][1]
    expected = 1.2814906 * torch.sqrt(cdm_mass / 1e12) * 0.7959007
    assert torch.allclose(cdm_theta, expected, rtol=1e-6)


def test_supersampled_images_match_lenstronomy_supersampling():
    _compare(get_preset("model_ii", supersampling=3, image_size=32), 3)


def test_optional_lens_light_matches_lenstronomy():
    result = _compare(get_preset("model_iii", image_size=40, lens_light_magnitude=19.0, lens_light_e1=0.2), 2)
    assert (result.metadata["lens_light_amplitude"] > 0).all()
    _compare(get_preset("model_i", image_size=40, noise=False, lens_light_amplitude=2.0, lens_light_n_sersic=2.5), 2)


def test_sr_pair_targets_and_lens_finding_bands_match_lenstronomy():
    preset = get_preset("sr_pairs", normalize="none", classes=("cdm",), image_size=40, hr_image_size=80,
                        hr_pixel_scale=0.05 * 40 / 80)
    _compare(preset, 2, target=True)
    _compare(preset, 2, target=False)
    lens_finding = get_preset("lens_finding", image_size=40, lens_fraction=0.5)
    result = _compare(lens_finding, 4)
    assert sorted(set(result.labels.tolist())) == [0, 1]


def test_pretrain_images_match_lenstronomy_with_points_vortex():
    preset = get_preset("pretrain", vortex_model="points", image_size=48)
    result = _compare(preset, 6, seed=11)
    assert set(result.metadata["substructure_type"].tolist()) == {0.0, 1.0, 2.0}


def test_published_model_ii_source_brightness_uses_the_1_9_euclid_zero_point():
    """Model II's amplitude is lenstronomy's magnitude2amplitude with ZP 24.0 (not 1.14.1's 25.72)."""
    from lenstronomy.SimulationAPI.sim_api import SimAPI

    preset = get_preset("model_ii")
    metadata = simulate(preset, n=1, seed=0).metadata
    band = {"read_noise": 4.2, "pixel_scale": 0.101, "ccd_gain": 3.1, "exposure_time": 565.0, "sky_brightness": 22.35,
            "magnitude_zero_point": 24.0, "num_exposures": 4, "seeing": 0.16, "psf_type": "GAUSSIAN"}
    sim = SimAPI(num_pix=64, kwargs_single_band=band, kwargs_model={"source_light_model_list": ["SERSIC_ELLIPSE"]})
    _, kwargs_source, _ = sim.magnitude2amplitude(None, [dict(magnitude=20.0, R_sersic=0.25, n_sersic=1, e1=-0.1,
                                                              e2=0.1, center_x=0, center_y=0)])
    assert float(metadata["source_amplitude"][0, 0]) == pytest.approx(kwargs_source[0]["amp"], rel=1e-9)
    # and the background sigma of the optional instrument noise is lenstronomy's
    sigma = preset.band_background_sigma(torch.tensor([565.0 * 4], dtype=torch.float64))
    assert float(sigma[0, 0]) == pytest.approx(sim.background_noise, rel=1e-9)
