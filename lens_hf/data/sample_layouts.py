"""Write small folders in the exact real on-disk layouts, filled with random pixels.

For trying the builders without the real data, for the tests, and for the documentation's
examples, which must run anywhere. The values are noise, not lenses.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence, Union

import numpy as np

PathLike = Union[str, Path]


def save_axion_pair(path: PathLike, image: np.ndarray, mass_ev: float) -> None:
    """DeepLenseSim's axion file: a pickled object array `[image, mass_eV]`."""
    pair = np.empty(2, dtype=object)
    pair[0], pair[1] = image, float(mass_ev)
    np.save(path, pair, allow_pickle=True)


def write_deeplense_model_tree(
    root: PathLike,
    folder_name: str = "Model_II",
    image_size: int = 64,
    n_per_class: int = 4,
    n_test_per_class: int = 2,
    seed: int = 0,
) -> Path:
    """`root/Model_X/{axion,cdm,no_sub}/*.npy` and `root/Model_X_test/...`; axion files are pickled
    `[image, mass_eV]` pairs with log10(mass) ~ U(-24, -22); images are (H, W) float64 counts."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for folder, count in ((folder_name, n_per_class), (f"{folder_name}_test", n_test_per_class)):
        for class_name in ("axion", "cdm", "no_sub"):
            class_dir = root / folder / class_name
            class_dir.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                image = rng.poisson(20.0, size=(image_size, image_size)).astype(np.float64)
                path = class_dir / f"sim_{index:06d}.npy"
                if class_name == "axion":
                    save_axion_pair(path, image, 10 ** rng.uniform(-24, -22))
                else:
                    np.save(path, image)
    return root


def write_class_folders(
    root: PathLike,
    class_names: Sequence[str],
    shape: Sequence[int],
    n_per_class: int = 4,
    dtype=np.float64,
    seed: int = 0,
) -> Path:
    """`root/<class>/*.npy`, each file one array of `shape` with values in [0, 1] (the common
    test set's `dataset/{train,val}/{no,sphere,vort}`, the foundation-model set, lens finding)."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for class_name in class_names:
        (root / class_name).mkdir(parents=True, exist_ok=True)
        for index in range(n_per_class):
            np.save(root / class_name / f"{class_name}_{index:05d}.npy", rng.random(tuple(shape)).astype(dtype))
    return root


def write_common_test_tree(root: PathLike, n_per_class: int = 3, image_size: int = 150, seed: int = 0) -> Path:
    """`root/dataset/{train,val}/{no,sphere,vort}/*.npy`, shape (1, S, S), min-max normalised."""
    for offset, part in enumerate(("train", "val")):
        write_class_folders(
            Path(root) / "dataset" / part, ("no", "sphere", "vort"), (1, image_size, image_size), n_per_class, seed=seed + offset
        )
    return Path(root)


def write_sr_tree(root: PathLike, n_pairs: int = 6, lr_size: int = 75, seed: int = 0) -> Path:
    """`root/LR/*.npy` (1, S, S) and `root/HR/*.npy` (1, 2S, 2S) with matching names, values in [0, 1]."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "LR").mkdir(parents=True, exist_ok=True)
    (root / "HR").mkdir(parents=True, exist_ok=True)
    for index in range(n_pairs):
        hr = rng.random((1, 2 * lr_size, 2 * lr_size)).astype(np.float32)
        lr = hr.reshape(1, lr_size, 2, lr_size, 2).mean(axis=(2, 4))
        np.save(root / "LR" / f"sample_{index:05d}.npy", lr)
        np.save(root / "HR" / f"sample_{index:05d}.npy", hr)
    return root


def write_lens_finding_tree(root: PathLike, n_per_folder: int = 3, image_size: int = 64, seed: int = 0) -> Path:
    """`root/{train,test}_{lenses,nonlenses}/*.npy`, 3 bands (3, S, S)."""
    write_class_folders(
        root,
        ("train_lenses", "train_nonlenses", "test_lenses", "test_nonlenses"),
        (3, image_size, image_size),
        n_per_folder,
        dtype=np.float32,
        seed=seed,
    )
    return Path(root)


def write_bologna_tree(
    root: PathLike, object_ids: Sequence[int] = tuple(range(100000, 100008)), image_size: int = 101, seed: int = 0
) -> Path:
    """`root/Band1/imageEUC_VIS-<ID>.fits` (int16 with BSCALE/BZERO, as survey files often are) and
    `root/classifications.csv` with the challenge's columns."""
    from astropy.io import fits

    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "Band1").mkdir(parents=True, exist_ok=True)
    lines = ["ID,is_lens,Einstein_area,numb_pix_lensed_image,flux_lensed_image_in_sigma"]
    for object_id in object_ids:
        hdu = fits.PrimaryHDU(rng.integers(-1000, 1000, size=(image_size, image_size)).astype(np.int16))
        hdu.header["BSCALE"] = 1e-3
        hdu.header["BZERO"] = 0.5
        hdu.writeto(root / "Band1" / f"imageEUC_VIS-{object_id}.fits", overwrite=True)
        is_lens = int(rng.random() < 0.5)
        area = rng.uniform(0.5, 3.0) if is_lens else 0.0
        lines.append(f"{object_id},{is_lens},{area:.4f},{int(rng.integers(0, 400)) * is_lens},{rng.uniform(0, 50) * is_lens:.3f}")
    (root / "classifications.csv").write_text("\n".join(lines) + "\n")
    return root
