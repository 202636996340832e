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


_LOWBIAS_A_SIGNED = _signed(_LOWBIAS_A, 32)
_LOWBIAS_B_SIGNED = _signed(_LOWBIAS_B, 32)


def mix32(values: torch.Tensor) -> torch.Tensor:
    """lowbias32 integer hash on int32 tensors (>> with a mask is the logical shift)."""
    values = values ^ ((values >> 16) & 0xFFFF)
    values = values * _LOWBIAS_A_SIGNED
    values = values ^ ((values >> 15) & 0x1FFFF)
    values = values * _LOWBIAS_B_SIGNED
    return values ^ ((values >> 16) & 0xFFFF)


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


# Work is cut into pieces of a few times 10^4 values on a CPU, so the operands of every
# elementwise kernel stay in cache, and into pieces this many times larger on a GPU, to fill it.
GPU_WORK_FACTOR = 256


def work_size(device, cpu_elements: int) -> int:
    """Values per piece of work on this device (see GPU_WORK_FACTOR)."""
    return cpu_elements if torch.device(device).type == "cpu" else cpu_elements * GPU_WORK_FACTOR


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
_MAX_REJECTION_ROUNDS = 200
# First passes run on slices of this many pixels: float64 operands then stay in the CPU cache.
_POISSON_CHUNK = 32768


def poisson(rate: torch.Tensor, keys: torch.Tensor, name: str) -> torch.Tensor:
    """Exact Poisson counts for a (B, n) tensor of means (n a multiple of VECTOR_ALIGNMENT).

    Computed in float64 on the pixels that need it; returns rate's dtype. Each count depends
    only on (image key, pixel position, rate), never on the batch it was drawn in: every step is
    elementwise on tensors padded to VECTOR_ALIGNMENT.
    """
    if rate.dim() != 2 or rate.shape[1] % VECTOR_ALIGNMENT:
        raise ValueError(f"poisson() needs a (B, n) rate with n padded to {VECTOR_ALIGNMENT}, got {tuple(rate.shape)}")
    if not torch.isfinite(rate).all() or (rate < 0).any():
        raise ValueError("poisson(): rates must be finite and >= 0")
    stream = StreamKeys(keys, name)
    batch, width = rate.shape
    chunk_size = work_size(rate.device, _POISSON_CHUNK)
    counters = torch.arange(width, dtype=torch.int32, device=rate.device)
    # Sort the pixels of a few images at a time into the two samplers: (flat index, mean, key).
    small, large = [], []
    rows_per_pass = max(1, 4 * chunk_size // width)
    for first in range(0, batch, rows_per_pass):
        rows = slice(first, first + rows_per_pass)
        # one 32-bit key per (image, pixel); the uniforms of step r are mix32(key + r * golden)
        pixel_keys = mix32(mix32(counters * _signed(_GOLDEN32, 32) + stream.low[rows, None])
                           ^ stream.high[rows, None]).reshape(-1)
        flat_rate = rate[rows].reshape(-1)
        for selected, mask in ((small, (flat_rate > 0) & (flat_rate < _PTRS_MIN_RATE)),
                               (large, flat_rate >= _PTRS_MIN_RATE)):
            positions = torch.nonzero(mask).squeeze(1)
            selected.append((positions + first * width, flat_rate[positions], pixel_keys[positions]))
    # counts are kept in the dtype of the images they become
    counts = torch.zeros(batch * width, dtype=rate.dtype, device=rate.device)
    positions, lam, pixel_keys = (torch.cat(parts) for parts in zip(*small))
    for start in range(0, positions.numel(), chunk_size):
        chunk = slice(start, start + chunk_size)
        counts[positions[chunk]] = _poisson_inversion(*_padded(lam[chunk], pixel_keys[chunk]))[
            : positions[chunk].numel()].to(counts.dtype)
    positions, lam, pixel_keys = (torch.cat(parts) for parts in zip(*large))
    rejected = []
    for start in range(0, positions.numel(), chunk_size):
        chunk = slice(start, start + chunk_size)
        size = positions[chunk].numel()
        accepted, k = _ptrs_round(*_padded(lam[chunk], pixel_keys[chunk]), 0)
        accepted, k = accepted[:size], k[:size]
        counts[positions[chunk]] = torch.where(accepted, k, torch.zeros_like(k)).to(counts.dtype)
        rejected.append(torch.nonzero(~accepted).squeeze(1) + start)
    pending = torch.cat(rejected) if rejected else positions[:0]
    if pending.numel():
        # the ~20% rejected once are few: later rounds run on all of them together
        counts[positions[pending]] = _poisson_ptrs(*_padded(lam[pending], pixel_keys[pending]),
                                                   first_round=1)[: pending.numel()].to(counts.dtype)
    return counts.reshape(rate.shape)


def _padded(lam: torch.Tensor, pixel_keys: torch.Tensor):
    return _pad_to_alignment(lam).to(torch.float64), _pad_to_alignment(pixel_keys)


def _pad_to_alignment(values: torch.Tensor) -> torch.Tensor:
    """Pad a 1-D tensor (by repeating its first value) to a multiple of VECTOR_ALIGNMENT."""
    missing = aligned_count(values.shape[0]) - values.shape[0]
    if missing == 0:
        return values
    return torch.cat([values, values[:1].expand(missing)])


def _step_uniforms(pixel_keys: torch.Tensor, step: int) -> torch.Tensor:
    return _uniform32_float64(mix32(pixel_keys + _signed(step * _GOLDEN32, 32)))


# CDF-inversion steps between compactions of the still-searching pixels.
_INVERSION_STEPS_PER_PASS = 8


def _poisson_inversion(lam: torch.Tensor, pixel_keys: torch.Tensor) -> torch.Tensor:
    """Sequential CDF search: one exp, then only * and + in a fixed order (bit-exact on any layout).

    count = #{k >= 0 : u > P(X <= k)}; pixels whose u is already below the CDF stop changing
    and are dropped every few steps.
    """
    threshold = _step_uniforms(pixel_keys, 1)
    probability = torch.exp(-lam)
    cumulative = probability.clone()
    count = (threshold > cumulative).to(lam.dtype)
    result = torch.empty_like(lam)
    positions = torch.arange(lam.numel(), device=lam.device)
    step = 0
    while True:
        for _ in range(_INVERSION_STEPS_PER_PASS):
            step += 1
            probability = probability * lam / step
            cumulative = cumulative + probability
            count = count + (threshold > cumulative).to(lam.dtype)
        result[positions] = count
        # probability > 0: a sum that rounds below the threshold must not loop forever
        keep = torch.nonzero((threshold > cumulative) & (probability > 0)).squeeze(1)
        if keep.numel() == 0:
            return result
        keep = _pad_to_alignment(keep)
        positions, lam, threshold = positions[keep], lam[keep], threshold[keep]
        probability, cumulative, count = probability[keep], cumulative[keep], count[keep]


# Stirling's series for log Gamma(x), x >= 9 (5 terms: error < 1e-12).
_STIRLING_COEFFICIENTS = (8.333333333333333e-02, -2.777777777777778e-03, 7.936507936507937e-04,
                          -5.952380952380952e-04, 8.417508417508418e-04)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_STIRLING_SHIFT = 8


def _log_factorial(k: torch.Tensor) -> torch.Tensor:
    """log(k!) for integer-valued k >= 0 in float64: log Gamma(k + 9) - log((k+1)...(k+8)).

    torch.lgamma is not vectorised on CPU (about 40x slower than log); this is +, *, / and
    two logs, branch-free, so it is also bit-stable on any layout.
    """
    x = k + (_STIRLING_SHIFT + 1.0)
    inverse_square = 1.0 / (x * x)
    series = _STIRLING_COEFFICIENTS[-1] * inverse_square
    for coefficient in reversed(_STIRLING_COEFFICIENTS[1:-1]):
        series = (series + coefficient) * inverse_square
    series = series + _STIRLING_COEFFICIENTS[0]
    product = k + 1.0
    for offset in range(2, _STIRLING_SHIFT + 1):
        product = product * (k + float(offset))
    return series / x + _HALF_LOG_2PI + (x - 0.5) * torch.log(x) - x - torch.log(product)


def _ptrs_round(lam: torch.Tensor, pixel_keys: torch.Tensor, round_index: int):
    """One round of Hörmann's (1993) PTRS for means >= 10: (accepted, candidate count).

    Most candidates pass the cheap squeeze test; only the others get the log-density test.
    """
    u = _step_uniforms(pixel_keys, 2 * round_index + 2) - 0.5
    v = _step_uniforms(pixel_keys, 2 * round_index + 3)
    b = 0.931 + 2.53 * torch.sqrt(lam)
    a = -0.059 + 0.02483 * b
    us = 0.5 - torch.abs(u)
    k = torch.floor((2 * a / us + b) * u + lam + 0.43)
    accepted = (us >= 0.07) & (v <= 0.9277 - 3.6224 / (b - 2))
    undecided = torch.nonzero(~accepted & (k >= 0) & ((us >= 0.013) | (v <= us))).squeeze(1)
    if undecided.numel():
        padded = _pad_to_alignment(undecided)
        lam_u, b_u, a_u, us_u, v_u, k_u = (t[padded] for t in (lam, b, a, us, v, k))
        log_accept = torch.log(v_u) + torch.log(1.1239 + 1.1328 / (b_u - 3.4)) - torch.log(a_u / (us_u * us_u) + b_u)
        exact = log_accept <= -lam_u + k_u * torch.log(lam_u) - _log_factorial(k_u)
        accepted[undecided] = exact[: undecided.numel()]
    return accepted, k


def _poisson_ptrs(lam: torch.Tensor, pixel_keys: torch.Tensor, first_round: int = 0) -> torch.Tensor:
    """PTRS rounds until every pixel is accepted; round r of a pixel always uses the same uniforms."""
    result = torch.zeros_like(lam)
    positions = torch.arange(lam.numel(), device=lam.device)
    for round_index in range(first_round, _MAX_REJECTION_ROUNDS):
        accepted, k = _ptrs_round(lam, pixel_keys, round_index)
        result[positions[accepted]] = k[accepted]
        keep = torch.nonzero(~accepted).squeeze(1)
        if keep.numel() == 0:
            return result
        keep = _pad_to_alignment(keep)
        positions, lam, pixel_keys = positions[keep], lam[keep], pixel_keys[keep]
    raise RuntimeError(f"poisson(): values still rejected after {_MAX_REJECTION_ROUNDS} rejection rounds")
