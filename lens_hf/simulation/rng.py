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
    return mix32_(values.clone())


def mix32_(values: torch.Tensor) -> torch.Tensor:
    """mix32 in place (returns values): one scratch tensor, so the working set stays in cache."""
    scratch = torch.bitwise_right_shift(values, 16)
    values ^= scratch.bitwise_and_(0xFFFF)
    values *= _LOWBIAS_A_SIGNED
    values ^= torch.bitwise_right_shift(values, 15, out=scratch).bitwise_and_(0x1FFFF)
    values *= _LOWBIAS_B_SIGNED
    values ^= torch.bitwise_right_shift(values, 16, out=scratch).bitwise_and_(0xFFFF)
    return values


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

    def select(self, rows) -> "StreamKeys":
        """The keys of some images (rows: a slice or an index tensor)."""
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
        hashed = mix32_(torch.add(low, counters, alpha=_signed(_GOLDEN32, 32)))
        return mix32_(hashed.bitwise_xor_(high))


def _uniform_from_bits(bits: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Open-interval (0, 1) uniforms from 24 random bits (exact in float32 and float64)."""
    return bits.bitwise_right_shift(8).bitwise_and_(0xFFFFFF).to(dtype).add_(0.5).mul_(2.0**-24)


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
    return stream_normal(StreamKeys(keys, name), count, dtype)


def stream_normal(stream: StreamKeys, count: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """normal() of already mixed stream keys (callers drawing in slices mix them once)."""
    if count % VECTOR_ALIGNMENT:
        raise ValueError(f"normal() needs a count padded to {VECTOR_ALIGNMENT}, got {count}")
    rows, device = stream.low.shape[0], stream.low.device
    pairs = torch.arange(0, count, 2, dtype=torch.int32, device=device)
    radius = _uniform_from_bits(stream.bits(pairs), dtype).log_().mul_(-2.0).sqrt_()
    angle = _uniform_from_bits(stream.bits(pairs + 1), dtype).mul_(2.0 * math.pi)
    normals = torch.empty((rows, count // 2, 2), dtype=dtype, device=device)
    torch.mul(radius, torch.cos(angle), out=normals[..., 0])
    torch.mul(radius, angle.sin_(), out=normals[..., 1])
    return normals.view(rows, count)


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
_POISSON_CHUNK = 1 << 15


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
        positions = torch.nonzero(looked_up < 0).squeeze(1)
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
        index = torch.bitwise_right_shift(pixel_keys, 32 - _TABLE_UNIFORM_BITS)
        index += row.bitwise_left_shift_(_TABLE_UNIFORM_BITS).add_(1 << (_TABLE_UNIFORM_BITS - 1))
        return self.counts.index_select(0, index)

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
