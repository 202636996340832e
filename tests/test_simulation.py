"""The simulator: presets, published physics, reproducibility, metadata, noise statistics and errors.

(Agreement with lenstronomy: tests/test_simulation_lenstronomy.py; random numbers and the
Poisson sampler: tests/test_simulation_rng.py; the dataset and the script: their own files.)
"""
import dataclasses
import math

import numpy as np
import pytest
import torch

from lens_hf.simulation import (PRESETS, SUBSTRUCTURE_CLASSES, PresetError, get_preset, render, simulate,
                                validate_metadata)
from lens_hf.simulation.cosmology import convention_deflection_scale, einstein_radius_per_sqrt_mass

# Small versions of every preset, for the fast tests.
SMALL = {
    "model_i": dict(image_size=40, pixel_scale=0.1),
    "model_ii": dict(image_size=32),
    "model_iii": dict(image_size=32),
    "sr_pairs": dict(image_size=24, hr_image_size=48, hr_pixel_scale=0.025),
    "lens_finding": dict(image_size=32, lens_fraction=0.5),
    "pretrain": dict(image_size=32),
}


def small(name, **overrides):
    return get_preset(name, **{**SMALL[name], **overrides})


# ----------------------------------------------------------------------------- presets


def test_presets_are_overridable_dataclasses_with_the_documented_classes():
    assert sorted(PRESETS) == ["lens_finding", "model_i", "model_ii", "model_iii", "pretrain", "sr_pairs"]
    for name, preset_class in PRESETS.items():
        preset = get_preset(name)
        assert isinstance(preset, preset_class) and dataclasses.is_dataclass(preset)
        assert preset.name == name
    assert get_preset("model_ii").class_names == SUBSTRUCTURE_CLASSES == ("axion", "cdm", "no_sub")
    assert get_preset("lens_finding").class_names == ("nonlens", "lens")
    assert get_preset("pretrain").class_names is None
    preset = get_preset("model_ii", image_size=48, noise=True, psf_fwhm=0.2)
    assert (preset.image_size, preset.noise, preset.psf_fwhm) == (48, True, (0.2,))  # scalar -> per band
    assert dataclasses.replace(preset, image_size=16).image_size == 16


def test_published_einstein_radii_and_the_model_ii_rescaling():
    assert einstein_radius_per_sqrt_mass(0.5, 1.0) * 1e6 == pytest.approx(1.2815, abs=1e-4)  # luminosity quirk
    assert einstein_radius_per_sqrt_mass(0.5, 1.0, distances="angular") * 1e6 == pytest.approx(1.6645, abs=1e-3)
    assert convention_deflection_scale(0.5, 1.0, 2.5) == pytest.approx(0.63346, abs=1e-5)
    model_i = simulate(small("model_i"), n=3, seed=0).metadata
    model_ii = simulate(small("model_ii"), n=3, seed=0).metadata
    assert torch.allclose(model_i["einstein_radius_arcsec"], torch.tensor(1.2815, dtype=torch.float64), atol=1e-4)
    assert torch.allclose(model_ii["einstein_radius_arcsec"], torch.tensor(0.8118, dtype=torch.float64), atol=1e-4)
    assert float(model_i["shear_gamma1"][0]) == 0.05 and float(model_ii["shear_gamma1"][0]) == pytest.approx(0.0317, abs=1e-4)
    assert model_ii["pixel_scale_arcsec"].tolist() == [0.101] * 3


def test_substructure_classes_follow_the_published_recipe():
    preset = small("model_i", noise=False)
    result = simulate(preset, n=300, seed=4)
    meta, labels = result.metadata, result.labels
    assert labels.dtype == torch.long and result.class_names == ["axion", "cdm", "no_sub"]
    axion, cdm, no_sub = (labels == 0), (labels == 1), (labels == 2)
    assert axion.sum() == cdm.sum() == no_sub.sum() == 100  # balanced, label = index % 3
    # cdm: exactly 25 point masses, theta_E = 1.2815" sqrt(m / 1e12), r in [0.25, 2], m in [1e6, 1e10]
    theta, mass = meta["subhalo_theta_e"][cdm], meta["subhalo_mass_msun"][cdm]
    assert ((theta > 0).sum(dim=1) == 25).all()
    assert torch.allclose(theta, 1.2814906e-6 * torch.sqrt(mass), rtol=1e-6)
    radius = torch.hypot(meta["subhalo_x"][cdm], meta["subhalo_y"][cdm])
    assert radius.min() >= 0.25 and radius.max() <= 2.0
    assert mass.min() >= 1e6 and mass.max() <= 1e10
    # dN/dm ~ m^-0.9: the fraction below 1e8 Msun is (1e8^0.1 - 1e6^0.1) / (1e10^0.1 - 1e6^0.1)
    expected = (1e8**0.1 - 1e6**0.1) / (1e10**0.1 - 1e6**0.1)
    assert float((mass < 1e8).double().mean()) == pytest.approx(expected, abs=0.02)
    assert (meta["subhalo_theta_e"][~cdm] == 0).all()
    # axion: a vortex of total theta_E 1.2815" sqrt(3e10/1e12), L = 0.03" 1e-22 / m, log10 m ~ U(-24, -22)
    log10_m = meta["log10_m_axion"]
    assert torch.isnan(log10_m[~axion]).all()
    assert log10_m[axion].min() >= -24 and log10_m[axion].max() <= -22
    assert torch.allclose(meta["vortex_half_length"][axion], 0.03 * 10 ** (-22 - log10_m[axion]))
    assert torch.allclose(meta["vortex_theta_e"][axion] / 10, torch.tensor(0.0221961, dtype=torch.float64), atol=1e-6)
    assert (meta["vortex_theta_e"][~axion] == 0).all()
    # the source centre ~ U(-0.35, 0.35) per axis
    assert meta["source_center_x"].abs().max() <= 0.35 and meta["source_center_y"].abs().max() <= 0.35
    assert meta["source_center_x"].std() == pytest.approx(0.7 / math.sqrt(12), rel=0.15)


def test_model_i_counts_are_integers_with_about_44_percent_zeros():
    result = simulate(get_preset("model_i"), n=12, seed=0)
    images, exposure = result.images, result.metadata["exposure_time"]
    assert torch.equal(images, torch.round(images)) and images.min() >= 0
    assert 0.40 <= float((images == 0).double().mean()) <= 0.48
    assert exposure.min() >= 10**3 and exposure.max() <= 10**3.5


def test_models_ii_and_iii_are_twice_the_noiseless_model_unless_noise_is_asked_for():
    for name in ("model_ii", "model_iii"):
        published = small(name)
        single = small(name, double_model=False)
        result = simulate(published, n=3, seed=2)
        assert torch.equal(result.images, 2 * render(single, result.metadata))
        noisy = small(name, noise=True)
        noisy_images = simulate(noisy, n=3, seed=2).images
        assert not torch.equal(noisy_images, result.images)
        assert torch.equal(render(noisy, result.metadata, noise=False), result.images)


def test_adu_counts_divide_rates_and_noise_by_the_gain():
    electrons = small("model_ii", noise=True)
    adu = small("model_ii", noise=True, count_unit="ADU")
    meta_e, meta_adu = simulate(electrons, n=2, seed=0).metadata, simulate(adu, n=2, seed=0).metadata
    assert torch.allclose(meta_adu["source_amplitude"], meta_e["source_amplitude"] / 3.1)
    t = torch.tensor([2260.0], dtype=torch.float64)
    assert torch.allclose(adu.band_background_sigma(t), electrons.band_background_sigma(t) / 3.1)


def test_progress_bar_does_not_change_the_images(capsys):
    preset = small("model_ii")
    assert torch.equal(simulate(preset, n=4, seed=0, progress=True, batch_size=2).images,
                       simulate(preset, n=4, seed=0).images)
    assert "simulate model_ii" in capsys.readouterr().err


def test_class_subsets_and_weights():
    only_cdm = simulate(small("model_ii", classes=("cdm",)), n=5, seed=0)
    assert only_cdm.labels.tolist() == [1] * 5  # still indexes the full class list
    assert only_cdm.class_names == ["axion", "cdm", "no_sub"]
    lenses = simulate(get_preset("lens_finding", image_size=16, lens_fraction=0.1), n=1000, seed=0).labels
    assert lenses.sum() == pytest.approx(100, abs=3)  # Weyl schedule: within O(log n) of the share
    weighted = get_preset("model_ii", class_weights=(2.0, 1.0, 1.0))
    labels = weighted.labels_for(torch.arange(4000))
    assert torch.bincount(labels).tolist() == pytest.approx([2000, 1000, 1000], abs=10)


def test_sr_pairs_are_the_same_system_at_two_resolutions_in_unit_range():
    preset = small("sr_pairs")
    result = simulate(preset, n=4, seed=1)
    assert result.images.shape == (4, 1, 24, 24) and result.targets.shape == (4, 1, 48, 48)
    for images in (result.images, result.targets):
        flat = images.flatten(1)
        assert torch.allclose(flat.min(1).values, torch.zeros(4)) and torch.allclose(flat.max(1).values, torch.ones(4))
    assert torch.equal(render(preset, result.metadata, targets=True), result.targets)
    # the HR image, averaged 2x2, is the noiseless LR image (same sky, same PSF in arcsec)
    raw = dataclasses.replace(preset, normalize="none", noise=False)
    no_psf = {**result.metadata, "psf_fwhm_arcsec": torch.zeros_like(result.metadata["psf_fwhm_arcsec"])}
    lr = render(raw, no_psf, dtype=torch.float64)
    hr = render(raw, no_psf, targets=True, dtype=torch.float64)
    pooled = torch.nn.functional.avg_pool2d(hr, 2) * 4  # flux per LR pixel
    supersampled = render(dataclasses.replace(raw, supersampling=2), no_psf, dtype=torch.float64)
    assert torch.allclose(pooled, supersampled, rtol=1e-9, atol=1e-12)
    assert torch.allclose(lr, supersampled, rtol=0.2, atol=1e-3 * float(lr.max()))


def test_lens_finding_has_three_bands_lens_light_and_unlensed_non_lenses():
    preset = small("lens_finding")
    result = simulate(preset, n=8, seed=0)
    assert result.images.shape == (8, 3, 32, 32)
    meta = result.metadata
    assert (meta["lens_light_amplitude"] > 0).all()
    lensed = result.labels == 1
    assert torch.equal(meta["source_lensed"].bool(), lensed)
    assert (meta["einstein_radius_arcsec"][~lensed] == 0).all() and (meta["einstein_radius_arcsec"][lensed] > 0).all()


def test_pretrain_scenes_randomise_every_parameter():
    result = simulate(small("pretrain"), n=60, seed=0)
    assert result.labels is None and result.class_names is None and result.targets is None
    meta = result.metadata
    for key in ("einstein_radius_arcsec", "lens_e1", "shear_gamma1", "source_r_sersic", "source_n_sersic",
                "exposure_time"):
        assert meta[key].std() > 0, key
    assert meta["psf_fwhm_arcsec"].std() > 0
    assert set(meta["substructure_type"].tolist()) == {0.0, 1.0, 2.0}
    counts = (meta["subhalo_theta_e"] > 0).sum(1)[meta["substructure_type"] == 1]
    assert counts.min() >= 1 and counts.max() <= 25 and counts.unique().numel() > 3


# ----------------------------------------------------------------------------- reproducibility


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_same_seed_same_bytes_for_any_batch_size_and_start(name):
    preset = small(name)
    ten_at_once = simulate(preset, n=10, seed=7, batch_size=10)
    in_threes = simulate(preset, n=10, seed=7, batch_size=3)
    longer = simulate(preset, n=20, seed=7, batch_size=8)
    tail = simulate(preset, n=5, seed=7, start=5, batch_size=2)
    assert torch.equal(ten_at_once.images, in_threes.images)
    assert torch.equal(ten_at_once.images, longer.images[:10])
    assert torch.equal(ten_at_once.images[5:], tail.images)
    for key, values in ten_at_once.metadata.items():
        assert torch.equal(values, in_threes.metadata[key]) or torch.allclose(values, in_threes.metadata[key],
                                                                               equal_nan=True), key
    if preset.has_targets:
        assert torch.equal(ten_at_once.targets, in_threes.targets)
    different = simulate(preset, n=10, seed=8, batch_size=10)
    assert not torch.equal(ten_at_once.images, different.images)


def test_two_intra_op_threads_give_the_same_bytes():
    """Work split across threads (elementwise kernels above torch's grain size) changes no value."""
    preset = get_preset("model_i", image_size=100, classes=("cdm",))  # 5 images: above the grain size
    one_thread = simulate(preset, n=5, seed=4, batch_size=5).images
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert torch.equal(simulate(preset, n=5, seed=4, batch_size=5).images, one_thread)
        assert torch.equal(simulate(preset, n=5, seed=4, batch_size=3).images, one_thread)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_render_from_metadata_gives_back_the_same_images(name):
    preset = small(name)
    result = simulate(preset, n=6, seed=3, batch_size=4)
    assert torch.equal(render(preset, result.metadata, batch_size=5), result.images)
    # any subset of rows, in any order
    rows = torch.tensor([4, 1])
    subset = {key: value[rows] for key, value in result.metadata.items()}
    assert torch.equal(render(preset, subset), result.images[rows])


def test_neighbouring_seeds_share_no_images():
    """Keys hash (seed, index): seed s image i+1 is not seed s+1 image i (as seed + index would give)."""
    preset = small("model_ii")
    first, second = simulate(preset, n=6, seed=0), simulate(preset, n=6, seed=1)
    for i in range(3, 6):  # same class (index % 3) at i and i - 3
        assert not torch.equal(first.images[i], second.images[i - 3])
    assert not torch.equal(first.metadata["source_center_x"][1:], second.metadata["source_center_x"][:-1])


def test_float64_and_float32_agree():
    preset = small("model_ii")
    single = simulate(preset, n=4, seed=0).images.double()
    double = simulate(preset, n=4, seed=0, dtype=torch.float64).images
    assert double.dtype == torch.float64
    assert torch.allclose(single, double, rtol=1e-4, atol=1e-6 * float(double.abs().max()))


def test_result_and_metadata_contract():
    preset = small("model_iii")
    result = simulate(preset, n=5, seed=0)
    assert result.images.dtype == torch.float32 and result.images.device.type == "cpu"
    assert result.images.shape == (5, 1, 32, 32) and len(result) == 5
    meta = result.metadata
    for key in ("source_center_x", "source_center_y", "einstein_radius_arcsec", "vortex_angle", "vortex_half_length",
                "log10_m_axion", "exposure_time", "pixel_scale_arcsec", "index", "seed", "label"):
        assert meta[key].shape == (5,), key
    assert meta["subhalo_x"].shape == (5, preset.max_subhalos)
    assert meta["source_amplitude"].shape == (5, 1)
    assert meta["index"].tolist() == [0, 1, 2, 3, 4] and meta["seed"].tolist() == [0] * 5
    assert validate_metadata(preset, meta) == 5
    empty = simulate(preset, n=0, seed=0)
    assert empty.images.shape == (0, 1, 32, 32) and empty.labels.shape == (0,)


def test_line_mass_vortex_is_close_to_the_published_points():
    points = small("model_ii", classes=("axion",))
    line = small("model_ii", classes=("axion",), vortex_model="line")
    result = simulate(points, n=4, seed=5, dtype=torch.float64)
    exact = result.images
    fast = render(line, result.metadata, dtype=torch.float64)
    assert (fast - exact).abs().max() <= 2e-3 * exact.abs().max()


def test_supersampling_converges():
    coarse = simulate(small("model_ii", supersampling=1), n=2, seed=0, dtype=torch.float64)
    fine = render(small("model_ii", supersampling=4), coarse.metadata, dtype=torch.float64)
    finer = render(small("model_ii", supersampling=6), coarse.metadata, dtype=torch.float64)
    assert (finer - fine).abs().max() < (fine - coarse.images).abs().max()


def test_psf_is_scipys_truncated_gaussian_filter():
    """The symmetric separable blur equals scipy.ndimage.gaussian_filter(mode='nearest', truncate=4),
    with a different width per image (radius 3 and 2 share one set of taps)."""
    from scipy.ndimage import gaussian_filter

    from lens_hf.simulation.optics import FWHM_PER_SIGMA, gaussian_blur, gaussian_kernel_1d

    images = torch.rand(2, 1, 21, 17, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    fwhm = torch.tensor([[0.087], [0.06]], dtype=torch.float64)
    blurred = gaussian_blur(images, gaussian_kernel_1d(fwhm, 0.05, 4.0))
    for image in range(2):
        sigma = float(fwhm[image, 0]) / FWHM_PER_SIGMA / 0.05
        reference = gaussian_filter(images[image, 0].numpy(), sigma, mode="nearest", truncate=4.0)
        assert np.abs(blurred[image, 0].numpy() - reference).max() < 1e-14


# ----------------------------------------------------------------------------- noise statistics


def _clipped_normal_moments(mean, sigma):
    """E[Y], E[Y^2] of Y = max(X, 0), X ~ N(mean, sigma^2)."""
    from scipy.stats import norm

    z = mean / sigma
    first = mean * norm.cdf(z) + sigma * norm.pdf(z)
    second = (mean**2 + sigma**2) * norm.cdf(z) + mean * sigma * norm.pdf(z)
    return first, second


def _repeat_row(metadata, row, draws):
    repeated = {key: value[row : row + 1].repeat_interleave(draws, 0) for key, value in metadata.items()}
    repeated["seed"] = torch.arange(draws, dtype=torch.int64)  # new noise keys, same scene
    return repeated


def _model_i_noise_check(draws, image_size, per_pixel_variance):
    preset = get_preset("model_i", image_size=image_size, pixel_scale=1.8 / image_size, classes=("cdm",))
    scene = simulate(preset, n=1, seed=0).metadata
    model = render(preset, scene, noise=False, dtype=torch.float64)[0, 0].numpy()
    counts = render(preset, _repeat_row(scene, 0, draws), batch_size=4096)[:, 0].double().numpy()
    t = float(scene["exposure_time"][0])
    # the published recipe: Poisson(clip(t m + sqrt(t |m|) N1 + t rms N2, 0))
    first, second = _clipped_normal_moments(t * model, np.sqrt(t * np.abs(model) + (t * preset.background_rms) ** 2))
    expected_mean, expected_variance = first, first + second - first**2
    mean, variance = counts.mean(0), counts.var(0)
    bright = expected_mean >= 5
    assert bright.sum() >= 0.5 * bright.size
    assert np.abs(mean[bright] / expected_mean[bright] - 1).max() <= 0.02
    if per_pixel_variance:
        assert np.abs(variance[bright] / expected_variance[bright] - 1).max() <= 0.02
    else:
        assert abs(variance[bright].sum() / expected_variance[bright].sum() - 1) <= 0.02


def test_model_i_noise_mean_and_variance():
    _model_i_noise_check(draws=30000, image_size=10, per_pixel_variance=False)


@pytest.mark.slow
def test_model_i_noise_mean_and_variance_per_pixel():
    _model_i_noise_check(draws=300000, image_size=12, per_pixel_variance=True)


def test_instrument_noise_mean_and_variance():
    preset = get_preset("model_iii", image_size=12, pixel_scale=0.15, noise=True)
    scene = simulate(preset, n=1, seed=1).metadata
    image = render(preset, scene, noise=False, dtype=torch.float64)[0, 0].numpy()
    draws = render(preset, _repeat_row(scene, 0, 20000), batch_size=4096, dtype=torch.float64)[:, 0].numpy()
    total_time = preset.exposure_time * preset.num_exposures
    sigma = float(preset.band_background_sigma(torch.tensor([total_time], dtype=torch.float64))[0, 0])
    expected_variance = sigma**2 + np.clip(image, 0, None) / total_time
    standard_error = np.sqrt(expected_variance / draws.shape[0])
    assert (np.abs(draws.mean(0) - image) <= 5 * standard_error).all()
    assert abs(draws.var(0).sum() / expected_variance.sum() - 1) <= 0.02
    assert np.abs(draws.var(0) / expected_variance - 1).max() <= 0.06


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "name, overrides, field_name",
    [
        ("model_ii", {"image_size": 0}, "image_size"),
        ("model_ii", {"pixel_scale": -0.1}, "pixel_scale"),
        ("model_ii", {"supersampling": 0}, "supersampling"),
        ("model_ii", {"lens_mass": -1e12}, "lens_mass"),
        ("model_ii", {"cdm_mass_range": (-1.0, 1e10)}, "cdm_mass_range"),
        ("model_ii", {"vortex_mass": 0.0}, "vortex_mass"),
        ("model_ii", {"lens_e1": 1.2}, "lens_e1/lens_e2"),
        ("model_ii", {"source_e1": 0.8, "source_e2": 0.8}, "source_e1/source_e2"),
        ("pretrain", {"lens_axis_ratio_range": (0.5, 1.3)}, "lens_axis_ratio_range"),
        ("pretrain", {"source_axis_ratio_range": (0.0, 1.0)}, "source_axis_ratio_range"),
        ("model_ii", {"psf_fwhm": float("nan")}, "psf_fwhm"),
        ("model_ii", {"z_source": float("inf")}, "z_source"),
        ("model_ii", {"z_source": 0.3}, "z_source"),
        ("model_ii", {"classes": ("wimp",)}, "classes"),
        ("model_ii", {"classes": ("cdm",), "class_weights": (1.0, 2.0)}, "class_weights"),
        ("lens_finding", {"zero_point": (24.0, 24.0)}, "zero_point"),
        ("lens_finding", {"lens_fraction": 1.5}, "lens_fraction"),
        ("model_ii", {"noise_model": "gaussian"}, "noise_model"),
        ("model_ii", {"source_magnitude": None}, "source_amplitude"),
        ("pretrain", {"classes": ("cdm",)}, "classes"),
        ("model_i", {"exposure_time_log10_range": None}, "exposure_time_log10_range"),
        ("model_ii", {"lens_light_magnitude": 19.0, "lens_light_amplitude": 1.0}, "lens_light_amplitude"),
        ("model_ii", {"lens_light_r_sersic": 0.0}, "lens_light_r_sersic"),
    ],
)
def test_bad_preset_fields_raise_errors_naming_the_field(name, overrides, field_name):
    with pytest.raises(PresetError, match=f"\\.{field_name}"):
        get_preset(name, **overrides)


def test_unknown_presets_and_fields_are_named():
    with pytest.raises(KeyError, match="model_iv.*available"):
        get_preset("model_iv")
    with pytest.raises(TypeError, match="imagesize"):
        get_preset("model_ii", imagesize=64)


def test_bad_simulate_and_render_arguments():
    preset = small("model_ii")
    for kwargs, error in (({"n": -1}, ValueError), ({"n": 2, "batch_size": 0}, ValueError),
                          ({"n": 2, "seed": "a"}, TypeError), ({"n": 2, "seed": 2**63}, ValueError),
                          ({"n": 2, "dtype": torch.float16}, TypeError)):
        with pytest.raises(error):
            simulate(preset, **kwargs)
    with pytest.raises(TypeError, match="preset"):
        simulate("model_ii", n=1)
    preset.image_size = -5  # mutated after construction: caught when used
    with pytest.raises(PresetError, match="image_size"):
        simulate(preset, n=1)


@pytest.mark.parametrize(
    "key, corrupt, message",
    [
        ("einstein_radius_arcsec", lambda v: v * float("nan"), "non-finite"),
        ("subhalo_theta_e", lambda v: v - 1.0, "must be >= 0"),
        ("vortex_half_length", lambda v: v - 10.0, "must be >= 0"),
        ("source_amplitude", lambda v: v[:, :0], "expected shape"),
        ("lens_e1", lambda v: v + 2.0, "axis ratio"),
        ("exposure_time", lambda v: v[:1], "expected shape"),
    ],
)
def test_bad_metadata_is_rejected_with_the_key_named(key, corrupt, message):
    preset = small("model_ii")
    metadata = dict(simulate(preset, n=3, seed=0).metadata)
    metadata[key] = corrupt(metadata[key])
    with pytest.raises(ValueError, match=f"{key}.*{message}|{message}.*{key}"):
        render(preset, metadata)


def test_missing_metadata_and_targets_of_a_preset_without_them():
    preset = small("model_ii")
    metadata = dict(simulate(preset, n=2, seed=0).metadata)
    with pytest.raises(ValueError, match="no target images"):
        render(preset, metadata, targets=True)
    del metadata["source_center_x"]
    with pytest.raises(ValueError, match="missing.*source_center_x"):
        render(preset, metadata)
