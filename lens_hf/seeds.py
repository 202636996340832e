"""The one way lens_hf derives seeds from the user's seed.

Every random stream of a run (the augmentation and masks of each training micro-step on each rank, the fixed
masks of evaluation, the data order) gets its own seed `derive_seed(seed, purpose, *counters)`: a hash of the
user's seed, a name for the purpose and the counters that index it. Streams of different purposes or counters
never coincide, and none depends on how many batches, processes or evaluations came before, which is what
makes resume and re-evaluation exact. (The simulator keys its images by (seed, index) in the same spirit with
its own counter-based generator, lens_hf.simulation.rng.)"""

from __future__ import annotations

import hashlib

import torch


def derive_seed(seed: int, purpose: str, *counters: int) -> int:
    """A 63-bit seed for `purpose` at `counters` (e.g. step and rank), from the user's `seed`."""
    text = ":".join([str(int(seed)), purpose, *(str(int(c)) for c in counters)])
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1


def seeded_generator(seed: int, purpose: str, *counters: int, device="cpu") -> torch.Generator:
    """A `torch.Generator` on `device` seeded with `derive_seed(seed, purpose, *counters)`."""
    generator = torch.Generator(device=device)
    generator.manual_seed(derive_seed(seed, purpose, *counters))
    return generator
