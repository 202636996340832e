"""Counter-based random numbers keyed by (seed, image index).

Every random number the simulator draws is a hash of (seed, global image index, stream
name, element counter), so an image is the same whatever batch, worker or rank renders
it, on any device, with no generator state to carry around. The hash is Chris Wellons'
"lowbias32" integer mixer, applied twice, computed with wrap-around int32/int64 tensor
arithmetic (checked bit for bit against a numpy uint32 reference in the tests).
"""
from __future__ import annotations

import math
import zlib

import torch

_MASK32 = 0xFFFFFFFF
_GOLDEN32 = 0x9E3779B9
_GOLDEN64 = 0x9E3779B97F4A7C15
_MIX64_A = 0xBF58476D1CE4E5B9
_MIX64_B = 0x94D049BB133111EB
_LOWBIAS_A = 0x7FEB352D
_LOWBIAS_B = 0x846CA68B
# Whole images are padded to a multiple of this many values before any transcendental
# function runs: torch's CPU kernels compute the scalar tail of a vectorised loop with a
# different libm, and padding keeps every value on the vectorised path (batch-invariant bytes).
VECTOR_ALIGNMENT = 64


def _signed(value: int, bits: int) -> int:
    """Two's-complement view of an unsigned constant, as torch integer tensors need."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _logical_shift_right(values: torch.Tensor, shift: int, bits: int) -> torch.Tensor:
    return (values >> shift) & ((1 << (bits - shift)) - 1)


def _mix64(values: torch.Tensor) -> torch.Tensor:
    """splitmix64 finaliser on int64 tensors (wrap-around multiplication)."""
    values = (values ^ _logical_shift_right(values, 30, 64)) * _signed(_MIX64_A, 64)
    values = (values ^ _logical_shift_right(values, 27, 64)) * _signed(_MIX64_B, 64)
    return values ^ _logical_shift_right(values, 31, 64)


def mix32(values: torch.Tensor) -> torch.Tensor:
    """lowbias32 integer hash on int32 tensors."""
    values = values ^ _logical_shift_right(values, 16, 32)
    values = values * _signed(_LOWBIAS_A, 32)
    values = values ^ _logical_shift_right(values, 15, 32)
    values = values * _signed(_LOWBIAS_B, 32)
    return values ^ _logical_shift_right(values, 16, 32)


def stream_id(name: str) -> int:
    """A stable 32-bit id for a named random stream (Python's hash() is salted per process)."""
    return zlib.crc32(name.encode("utf-8"))


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if not -(2**63) <= seed < 2**63:
        raise ValueError(f"seed must fit in int64, got {seed}")
    return seed


def image_keys(seed, indices: torch.Tensor) -> torch.Tensor:
    """(B,) int64 keys, one per image, from the dataset seed(s) and global image indices.

    seed: an int, or a (B,) int64 tensor (one seed per image). The key is a hash of the pair,
    not seed + index, so streams of neighbouring seeds share no images.
    """
    indices = torch.as_tensor(indices, dtype=torch.int64)
    if isinstance(seed, torch.Tensor):
        seeds = seed.to(device=indices.device, dtype=torch.int64)
    else:
        seeds = torch.full(indices.shape, check_seed(seed), dtype=torch.int64, device=indices.device)
    seed_key = _mix64(seeds * _signed(_GOLDEN64, 64) + 1)
    return _mix64(seed_key ^ _mix64(indices + _signed(_GOLDEN64, 64)))


class StreamKeys:
    """The two 32-bit words that key one named stream of each image in a batch."""

    def __init__(self, keys: torch.Tensor, name: str):
        mixed = _mix64(keys ^ _signed(stream_id(name) * _GOLDEN64, 64))
        self.low = (mixed & _MASK32).to(torch.int64)
        self.high = _logical_shift_right(mixed, 32, 64)
        self.low = torch.where(self.low >= 2**31, self.low - 2**32, self.low).to(torch.int32)
        self.high = torch.where(self.high >= 2**31, self.high - 2**32, self.high).to(torch.int32)

    def select(self, rows: torch.Tensor) -> "StreamKeys":
        selected = StreamKeys.__new__(StreamKeys)
        selected.low = self.low[rows]
        selected.high = self.high[rows]
        return selected

    def bits(self, counters: torch.Tensor, broadcast_rows: bool = True) -> torch.Tensor:
        """32 random bits (as int32) per (image, counter).

        counters: int32 (n,) shared by all images (broadcast_rows=True -> (B, n)),
        or per-row counters of the same leading shape as the keys (broadcast_rows=False).
        """
        if broadcast_rows:
            low, high = self.low[:, None], self.high[:, None]
        else:
            low, high = self.low, self.high
        hashed = mix32(counters * _signed(_GOLDEN32, 32) + low)
        return mix32(hashed ^ high)


def _uniform_from_bits(bits: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Open-interval (0, 1) uniforms from 24 random bits (exact in float32 and float64)."""
    return (_logical_shift_right(bits, 8, 32).to(dtype) + 0.5) * (2.0**-24)


def _uniform32_float64(bits: torch.Tensor) -> torch.Tensor:
    """Open-interval (0, 1) float64 uniforms from all 32 random bits (Poisson sampling)."""
    return (bits.to(torch.float64) + (2.0**31 + 0.5)) * (2.0**-32)


def uniform(keys: torch.Tensor, name: str, count: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(B, count) uniforms in (0, 1); float64 ones carry 53 random bits."""
    stream = StreamKeys(keys, name)
    counters = torch.arange(count, dtype=torch.int32, device=keys.device)
    if dtype == torch.float64:
        high = _logical_shift_right(stream.bits(2 * counters), 5, 32).to(torch.float64)
        low = _logical_shift_right(stream.bits(2 * counters + 1), 6, 32).to(torch.float64)
        return (high * 2.0**26 + low + 0.5) * 2.0**-53
    return _uniform_from_bits(stream.bits(counters), dtype)


def aligned_count(count: int) -> int:
    return -(-count // VECTOR_ALIGNMENT) * VECTOR_ALIGNMENT


def normal(keys: torch.Tensor, name: str, count: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, count) standard normals by Box-Muller; `count` must be a multiple of VECTOR_ALIGNMENT."""
    if count % VECTOR_ALIGNMENT:
        raise ValueError(f"normal() needs a count padded to {VECTOR_ALIGNMENT}, got {count}")
    stream = StreamKeys(keys, name)
    pairs = torch.arange(count // 2, dtype=torch.int32, device=keys.device)
    radius = torch.sqrt(-2.0 * torch.log(_uniform_from_bits(stream.bits(2 * pairs), dtype)))
    angle = (2.0 * math.pi) * _uniform_from_bits(stream.bits(2 * pairs + 1), dtype)
    return torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=-1).reshape(keys.shape[0], count)


# Below this mean, Poisson counts come from CDF inversion; above, from Hörmann's PTRS
# transformed rejection (the split numpy uses). Both are exact samplers.
_PTRS_MIN_RATE = 10.0
_MAX_REJECTION_ROUNDS = 64
# Pixels are sampled in slices of this size so the ~100 elementwise steps stay in cache.
_POISSON_CHUNK = 65536
# Counters of rejection round r start at r * _COUNTER_STRIDE, above any pixel position.
_COUNTER_STRIDE = 1 << 20


def poisson(rate: torch.Tensor, keys: torch.Tensor, name: str) -> torch.Tensor:
    """Exact Poisson counts for a (B, n) tensor of means (n a multiple of VECTOR_ALIGNMENT).

    Computed in float64 on the pixels that need it; returns rate's dtype. Each count depends
    only on (key, pixel position, rate), never on the batch it was drawn in: every step is
    elementwise on tensors padded to VECTOR_ALIGNMENT.
    """
    if rate.dim() != 2 or rate.shape[1] % VECTOR_ALIGNMENT:
        raise ValueError(f"poisson() needs a (B, n) rate with n padded to {VECTOR_ALIGNMENT}, got {tuple(rate.shape)}")
    if not torch.isfinite(rate).all() or (rate < 0).any():
        raise ValueError("poisson(): rates must be finite and >= 0")
    if rate.shape[1] >= _COUNTER_STRIDE:
        raise ValueError(f"poisson(): at most {_COUNTER_STRIDE - 1} values per image, got {rate.shape[1]}")
    stream = StreamKeys(keys, name)
    rate64 = rate.to(torch.float64)
    counts = torch.zeros_like(rate64)
    for sampler, mask in (
        (_poisson_inversion, (rate64 > 0) & (rate64 < _PTRS_MIN_RATE)),
        (_poisson_ptrs, rate64 >= _PTRS_MIN_RATE),
    ):
        pixels = torch.nonzero(mask)
        for start in range(0, pixels.shape[0], _POISSON_CHUNK):
            rows, cols = pixels[start : start + _POISSON_CHUNK].unbind(1)
            keyed = _KeyedPixels(rate64[rows, cols], cols, stream.low[rows], stream.high[rows])
            counts[rows, cols] = sampler(keyed)[: rows.numel()]
    return counts.to(rate.dtype)


def _pad_to_alignment(values: torch.Tensor) -> torch.Tensor:
    """Pad a 1-D tensor (by repeating its first value) to a multiple of VECTOR_ALIGNMENT."""
    missing = aligned_count(values.shape[0]) - values.shape[0]
    if missing == 0:
        return values
    return torch.cat([values, values[:1].expand(missing, *values.shape[1:])])


class _KeyedPixels:
    """Means, counters and stream keys of a list of pixels, padded to VECTOR_ALIGNMENT."""

    def __init__(self, lam: torch.Tensor, cols: torch.Tensor, low: torch.Tensor, high: torch.Tensor):
        self.lam = _pad_to_alignment(lam)
        self.cols = _pad_to_alignment(cols.to(torch.int32))
        self.low = _pad_to_alignment(low)
        self.high = _pad_to_alignment(high)

    def uniforms(self, counter_offset: int) -> torch.Tensor:
        return _uniform32_float64(_hash(self.cols + counter_offset, self.low, self.high))

    def take(self, positions: torch.Tensor) -> "_KeyedPixels":
        return _KeyedPixels(self.lam[positions], self.cols[positions], self.low[positions], self.high[positions])


def _hash(counters: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    return mix32(mix32(counters * _signed(_GOLDEN32, 32) + low) ^ high)


_COMPACT_EVERY = 4


def _poisson_inversion(pixels: _KeyedPixels) -> torch.Tensor:
    """Sequential CDF search: one exp, then only +, *, / (exact to the bit on any layout).

    The still-searching pixels are compacted every few steps (small means finish early).
    """
    result = torch.zeros_like(pixels.lam)
    positions = torch.arange(pixels.lam.numel(), device=pixels.lam.device)
    lam, threshold = pixels.lam, pixels.uniforms(0)
    probability = torch.exp(-lam)
    cumulative = probability.clone()
    count = torch.zeros_like(lam)
    active = threshold > cumulative
    step = 0
    while True:
        if step % _COMPACT_EVERY == 0:
            result[positions] = count
            keep = torch.nonzero(active).squeeze(1)
            if keep.numel() == 0:
                return result
            keep = _pad_to_alignment(keep)
            positions, lam, threshold = positions[keep], lam[keep], threshold[keep]
            probability, cumulative, count, active = probability[keep], cumulative[keep], count[keep], active[keep]
        step += 1
        probability = probability * lam / step
        cumulative = cumulative + probability
        count = count + active.to(count.dtype)
        # a cumulative sum that rounds below 1 must not loop forever
        active = active & (threshold > cumulative) & (probability > 0)


# log(k!) for k < 8 exactly; Stirling's series (5 terms, error < 1e-11) above.
_SMALL_LOG_FACTORIALS = tuple(math.lgamma(k + 1.0) for k in range(8))
_STIRLING_COEFFICIENTS = (8.333333333333333e-02, -2.777777777777778e-03, 7.936507936507937e-04,
                          -5.952380952380952e-04, 8.417508417508418e-04)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _log_factorial(k: torch.Tensor) -> torch.Tensor:
    """log(k!) for integer-valued k >= 0 in float64.

    torch.lgamma is not vectorised on CPU (about 40x slower than log); this is +, *, /
    and one log, so it is also bit-stable on any layout.
    """
    x = torch.clamp(k, min=7.0) + 1.0
    inverse_square = 1.0 / (x * x)
    series = torch.full_like(x, _STIRLING_COEFFICIENTS[-1])
    for coefficient in reversed(_STIRLING_COEFFICIENTS[:-1]):
        series = series * inverse_square + coefficient
    stirling = series / x + _HALF_LOG_2PI + (x - 0.5) * torch.log(x) - x
    small = k < 8
    if bool(small.any()):
        table = torch.tensor(_SMALL_LOG_FACTORIALS, dtype=k.dtype, device=k.device)
        stirling = torch.where(small, table[torch.clamp(k, min=0, max=7).to(torch.int64)], stirling)
    return stirling


# Rejection rounds are drawn in blocks: one round for every pixel (most are accepted),
# then growing blocks of rounds at once for the few still rejected.
_ROUND_BLOCKS = (1, 2, 4, 8, 16, 32)


def _poisson_ptrs(pixels: _KeyedPixels) -> torch.Tensor:
    """Hörmann (1993) PTRS for means >= 10; round r of a pixel always uses the same keyed uniforms."""
    result = torch.zeros_like(pixels.lam)
    pending = torch.arange(pixels.lam.numel(), device=pixels.lam.device)
    first_round = 0
    for block in _ROUND_BLOCKS:
        rounds = torch.arange(first_round, first_round + block, dtype=torch.int32, device=pending.device)
        block_pixels = pixels if first_round == 0 else pixels.take(_pad_to_alignment(pending))
        accepted, k = _ptrs_rounds(block_pixels, rounds[:, None])
        first_accepted = torch.argmax(accepted.to(torch.int8), dim=0, keepdim=True)
        done = accepted.any(dim=0)[: pending.numel()]
        values = torch.gather(k, 0, first_accepted)[0, : pending.numel()]
        result[pending[done]] = values[done]
        pending = pending[~done]
        first_round += block
        if pending.numel() == 0:
            return result
    raise RuntimeError(f"poisson(): values still rejected after {first_round} rejection rounds")


def _ptrs_rounds(pixels: _KeyedPixels, rounds: torch.Tensor):
    """(accepted, k), both (R, n), of rejection rounds `rounds` (an (R, 1) int32 tensor)."""
    u_counters = (2 * rounds + 1) * _COUNTER_STRIDE + pixels.cols
    u = _uniform32_float64(_hash(u_counters, pixels.low, pixels.high)) - 0.5
    v = _uniform32_float64(_hash(u_counters + _COUNTER_STRIDE, pixels.low, pixels.high))
    lam = pixels.lam
    b = 0.931 + 2.53 * torch.sqrt(lam)
    a = -0.059 + 0.02483 * b
    us = 0.5 - torch.abs(u)
    k = torch.floor((2 * a / us + b) * u + lam + 0.43)
    quick = (us >= 0.07) & (v <= 0.9277 - 3.6224 / (b - 2))
    hopeless = (k < 0) | ((us < 0.013) & (v > us))
    log_accept = torch.log(v) + torch.log(1.1239 + 1.1328 / (b - 3.4)) - torch.log(a / (us * us) + b)
    exact = log_accept <= -lam + k * torch.log(lam) - _log_factorial(torch.clamp(k, min=0))
    return quick | (~hopeless & exact), k
