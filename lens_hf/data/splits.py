"""Machine-independent splits: a file's split depends on its name and a seed, nothing else.

Directory listing order, the number of files and the machine never change which split a file
lands in, so adding files to a folder never moves the old ones between train and validation.
"""
from __future__ import annotations

import hashlib

TRAIN, VALIDATION, TEST = "train", "validation", "test"
SPLIT_ORDER = (TRAIN, VALIDATION, TEST)


def split_unit_interval(key: str, seed: int) -> float:
    """A uniform number in [0, 1) from sha256(seed, key): stable across Python versions and machines."""
    digest = hashlib.sha256(f"{int(seed)}\0{key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def check_fractions(validation_fraction: float, test_fraction: float = 0.0) -> None:
    for name, value in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must lie in [0, 1), got {value}")
    if validation_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"validation_fraction + test_fraction must leave room for train, got {validation_fraction} + {test_fraction}"
        )


def assign_split(key: str, seed: int, validation_fraction: float, test_fraction: float = 0.0) -> str:
    """train / validation / test for one file key (its path relative to the data folder)."""
    check_fractions(validation_fraction, test_fraction)
    u = split_unit_interval(key, seed)
    if u < validation_fraction:
        return VALIDATION
    if u < validation_fraction + test_fraction:
        return TEST
    return TRAIN


def derive_seed(seed: int, *purpose: object) -> int:
    """An independent 63-bit seed for one purpose (a split, a chunk) derived from the user's seed.

    sha256 rather than Python's `hash`, which is salted per process for strings.
    """
    text = "\0".join(str(part) for part in (int(seed), *purpose))
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") >> 1


def labelled_subset_indices(labels, per_class: int, seed: int) -> list[int]:
    """Row indices of a class-balanced labelled subset: for every class, the first `per_class` rows of a
    permutation of that class's rows drawn by `numpy.random.default_rng(seed)` (classes in increasing label
    order, one permutation each), returned in increasing row order. Subsets of one seed are nested: the 10 rows
    per class of seed s are the first 10 of its 100. A class with fewer rows than `per_class` is an error."""
    import numpy as np

    labels = np.asarray(labels)
    if per_class < 1:
        raise ValueError(f"labels_per_class must be >= 1, got {per_class}")
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        if len(rows) < per_class:
            raise ValueError(f"class {label} has {len(rows)} training rows, fewer than labels_per_class={per_class}")
        chosen.append(rng.permutation(rows)[:per_class])
    return sorted(int(i) for i in np.concatenate(chosen))
