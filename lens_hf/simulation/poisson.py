"""Exact Poisson counts keyed by (seed, image index, pixel): the photon noise of Model I.

Inverts the CDF off a table for means up to 64 and uses Hörmann's PTRS rejection above, so a
count depends only on its key and mean (never on the batch), and is exactly Poisson; the
random bits come from rng's counter-based hash.
"""
from __future__ import annotations

import math

import torch

from .rng import _GOLDEN32, VECTOR_ALIGNMENT, StreamKeys, _signed, aligned_count, mix32_, work_size


# Poisson counts: means up to _TABLE_MAX_RATE come from CDF inversion read off a table, larger
# means from Hörmann's PTRS transformed rejection (what numpy uses above 10). Both are exact.
_TABLE_MAX_RATE = 64
# Means are binned in steps of 1/32 (a power of two: the bin of a float is exact); uniforms by
# their top 10 bits. A (mean bin, uniform bin) cell holds the count when every (mean, u) in it
# inverts to the same count: 91% of Model I's pixels are decided by one look-up, 3% need an
# exact CDF evaluation, 6% (means above 64) PTRS. Tables: 2 + 2 MB (int8) and 3.3 MB (CDF).
_TABLE_BINS_PER_UNIT = 32
_TABLE_UNIFORM_BITS = 10
# Inside a mean bin the CDF is evaluated from the bin's lower edge as a convolution with
# Poisson(delta), delta <= 1/32: this many terms leave an error below 1e-19.
_CDF_TERMS = 9
# Cells whose count interval touches a u within this distance of a tabulated CDF value are
# left undecided: the tabulated CDFs are accurate to ~1e-14.
_CDF_MARGIN = 1e-12
_MAX_REJECTION_ROUNDS = 200
# Pixels are sorted a few images at a time (values per pass); PTRS's first round runs on slices
# of this many pixels: its float64 operands then stay in the CPU cache.
_SORT_CHUNK = 1 << 17
_SIGN_SHIFT = torch.tensor(7, dtype=torch.int8)
_KEY_SHIFT = torch.tensor(32 - _TABLE_UNIFORM_BITS, dtype=torch.int32)
_HALF_ROW = torch.tensor(1 << (_TABLE_UNIFORM_BITS - 1), dtype=torch.int32)
_POISSON_CHUNK = 1 << 15


def _uniform32_float64(bits: torch.Tensor) -> torch.Tensor:
    """Open-interval (0, 1) float64 uniforms from all 32 random bits (Poisson sampling)."""
    return (bits.to(torch.float64) + (2.0**31 + 0.5)) * (2.0**-32)


def poisson(rate: torch.Tensor, keys: torch.Tensor, name: str) -> torch.Tensor:
    """Exact Poisson counts for a (B, n) tensor of means (n a multiple of VECTOR_ALIGNMENT).

    Returns rate's dtype. Each count depends only on (image key, pixel position, rate), never on
    the batch it was drawn in: every step is elementwise on tensors padded to VECTOR_ALIGNMENT.
    A pixel's 32-bit key u is its uniform for CDF inversion (means <= _TABLE_MAX_RATE: count =
    #{k >= 0 : P(X <= k) <= u}); round r of PTRS uses mix32(u + (2r + 2) golden) and
    mix32(u + (2r + 3) golden). Which sampler runs depends on the mean only.
    """
    if rate.dim() != 2 or rate.shape[1] % VECTOR_ALIGNMENT:
        raise ValueError(f"poisson() needs a (B, n) rate with n padded to {VECTOR_ALIGNMENT}, got {tuple(rate.shape)}")
    if rate.numel():
        lowest, highest = torch.aminmax(rate)  # one pass; NaN fails both comparisons
        if not (bool(lowest >= 0) and bool(highest < math.inf)):
            raise ValueError("poisson(): rates must be finite and >= 0")
    table = _inversion_table(rate.device)
    stream = StreamKeys(keys, name)
    batch, width = rate.shape
    counter_keys = torch.arange(width, dtype=torch.int32, device=rate.device) * _signed(_GOLDEN32, 32)
    counts = torch.empty(batch * width, dtype=rate.dtype, device=rate.device)
    # Table look-ups for every pixel, a few images at a time; (flat index, mean, key) of the
    # pixels that need more: undecided cells and means above the table.
    pending = []
    rows_per_pass = max(1, work_size(rate.device, _SORT_CHUNK) // width)
    for first in range(0, batch, rows_per_pass):
        rows = slice(first, first + rows_per_pass)
        pixel_keys = mix32_(mix32_(counter_keys + stream.low[rows, None]).bitwise_xor_(stream.high[rows, None]))
        pixel_keys = pixel_keys.reshape(-1)
        flat_rate = rate[rows].reshape(-1)
        looked_up = table.look_up(flat_rate, pixel_keys)
        counts[first * width : first * width + flat_rate.numel()] = looked_up
        # looked_up < 0, as the int8 sign (-1 or 0): a bool comparison costs ~7x this shift on a CPU
        positions = torch.nonzero(torch.bitwise_right_shift(looked_up, _SIGN_SHIFT)).squeeze(1)
        pending.append((positions + first * width, flat_rate.index_select(0, positions),
                        pixel_keys.index_select(0, positions), looked_up.index_select(0, positions)))
    positions, lam, pixel_keys, looked_up = (torch.cat(part) for part in zip(*pending))
    if positions.numel():
        lam = lam.to(torch.float64)
        beyond = lam > _TABLE_MAX_RATE
        undecided = torch.nonzero(~beyond).squeeze(1)
        if undecided.numel():
            gather = _pad_to_alignment(undecided)
            drawn = table.resolve(lam.index_select(0, gather), pixel_keys.index_select(0, gather),
                                  looked_up.index_select(0, gather))
            counts.index_copy_(0, positions.index_select(0, undecided), drawn[: undecided.numel()].to(counts.dtype))
        beyond = torch.nonzero(beyond).squeeze(1)
        if beyond.numel():
            gather = _pad_to_alignment(beyond)
            drawn = _ptrs_sampler(lam.index_select(0, gather), pixel_keys.index_select(0, gather))
            counts.index_copy_(0, positions.index_select(0, beyond), drawn[: beyond.numel()].to(counts.dtype))
    return counts.reshape(rate.shape)


def _pad_to_alignment(values: torch.Tensor) -> torch.Tensor:
    """Pad a 1-D tensor (by repeating its first value) to a multiple of VECTOR_ALIGNMENT."""
    missing = aligned_count(values.shape[0]) - values.shape[0]
    if missing == 0:
        return values
    return torch.cat([values, values[:1].expand(missing)])


def _step_bits(pixel_keys: torch.Tensor, step: int) -> torch.Tensor:
    return mix32_(pixel_keys + _signed(step * _GOLDEN32, 32))


def _step_uniforms(pixel_keys: torch.Tensor, step: int) -> torch.Tensor:
    return _uniform32_float64(_step_bits(pixel_keys, step))


def poisson_cdf_table(max_rate: float, bins_per_unit: int, max_count: int) -> torch.Tensor:
    """(max_rate * bins_per_unit + 1, max_count) float64: P(X <= k) for means r / bins_per_unit.

    pmf recursion and a running sum: absolute error below 1e-14 for means up to 64.
    """
    means = torch.arange(int(max_rate * bins_per_unit) + 1, dtype=torch.float64) / bins_per_unit
    pmf = torch.empty(means.numel(), max_count, dtype=torch.float64)
    pmf[:, 0] = torch.exp(-means)
    for k in range(1, max_count):
        pmf[:, k] = pmf[:, k - 1] * means / k
    return torch.cumsum(pmf, dim=1).clamp_(max=1.0)


class _InversionTable:
    """Poisson CDF inversion by table look-up, with an exact evaluation for undecided cells.

    counts[j, i] (int8) for mean bin j (j = ceil(32 mean): j = 0 is a zero mean, j >= 1 covers
    ((j-1)/32, j/32]) and uniform bin i (the top 10 bits of u): the count when every (mean, u)
    of the cell inverts to it (the count rises with both, so it is decided by the two corners);
    otherwise -1 - (the lowest count of the cell). A last row of -128 marks means above the
    table (poisson() tells them from undecided cells by the mean). highest[j, i]: the cell's
    highest count, which bounds the exact evaluations.
    """

    def __init__(self, device):
        rows = _TABLE_MAX_RATE * _TABLE_BINS_PER_UNIT + 1
        self.max_count = _TABLE_MAX_RATE + 12 * math.isqrt(_TABLE_MAX_RATE) + 32  # P(X > max) < 1e-30
        cdf = poisson_cdf_table(_TABLE_MAX_RATE, _TABLE_BINS_PER_UNIT, self.max_count)
        uniform_bins = 1 << _TABLE_UNIFORM_BITS
        edges = torch.arange(uniform_bins + 1, dtype=torch.float64) / uniform_bins
        # the uniforms of bin i lie in [i/2^10 + 2^-33, (i+1)/2^10 - 2^-33]; widened by the margin
        lowest_u = edges[:-1] + (2.0**-33 - _CDF_MARGIN)
        highest_u = edges[1:] - (2.0**-33 - _CDF_MARGIN)
        # count(mean, u) = #{k : cdf[k] <= u}: lowest at the lower corner, highest at the upper one
        lowest = torch.searchsorted(cdf[:-1].contiguous(), lowest_u.expand(rows - 1, -1).contiguous(), right=True)
        highest = torch.searchsorted(cdf[1:].contiguous(), highest_u.expand(rows - 1, -1).contiguous(), right=True)
        if int(highest.max()) > 127:
            raise AssertionError("Poisson inversion table: counts exceed int8")
        cells = torch.where(lowest == highest, lowest, -1 - lowest)
        counts = torch.cat([torch.zeros(1, uniform_bins, dtype=torch.int64), cells,
                            torch.full((1, uniform_bins), -128, dtype=torch.int64)])
        self.counts = counts.to(torch.int8).reshape(-1).to(device)
        self.highest = torch.cat([torch.zeros(1, uniform_bins, dtype=torch.int64), highest]).to(torch.int8).reshape(-1).to(device)
        self.cdf_width = _CDF_TERMS + self.max_count
        self.cdf = torch.cat([torch.zeros(rows, _CDF_TERMS, dtype=torch.float64), cdf], dim=1).reshape(-1).to(device)
        self.beyond_row = rows

    def look_up(self, rate: torch.Tensor, pixel_keys: torch.Tensor) -> torch.Tensor:
        """(n,) table entries (int8) of rates (any float dtype) and 32-bit keys."""
        row = (rate * float(_TABLE_BINS_PER_UNIT)).ceil_().clamp_(max=self.beyond_row).to(torch.int32)
        # the top bits of u = key + 2^31: the arithmetic shift of the key, offset by half the bins
        index = torch.bitwise_right_shift(pixel_keys, _KEY_SHIFT).add_(row, alpha=1 << _TABLE_UNIFORM_BITS)
        return self.counts.index_select(0, index.add_(_HALF_ROW))

    def resolve(self, lam: torch.Tensor, pixel_keys: torch.Tensor, looked_up: torch.Tensor) -> torch.Tensor:
        """Counts of undecided cells: binary search between the cell's lowest and highest count.

        count = #{k : P(X <= k) <= u}; P(X <= k) at mean lam = edge + delta is
        sum_m P_delta(m) P_edge(X <= k - m) (a sum of independent Poissons), from the tabulated
        CDF at the bin's lower edge. Most cells span two counts: one evaluation decides them.
        """
        u = _uniform32_float64(pixel_keys)
        edge_row = torch.ceil(lam * float(_TABLE_BINS_PER_UNIT)).sub_(1.0)
        delta = lam - edge_row / _TABLE_BINS_PER_UNIT
        weights = [torch.exp(-delta)]
        for m in range(1, _CDF_TERMS):
            weights.append(weights[-1] * delta / m)
        column = (pixel_keys >> (32 - _TABLE_UNIFORM_BITS)) + (1 << (_TABLE_UNIFORM_BITS - 1))
        table_row = edge_row.to(torch.int32) + 1
        high = self.highest.index_select(0, (table_row << _TABLE_UNIFORM_BITS) + column).to(torch.int64)
        low = -1 - looked_up.to(torch.int64)
        # the CDF rows start with _CDF_TERMS zeros (k < 0)
        row_start = edge_row.to(torch.int64) * self.cdf_width + _CDF_TERMS
        positions = torch.arange(lam.numel(), device=lam.device)
        result = torch.empty_like(lam)
        while True:  # the count lies in [low, high]
            middle = (low + high) >> 1
            start = row_start + middle
            cdf = self.cdf.index_select(0, start) * weights[0]
            for m in range(1, _CDF_TERMS):  # a fixed summation order
                cdf += self.cdf.index_select(0, start - m) * weights[m]
            step_up = (cdf <= u).to(torch.int64)
            low = low + step_up * (middle + 1 - low)
            high = middle + step_up * (high - middle)
            result.index_copy_(0, positions, low.to(lam.dtype))
            keep = torch.nonzero(low < high).squeeze(1)
            if keep.numel() == 0:
                return result
            keep = _pad_to_alignment(keep)
            positions, u, row_start, low, high = (
                values.index_select(0, keep) for values in (positions, u, row_start, low, high))
            weights = [weight.index_select(0, keep) for weight in weights]


_inversion_tables = {}


@torch.inference_mode(False)  # cached: ordinary tensors even when built under the engine's inference mode
def _inversion_table(device) -> _InversionTable:
    key = str(torch.device(device))
    if key not in _inversion_tables:
        _inversion_tables[key] = _InversionTable(device)
    return _inversion_tables[key]


def _chunks(count: int, device):
    """Slices of _POISSON_CHUNK (a multiple of VECTOR_ALIGNMENT) covering range(count)."""
    size = work_size(device, _POISSON_CHUNK)
    return [slice(start, start + size) for start in range(0, count, size)]


# log(k!) for k below this comes from a table (torch.lgamma is not vectorised on CPU);
# larger k from Stirling's series.
_LOG_FACTORIAL_TABLE_SIZE = 4096
_log_factorial_tables = {}


@torch.inference_mode(False)
def _log_factorial_table(device) -> torch.Tensor:
    key = str(torch.device(device))
    if key not in _log_factorial_tables:
        k = torch.arange(_LOG_FACTORIAL_TABLE_SIZE, dtype=torch.float64)
        _log_factorial_tables[key] = torch.lgamma(k + 1).to(device)
    return _log_factorial_tables[key]


# Stirling's series for log Gamma(x), x >= 9 (5 terms: error < 1e-12).
_STIRLING_COEFFICIENTS = (8.333333333333333e-02, -2.777777777777778e-03, 7.936507936507937e-04,
                          -5.952380952380952e-04, 8.417508417508418e-04)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_STIRLING_SHIFT = 8


def _log_factorial_series(k: torch.Tensor) -> torch.Tensor:
    """log(k!) for integer-valued k >= 0 in float64: log Gamma(k + 9) - log((k+1)...(k+8)).

    Branch-free +, *, / and two logs, so it is also bit-stable on any layout.
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


def _log_factorial(k: torch.Tensor) -> torch.Tensor:
    """log(k!) for integer-valued float64 k (values below 0 give log(0!) = 0: callers reject them)."""
    table = _log_factorial_table(k.device)
    result = table.index_select(0, k.clamp(0, _LOG_FACTORIAL_TABLE_SIZE - 1).to(torch.int64))
    if bool(k.max() >= _LOG_FACTORIAL_TABLE_SIZE):
        beyond = torch.nonzero(k >= _LOG_FACTORIAL_TABLE_SIZE).squeeze(1)
        result.index_copy_(0, beyond, _log_factorial_series(k.index_select(0, _pad_to_alignment(beyond)))[
            : beyond.numel()])
    return result


def _ptrs_round(lam: torch.Tensor, pixel_keys: torch.Tensor, round_index: int):
    """One round of Hörmann's (1993) PTRS for means >= 10: (accepted, candidate count).

    Candidates outside the cheap squeeze need the exact test; it runs on every pixel, which
    costs less than gathering those.
    """
    # u - 1/2 straight from the bits: (bits + 2^31 + 1/2) 2^-32 - 1/2, exactly
    u = (_step_bits(pixel_keys, 2 * round_index + 2).to(torch.float64) + 0.5) * (2.0**-32)
    v = _step_uniforms(pixel_keys, 2 * round_index + 3)
    b = torch.sqrt(lam).mul_(2.53).add_(0.931)
    a = b * 0.02483 - 0.059
    us = 0.5 - torch.abs(u)
    k = torch.addcmul(lam + 0.43, torch.addcdiv(b, a, us, value=2.0), u).floor_()
    accepted = (us >= 0.07) & (v <= 0.9277 - 3.6224 / (b - 2))
    # exact test, v * alpha^-1 / (a / us^2 + b) <= P(k), in linear form (numpy compares logs)
    hat = v * (1.1239 + 1.1328 / (b - 3.4)) / torch.addcdiv(b, a, us * us)
    probability = torch.exp(k * torch.log(lam) - lam - _log_factorial(k))
    accepted |= (hat <= probability) & (k >= 0) & ((us >= 0.013) | (v <= us))
    return accepted, k


def _ptrs_sampler(lam: torch.Tensor, pixel_keys: torch.Tensor) -> torch.Tensor:
    """PTRS rounds until every pixel is accepted; round r of a pixel always uses the same uniforms.

    Round 0 runs on cache-sized slices; the rejected (~10% at means near 64) run together.
    """
    result = torch.empty_like(lam)
    accepted = torch.empty(lam.shape, dtype=torch.bool, device=lam.device)
    for chunk in _chunks(lam.numel(), lam.device):
        accepted[chunk], result[chunk] = _ptrs_round(lam[chunk], pixel_keys[chunk], 0)
    pending = torch.nonzero(~accepted).squeeze(1)
    for round_index in range(1, _MAX_REJECTION_ROUNDS):
        if pending.numel() == 0:
            return result
        size = pending.numel()
        gather = _pad_to_alignment(pending)
        round_accepted, candidate = _ptrs_round(lam.index_select(0, gather), pixel_keys.index_select(0, gather),
                                                round_index)
        result.index_copy_(0, pending, candidate[:size])
        pending = pending.index_select(0, torch.nonzero(~round_accepted[:size]).squeeze(1))
    raise RuntimeError(f"poisson(): values still rejected after {_MAX_REJECTION_ROUNDS} rejection rounds")
