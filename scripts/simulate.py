#!/usr/bin/env python
"""Simulate a data set and write it to disk in the layout its real counterpart has.

    python scripts/simulate.py --preset model_ii --num_images 3000 --num_test_images 300 --output_dir data/sim
    python scripts/simulate.py --preset model_i --preset_overrides noise=false,classes=[cdm] --output_dir data/cdm
    python scripts/simulate.py simulate.yaml            # the same arguments from a YAML/JSON file

Layouts (those of the published data sets), so the readers can be tried on exactly what users have:
  model_i/ii/iii: <out>/Model_II/{axion,cdm,no_sub}/*.npy and <out>/Model_II_test/... ; one (H, W)
                  image per file (Model I: int64 counts, II/III: float64), axion files pickled
                  object arrays [image, mass_eV] as DeepLenseSim writes them;
  sr_pairs:       <out>/SR/{LR,HR}/*.npy, (1, 75, 75) and (1, 150, 150), same names (test: SR_test);
  lens_finding:   <out>/{train,test}_{lenses,nonlenses}/*.npy, (3, 64, 64);
  pretrain:       <out>/pretrain/{axion,cdm,no_sub}/*.npy, (64, 64) float64 (the foundation-model set's
                  layout; the folder is the substructure drawn: vortex, cdm, none).
Train images are indices 0..num_images-1 of the seed's stream, test images the next
num_test_images, so the splits never overlap and any image can be re-made from (preset, seed, index).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from lens_hf.data.sample_layouts import save_axion_pair
from lens_hf.simulation import PRESETS, get_preset, simulate
from lens_hf.simulation.presets import SUBSTRUCTURE_TYPES
from lens_hf.training.arguments import parse_arguments, parse_overrides

MODEL_FOLDERS = {"model_i": "Model_I", "model_ii": "Model_II", "model_iii": "Model_III"}
# The pretraining folders use the foundation-model set's class names for the substructure drawn.
PRETRAIN_FOLDERS = {"none": "no_sub", "cdm": "cdm", "vortex": "axion"}
FORMATS = ("npy",)


@dataclass
class SimulateArguments:
    preset: str = field(default="model_ii", metadata={"help": f"One of {sorted(PRESETS)}."})
    output_dir: str = field(default="outputs/simulated", metadata={"help": "Where the folders are written."})
    num_images: int = field(default=300, metadata={"help": "Training images (split evenly over the classes)."})
    num_test_images: int = field(default=0, metadata={"help": "Images of the test folder (0: none)."})
    seed: int = field(default=0)
    format: str = field(
        default="npy",
        metadata={"help": "npy: the real on-disk layout. (A datasets/Parquet export of the simulator is the "
                          "deeplense_sim builder: scripts/build_dataset.py.)"},
    )
    image_size: Optional[int] = field(default=None, metadata={"help": "Override the preset's image size."})
    noise: Optional[bool] = field(default=None, metadata={"help": "Override whether noise is added."})
    preset_overrides: Optional[str] = field(
        default=None, metadata={"help": "Any other preset fields, comma-separated key=value as in the training "
                                        "scripts' overrides, e.g. 'classes=[cdm],psf_fwhm=0.1'."}
    )
    batch_size: int = field(default=256)
    device: str = field(default="cpu")
    overwrite: bool = field(default=False, metadata={"help": "Allow writing into a non-empty output folder."})
    disable_progress_bar: bool = field(default=False)


def build_preset(args: SimulateArguments):
    overrides = parse_overrides(args.preset_overrides, "--preset_overrides")
    for name in ("image_size", "noise"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    return get_preset(args.preset, **overrides)


def _check_arguments(args: SimulateArguments) -> None:
    if args.format not in FORMATS:
        if args.format == "datasets":
            raise ValueError("--format datasets: use scripts/build_dataset.py with the deeplense_sim builder "
                             "(it exports the simulator as Parquet + dataset card); this script writes npy folders")
        raise ValueError(f"--format must be one of {FORMATS}, got {args.format!r}")
    for name in ("num_images", "num_test_images"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name} must be >= 0, got {getattr(args, name)}")
    if args.num_images + args.num_test_images == 0:
        raise ValueError("--num_images and --num_test_images are both 0: nothing to simulate")
    output = Path(args.output_dir)
    if output.exists() and any(output.iterdir()) and not args.overwrite:
        raise FileExistsError(f"{output} is not empty; pass --overwrite to write into it anyway")


def _destinations(preset_name: str, split: str, class_names, label: int, substructure: int, index: int):
    """(relative folder, file name) of one image."""
    test = split == "test"
    if preset_name in MODEL_FOLDERS:
        folder = MODEL_FOLDERS[preset_name] + ("_test" if test else "")
        name = class_names[label]
        return f"{folder}/{name}", f"{name}_sim_{index:07d}.npy"
    if preset_name == "lens_finding":
        kind = "lenses" if class_names[label] == "lens" else "nonlenses"
        return f"{split}_{kind}", f"{index:07d}.npy"
    if preset_name == "pretrain":
        folder = "pretrain_test" if test else "pretrain"
        return f"{folder}/{PRETRAIN_FOLDERS[SUBSTRUCTURE_TYPES[substructure]]}", f"{index:07d}.npy"
    if preset_name == "sr_pairs":
        return ("SR_test" if test else "SR"), f"{index:07d}.npy"
    raise ValueError(f"no on-disk layout for preset {preset_name!r}")


def _save_image(preset, path: Path, image: np.ndarray, log10_mass: float, class_name) -> None:
    if preset.name in MODEL_FOLDERS or preset.name == "pretrain":
        image = image[0]  # DeepLenseSim and the foundation-model set store (H, W)
        image = image.astype(np.int64) if preset.noise and preset.noise_model == "model_i" else image.astype(np.float64)
    else:
        image = image.astype(np.float64)
    if class_name == "axion" and preset.name in MODEL_FOLDERS:
        save_axion_pair(path, image, 10.0**log10_mass)
    else:
        np.save(path, image)


def write_split(preset, args: SimulateArguments, split: str, start: int, count: int, progress) -> int:
    output = Path(args.output_dir)
    class_names = preset.class_names
    written = 0
    for first in range(start, start + count, args.batch_size):
        result = simulate(preset, n=min(args.batch_size, start + count - first), seed=args.seed, start=first,
                          device=args.device, batch_size=args.batch_size)
        images = result.images.numpy()
        targets = result.targets.numpy() if result.targets is not None else None
        meta = result.metadata
        substructure = meta.get("substructure_type", torch.zeros(len(result))).to(torch.int64).tolist()
        labels = meta["label"].tolist()
        masses = meta["log10_m_axion"].tolist()
        for row in range(len(result)):
            index = int(meta["index"][row])
            folder, name = _destinations(preset.name, split, class_names, labels[row], substructure[row], index)
            class_name = class_names[labels[row]] if class_names else None
            if targets is not None:
                for part, array in (("LR", images[row]), ("HR", targets[row])):
                    (output / folder / part).mkdir(parents=True, exist_ok=True)
                    np.save(output / folder / part / name, array.astype(np.float64))
            else:
                (output / folder).mkdir(parents=True, exist_ok=True)
                _save_image(preset, output / folder / name, images[row], masses[row], class_name)
            written += 1
            if progress is not None:
                progress.update(1)
    return written


def main(argv=None) -> dict:
    (args,) = parse_arguments((SimulateArguments,), argv)
    _check_arguments(args)
    preset = build_preset(args)
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    from tqdm.auto import tqdm

    total = args.num_images + args.num_test_images
    progress = None if args.disable_progress_bar else tqdm(total=total, desc=f"simulate {preset.name}", unit="img")
    counts = {}
    if args.num_images:
        counts["train"] = write_split(preset, args, "train", 0, args.num_images, progress)
    if args.num_test_images:
        counts["test"] = write_split(preset, args, "test", args.num_images, args.num_test_images, progress)
    if progress is not None:
        progress.close()
    record = {"preset": preset.to_dict(), "seed": args.seed, "counts": counts,
              "train_indices": [0, args.num_images], "test_indices": [args.num_images, total]}
    (output / "simulation.json").write_text(json.dumps(record, indent=2, default=str))
    return record


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from lens_hf.scripts.console import run

    run(main)
