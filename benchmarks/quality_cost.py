"""Training FLOPs of every quality row at a given size, counted before anything is trained, so a GPU session can
plan its time (and know which rows need `--resume` across commands).

Each training stage is one train step (forward + backward, torch's FlopCounterMode) of the model the stage
builds, at the stage's image size, patch, preset and batch, times its steps; the sizes come from the `SIZES` and
`GEOMETRY` tables of the quality scripts themselves. Not counted: the optimizer update, evaluations, the linear
probe's single forward pass over the data, and simulating the data. Prints one line per row and one total; with
`--tflops` (a sustained throughput, e.g. from `bench_flops.py --device cuda` × the matmul peak) also the time.

    python benchmarks/quality_cost.py --size full --tflops 200
"""

import argparse
import os
import sys
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # its siblings, the quality scripts

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import quality_classification  # noqa: E402
import quality_lens_finding  # noqa: E402
import quality_super_resolution  # noqa: E402

from lens_hf import LensMAEConfig, LensMAEForImageClassification, LensMAEForPreTraining  # noqa: E402
from lens_hf.architectures import get_architecture  # noqa: E402
from lens_hf.models.lens_mae.modeling_lens_mae import LensMAEForSuperResolution  # noqa: E402
from lens_hf.simulation.presets import LensFindingPreset, SRPairsPreset  # noqa: E402
from lens_hf.training.models import fresh_config  # noqa: E402

RESNET18 = get_architecture("resnet18")
COUNTED_BATCH = 2  # FLOPs are linear in the batch: count 2 images, scale to the stage's batch


def step_flops(model, image_size: int, channels: int, batch: int, kind: str) -> float:
    """FLOPs of one forward + backward of `model` on `batch` images."""
    torch.manual_seed(0)
    pixels = torch.randn(COUNTED_BATCH, channels, image_size, image_size)
    inputs = {"pixel_values": pixels}
    if kind == "classification":
        inputs["labels"] = torch.zeros(COUNTED_BATCH, dtype=torch.long)
    elif kind == "regression":
        inputs["labels"] = torch.zeros(COUNTED_BATCH)
    elif kind == "super_resolution":
        side = image_size * model.config.sr_scale
        inputs["labels"] = torch.randn(COUNTED_BATCH, channels, side, side)
    with FlopCounterMode(display=False) as counter:
        model(**inputs).loss.backward()
    return counter.get_total_flops() * batch / COUNTED_BATCH


def lens_mae(preset: str, image_size: int, patch: int | None = None, channels: int = 1, **fields) -> LensMAEConfig:
    """The config the scripts build for `--model_preset preset [--patch_size patch]` on this data geometry."""
    return fresh_config(SimpleNamespace(model_preset=preset, config_overrides=None), image_size, channels,
                        patch_size=patch, **fields)


def stages_of_rows(size: str) -> dict[str, list[tuple[str, float, int]]]:
    """Row -> [(stage, FLOPs per step, steps)], following what each quality script runs."""
    rows = {}
    sizes = quality_classification.SIZES[size]
    for model, geometry in quality_classification.GEOMETRY.items():
        crop, patch, batch, preset = geometry["crop"], geometry["patch"], sizes["batch"], sizes["preset"]
        pretrain = ("MAE pretraining", step_flops(LensMAEForPreTraining(lens_mae(preset, crop, patch)), crop, 1, batch,
                                                  "pretraining"), sizes["pretrain"])
        classifier = LensMAEForImageClassification(lens_mae(preset, crop, patch, num_labels=3))
        per_step = step_flops(classifier, crop, 1, batch, "classification")
        rows[f"classification_{model}"] = [
            pretrain, ("MAE finetune", per_step, sizes["finetune"]), ("ViT from scratch", per_step, sizes["scratch"]),
            ("ResNet-18", step_flops(RESNET18.build(crop, 1, num_labels=3), crop, 1, batch, "classification"),
             sizes["scratch"]),
        ]
        if model == "model_iii":  # quality_regression.py: same sizes and geometry
            regressor = LensMAEForImageClassification(lens_mae(preset, crop, patch, num_labels=1,
                                                               problem_type="regression"))
            rows["regression_model_iii"] = [pretrain, ("MAE finetuned regressor", step_flops(
                regressor, crop, 1, batch, "regression"), sizes["finetune"])]

    sizes = quality_super_resolution.SIZES[size]
    low = SRPairsPreset.image_size  # the encoder is pretrained on Model I images at the LR geometry, patch 5
    rows["super_resolution"] = [
        ("MAE pretraining on LR images", step_flops(LensMAEForPreTraining(lens_mae(sizes["preset"], low, 5)), low, 1,
                                                    sizes["batch"], "pretraining"), sizes["pretrain"]),
        ("super-resolution head", step_flops(LensMAEForSuperResolution(lens_mae(sizes["preset"], low, 5, sr_scale=2)),
                                             low, 1, sizes["batch"], "super_resolution"), sizes["train"]),
    ]
    sizes = quality_lens_finding.SIZES[size]
    side, bands = LensFindingPreset.image_size, len(LensFindingPreset.bands)
    vit = LensMAEForImageClassification(lens_mae(sizes["preset"], side, channels=bands, num_labels=2))
    rows["lens_finding"] = [
        ("LensMAE from scratch", step_flops(vit, side, bands, sizes["batch"], "classification"), sizes["steps"]),
        ("ResNet-18", step_flops(RESNET18.build(side, bands, num_labels=2), side, bands, sizes["batch"], "classification"),
         sizes["steps"]),
    ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="full", choices=("smoke", "cpu", "full"))
    parser.add_argument("--tflops", type=float, default=None, help="sustained TFLOP/s to convert FLOPs into time")
    args = parser.parse_args()
    torch.set_num_threads(1)
    total = 0.0
    for row, stages in stages_of_rows(args.size).items():
        flops = sum(per_step * steps for _, per_step, steps in stages)
        total += flops
        detail = ", ".join(f"{name} {per_step / 1e12:.3g} TFLOP x {steps}" for name, per_step, steps in stages)
        when = f"  ~{flops / (args.tflops * 1e12) / 60:.1f} min at {args.tflops:g} TFLOP/s" if args.tflops else ""
        print(f"quality_cost/{args.size}/{row}_pflop {flops / 1e15:.2f}{when}  ({detail})")
    when = f"  ~{total / (args.tflops * 1e12) / 60:.1f} min at {args.tflops:g} TFLOP/s" if args.tflops else ""
    print(f"quality_cost/{args.size}/all_rows_pflop {total / 1e15:.2f}{when}")


if __name__ == "__main__":
    main()
