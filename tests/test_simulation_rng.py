"""Counter-based random numbers and the keyed exact Poisson sampler of the simulator."""
import numpy as np
import pytest
import torch

from lens_hf.simulation import poisson, rng

stats = pytest.importorskip("scipy.stats")


def _lowbias32_reference(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.uint32)
    values ^= values >> np.uint32(16)
    values *= np.uint32(0x7FEB352D)
    values ^= values >> np.uint32(15)
    values *= np.uint32(0x846CA68B)
    values ^= values >> np.uint32(16)
    return values


def test_int32_hash_wraps_like_uint32_arithmetic():
    values = torch.arange(-70000, 70003, dtype=torch.int32)  # odd length: scalar tails too
    ours = rng.mix32(values).numpy().view(np.uint32)
    assert np.array_equal(ours, _lowbias32_reference(values.numpy().view(np.uint32)))


def test_image_keys_depend_on_seed_and_index_only():
    indices = torch.arange(1000)
    keys = rng.image_keys(0, indices)
    assert keys.unique().numel() == 1000
    assert torch.equal(keys[500:], rng.image_keys(0, indices[500:]))
    assert torch.equal(rng.image_keys(torch.zeros(1000, dtype=torch.int64), indices), keys)
    shifted = rng.image_keys(1, indices)
    assert not bool(torch.isin(shifted, keys).any())  # no shared images between neighbouring seeds
    with pytest.raises(TypeError, match="seed"):
        rng.image_keys(1.5, indices)


def test_uniforms_are_open_interval_and_uniform():
    keys = rng.image_keys(3, torch.arange(2000))
    for dtype in (torch.float32, torch.float64):
        values = rng.uniform(keys, "test", 50, dtype).flatten()
        assert values.min() > 0 and values.max() < 1
        assert stats.kstest(values.double().numpy(), "uniform").pvalue > 1e-3
    assert not torch.equal(rng.uniform(keys, "a", 4), rng.uniform(keys, "b", 4))


def test_normals_are_standard_normal():
    values = rng.normal(rng.image_keys(0, torch.arange(500)), "n", 128).double().flatten().numpy()
    assert abs(values.mean()) < 0.01 and abs(values.std() - 1) < 0.01
    assert stats.kstest(values, "norm").pvalue > 1e-3
    with pytest.raises(ValueError, match="padded"):
        rng.normal(rng.image_keys(0, torch.arange(2)), "n", 100)


@pytest.mark.parametrize("mean", [0.05, 0.7, 4.2, 9.999, 37.5, 63.99, 64.0, 64.01, 200.0, 2500.0])
def test_poisson_counts_follow_the_poisson_distribution(mean):
    """Both samplers (table inversion up to 64, PTRS above) against the exact pmf (chi-square)."""
    rows = 800
    counts = poisson.poisson(torch.full((rows, 256), mean), rng.image_keys(5, torch.arange(rows)), "p")
    counts = counts.flatten().double().numpy()
    assert np.array_equal(counts, np.round(counts)) and counts.min() >= 0
    low, high = int(stats.poisson.ppf(1e-4, mean)), int(stats.poisson.ppf(1 - 1e-4, mean))
    edges = np.arange(low, high + 2) - 0.5
    observed, _ = np.histogram(counts, bins=edges)
    expected = np.diff(stats.poisson.cdf(edges, mean)) * counts.size
    keep = expected > 20
    chi_square = ((observed[keep] - expected[keep]) ** 2 / expected[keep]).sum()
    assert stats.chi2.sf(chi_square, keep.sum() - 1) > 1e-4
    assert counts.mean() == pytest.approx(mean, rel=0.01, abs=0.003)


def test_poisson_draws_do_not_depend_on_the_batch_they_are_in():
    rates = torch.rand(9, 640, dtype=torch.float64) * torch.logspace(-2, 3, 640, dtype=torch.float64)
    rates[:, ::7] = 0
    keys = rng.image_keys(11, torch.arange(100, 109))
    together = poisson.poisson(rates, keys, "c")
    apart = torch.cat([poisson.poisson(rates[i : i + 2], keys[i : i + 2], "c") for i in range(0, 9, 2)])
    assert torch.equal(together, apart)
    assert (together[:, ::7] == 0).all()


def test_poisson_rejects_bad_rates():
    keys = rng.image_keys(0, torch.arange(2))
    with pytest.raises(ValueError, match="finite"):
        poisson.poisson(torch.full((2, 64), float("nan")), keys, "c")
    with pytest.raises(ValueError, match=">= 0"):
        poisson.poisson(torch.full((2, 64), -1.0), keys, "c")
    with pytest.raises(ValueError, match="padded"):
        poisson.poisson(torch.ones(2, 10), keys, "c")


def test_log_factorial_matches_lgamma():
    k = torch.arange(0, 200000, dtype=torch.float64)
    assert torch.allclose(poisson._log_factorial(k), torch.lgamma(k + 1), rtol=1e-13, atol=1e-12)


def _table_counts(rates: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """The inversion-table sampler alone: look-ups, and the exact evaluation for undecided cells."""
    table = poisson._inversion_table("cpu")
    looked_up = table.look_up(rates, keys)
    counts = looked_up.to(torch.float64)
    undecided = torch.nonzero(looked_up < 0).squeeze(1)
    gather = poisson._pad_to_alignment(undecided)
    counts[undecided] = table.resolve(rates.double()[gather], keys[gather], looked_up[gather])[: undecided.numel()]
    return counts


def test_poisson_table_is_the_exact_inverse_cdf():
    """count = #{k : P(X <= k) <= u} for the pixel's u, checked against scipy's Poisson quantile."""
    generator = torch.Generator().manual_seed(0)
    rates = torch.rand(300_000, generator=generator, dtype=torch.float64) * 64
    bins = poisson._TABLE_BINS_PER_UNIT
    rates[: 64 * bins + 1] = torch.arange(64 * bins + 1, dtype=torch.float64) / bins  # every bin edge, 0 and 64
    rates = rates.float()  # the simulator's rates are image values
    keys = torch.randint(-(2**31), 2**31 - 1, rates.shape, generator=generator, dtype=torch.int32)
    keys[:4] = torch.tensor([-(2**31), -(2**31) + 1, 2**31 - 2, 2**31 - 1], dtype=torch.int32)  # extreme u
    counts = _table_counts(rates, keys)
    u = (keys.double() + 2**31 + 0.5) * 2.0**-32
    # ppf(u) = min{k : F(k) >= u}; equal to ours unless some F(k) == u exactly
    expected = stats.poisson.ppf(u.numpy(), rates.double().numpy())
    undecided = (poisson._inversion_table("cpu").look_up(rates, keys) < 0).double().mean()
    assert 0.01 < undecided < 0.2  # both paths are exercised
    assert np.array_equal(counts.numpy(), expected)


def test_poisson_table_cdf_is_accurate():
    table = poisson.poisson_cdf_table(64, 4, 200)
    means = np.arange(64 * 4 + 1) / 4
    reference = stats.poisson.cdf(np.arange(200)[None, :], means[:, None])
    assert np.abs(table.numpy() - reference).max() < 1e-13


def test_poisson_means_above_the_table_use_ptrs_with_their_own_uniforms():
    keys = rng.image_keys(2, torch.arange(4))
    rates = torch.full((4, 64), 64.0)
    rates[:, 32:] = 64.5
    table = poisson._inversion_table("cpu")
    stream = rng.StreamKeys(keys, "s")
    pixel_keys = rng.mix32(rng.mix32(torch.arange(64, dtype=torch.int32) * rng._signed(rng._GOLDEN32, 32)
                                     + stream.low[:, None]) ^ stream.high[:, None])
    looked_up = table.look_up(rates.reshape(-1), pixel_keys.reshape(-1)).view(4, 64)
    assert (looked_up[:, 32:] == -128).all() and (looked_up[:, :32] > -128).all()
    counts = poisson.poisson(rates, keys, "s")
    beyond = poisson._ptrs_sampler(rates[:, 32:].reshape(-1).double(), pixel_keys[:, 32:].reshape(-1))
    assert torch.equal(counts[:, 32:].reshape(-1).double(), beyond)


def test_uniforms_of_several_streams_equal_one_uniform_call_per_stream():
    """rng.uniforms hashes named streams together (parameter sampling's prefetch): the same bits as uniform()."""
    keys = rng.image_keys(7, torch.arange(5, dtype=torch.int64))
    counts = {"lens_angle": 1, "cdm_mass": 25, "source_center": 2}
    together = rng.uniforms(keys, counts)
    assert list(together) == list(counts)
    for name, count in counts.items():
        assert torch.equal(together[name], rng.uniform(keys, name, count)), name
