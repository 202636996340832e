"""Counter-based random numbers keyed by (seed, image index).

Every random number the simulator draws is a hash of (seed, global image index, stream
name, element counter), so an image is the same whatever batch, worker or rank renders
it, on any device, with no generator state to carry around. The hash is Chris Wellons'
"lowbias32" integer mixer, applied twice, computed with wrap-around int32/int64 tensor
arithmetic (checked bit for bit against a numpy uint32 reference in the tests). The exact
Poisson sampler built on these keys is poisson.py.
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


_constants = {}


def _constant(value: int, dtype: torch.dtype) -> torch.Tensor:
    """A 0-dim CPU tensor of an integer constant (see _MIX32_CONSTANTS: cheaper than a Python number)."""
    key = (value, dtype)
    if key not in _constants:
        _constants[key] = torch.tensor(value, dtype=dtype)
    return _constants[key]


def _logical_shift_right(values: torch.Tensor, shift: int, bits: int) -> torch.Tensor:
    return (values >> _constant(shift, values.dtype)) & _constant((1 << (bits - shift)) - 1, values.dtype)


def _mix64(values: torch.Tensor) -> torch.Tensor:
    """splitmix64 finaliser on int64 tensors (wrap-around multiplication)."""
    values = (values ^ _logical_shift_right(values, 30, 64)) * _constant(_signed(_MIX64_A, 64), torch.int64)
    values = (values ^ _logical_shift_right(values, 27, 64)) * _constant(_signed(_MIX64_B, 64), torch.int64)
    return values ^ _logical_shift_right(values, 31, 64)


_LOWBIAS_A_SIGNED = _signed(_LOWBIAS_A, 32)
_LOWBIAS_B_SIGNED = _signed(_LOWBIAS_B, 32)


def mix32(values: torch.Tensor) -> torch.Tensor:
    """lowbias32 integer hash on int32 tensors (>> with a mask is the logical shift)."""
    return mix32_(values.clone())


# mix32_'s constants as 0-dim int32 tensors: an op with a tensor operand skips wrapping a Python
# number (about 1.3 us per op, the most of a small op's cost; 10-15% of a large one's). The
# arithmetic is the same int32 wrap-around, so the bits are too; a 0-dim CPU tensor is a scalar
# operand on any device.
_MIX32_CONSTANTS = {name: torch.tensor(value, dtype=torch.int32) for name, value in (
    ("16", 16), ("15", 15), ("0xFFFF", 0xFFFF), ("0x1FFFF", 0x1FFFF), ("A", _LOWBIAS_A_SIGNED),
    ("B", _LOWBIAS_B_SIGNED))}


def mix32_(values: torch.Tensor) -> torch.Tensor:
    """mix32 in place (returns values): one scratch tensor, so the working set stays in cache."""
    c = _MIX32_CONSTANTS
    scratch = torch.bitwise_right_shift(values, c["16"])
    values ^= scratch.bitwise_and_(c["0xFFFF"])
    values *= c["A"]
    values ^= torch.bitwise_right_shift(values, c["15"], out=scratch).bitwise_and_(c["0x1FFFF"])
    values *= c["B"]
    values ^= torch.bitwise_right_shift(values, c["16"], out=scratch).bitwise_and_(c["0xFFFF"])
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
        mixed = _mix64(keys ^ _constant(_signed(stream_id(name) * _GOLDEN64, 64), torch.int64))
        # the two 32-bit halves as signed int32: the int64 -> int32 cast keeps the low 32 bits
        # (two's complement), and the arithmetic shift sign-extends the high ones
        self.low = mixed.to(torch.int32)
        self.high = (mixed >> _constant(32, torch.int64)).to(torch.int32)

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


def _float64_from_pairs(pairs: torch.Tensor) -> torch.Tensor:
    """(..., 2) hashed 32-bit words -> (...) float64 uniforms in (0, 1) with 27 + 26 = 53 random bits."""
    high = _logical_shift_right(pairs[..., 0], 5, 32).to(torch.float64)
    low = _logical_shift_right(pairs[..., 1], 6, 32).to(torch.float64)
    return (high * 2.0**26 + low + 0.5) * 2.0**-53


def uniform(keys: torch.Tensor, name: str, count: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(B, count) uniforms in (0, 1); float64 ones carry 53 random bits."""
    stream = StreamKeys(keys, name)
    if dtype == torch.float64:
        # counters 2i and 2i + 1 hashed in one call: (B, count, 2) -> 27 + 26 bits
        pairs = stream.bits(torch.arange(2 * count, dtype=torch.int32, device=keys.device)).view(-1, count, 2)
        return _float64_from_pairs(pairs)
    return _uniform_from_bits(stream.bits(torch.arange(count, dtype=torch.int32, device=keys.device)), dtype)


def uniforms(keys: torch.Tensor, counts: dict) -> dict:
    """{name: uniform(keys, name, count)} for several float64 streams, hashed together.

    The same values as one uniform() call per name (every step is elementwise on the same
    (key, name, counter) triples), with a few dozen ops in all instead of per name: parameter
    sampling draws ~10 named streams of a few values each, where the ops' fixed cost dominates.
    """
    names = list(counts)
    if not names:
        return {}
    ids = torch.tensor([_signed(stream_id(name) * _GOLDEN64, 64) for name in names], dtype=torch.int64,
                       device=keys.device)
    mixed = _mix64(keys[:, None] ^ ids)  # (B, S): StreamKeys of every name
    low, high = mixed.to(torch.int32), (mixed >> _constant(32, torch.int64)).to(torch.int32)
    # columns: for stream s its counters 0 .. 2 n_s - 1 (uniform()'s 2i and 2i + 1)
    stream_of_column = torch.cat([torch.full((2 * counts[name],), s, dtype=torch.int64)
                                  for s, name in enumerate(names)]).to(keys.device)
    counters = torch.cat([torch.arange(2 * counts[name], dtype=torch.int32) for name in names]).to(keys.device)
    hashed = mix32_(torch.add(low.index_select(1, stream_of_column), counters, alpha=_signed(_GOLDEN32, 32)))
    pairs = mix32_(hashed.bitwise_xor_(high.index_select(1, stream_of_column)))
    values = _float64_from_pairs(pairs.view(keys.shape[0], sum(counts.values()), 2))
    return dict(zip(names, values.split([counts[name] for name in names], dim=1)))


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

