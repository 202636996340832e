"""Quality table: every `--architecture` on the same data and budget, for one task, beside the published figures.

    python benchmarks/quality_architectures.py --task regression --model model_iii --size cpu --resume true
    python benchmarks/quality_architectures.py --task classification --model model_ii --size cpu --resume true
    python benchmarks/quality_architectures.py --task lens_finding --size smoke

Each architecture trains from scratch (`finetune.py --mode scratch`, the scratch recipe: AdamW, warmup + cosine,
lr 5e-4, wd 0.05) for the same steps at the same batch on the same simulated images (`deeplense_sim`, dataset and
training seed `--seed`; every image of the generated train split is labelled), is scored on the test split, then
re-scored with D4 test-time augmentation (`evaluate.py --tta d4`: the mean logits over the 8 rotations/flips).
Per architecture: the task's figures with and without TTA, parameters, training seconds (measured when the stage
ran; kept across `--resume`) and inference images/s (batch 64, median of 5 timed batches, the threads of the run).

Sizes: smoke (one size per family, 2 steps; checks the wiring), cpu (every architecture but EfficientNet-B4...B7,
whose step costs 4-20x a ResNet-50's on a CPU; `--architectures` adds them), full (every architecture, a GPU).
Published figures are DeepLense's on its own images (ImageNet-free training, other budgets): a reference scale,
not the same experiment.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from quality_classification import GEOMETRY
from quality_common import PUBLISHED, report, setup

from lens_hf.architectures import ARCHITECTURES
from lens_hf.scripts.stages import summary

TASKS = ("classification", "regression", "lens_finding")
# The figure each task is ranked by (and the second one shown), as named in metrics.json.
FIGURES = {"classification": ("accuracy", "roc_auc_micro"), "regression": ("mae", "rmse"),
           "lens_finding": ("roc_auc", "average_precision")}
SMOKE_ARCHITECTURES = ("lens_mae", "resnet18", "efficientnet_b0", "mobilenet_v2", "cvt_13", "vit_small",
                       "convnext_tiny")
CPU_SKIPPED = ("efficientnet_b4", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7")
SIZES = {
    "smoke": dict(n=(48, 16, 24), batch=8, steps=2, preset="tiny", architectures=SMOKE_ARCHITECTURES),
    "cpu": dict(n=(3000, 300, 600), batch=64, steps=200, preset="small",
                architectures=tuple(a for a in ("lens_mae", *ARCHITECTURES) if a not in CPU_SKIPPED)),
    "full": dict(n=(30000, 3000, 5000), batch=256, steps=8000, preset="base", architectures=("lens_mae", *ARCHITECTURES)),
}
# DeepLense's figures for these networks (its own data; see the module docstring), keyed (task, model, architecture)
# in the table report() reads.
PUBLISHED.update({
    ("regression", "model_i", "resnet34"): (0.2849, "ResNet-34, Model I, dex"),
    ("regression", "model_ii", "resnet34"): (0.2162, "ResNet-34, Model II, dex"),
    ("regression", "model_iii", "resnet34"): (0.1332, "ResNet-34, Model III, dex"),
    ("regression", "model_ii", "resnet18"): (0.021, "supervised ResNet-18, released Model II test set, dex"),
    ("classification", "model_ii", "resnet18"): (0.9999, "supervised ResNet-18, released Model II test set"),
    ("classification", "model_ii", "efficientnet_b7"): (0.959, "best EfficientNet, common test set"),
    ("lens_finding", None, "efficientnet_b7"): (0.93, "EfficientNet-B7 + upsampling, ROC AUC"),
})
LEARNING_RATE = 5e-4


@dataclass
class ArchitectureArguments:
    task: str = field(default="classification", metadata={"help": " | ".join(TASKS)})
    model: str = field(default="model_ii", metadata={"help": "model_i | model_ii | model_iii (the simulated "
                                                             "substructure model; ignored for lens_finding)."})
    architectures: str = field(default="", metadata={"help": "Comma-separated --architecture names (default: the "
                                                           "size's list, see the module docstring)."})

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"--task must be one of {TASKS}, got {self.task!r}")
        if self.model not in GEOMETRY:
            raise ValueError(f"--model must be one of {tuple(GEOMETRY)}, got {self.model!r}")
        unknown = [a for a in self.names() if a != "lens_mae" and a not in ARCHITECTURES]
        if unknown:
            raise ValueError(f"--architectures: unknown {unknown}; valid: lens_mae, {', '.join(ARCHITECTURES)}")

    def names(self) -> list[str]:
        return [a.strip() for a in self.architectures.split(",") if a.strip()]


def data_arguments(task: str, model: str, size: dict, common: list) -> list:
    """The same data for every architecture: simulated images of the task, cropped as the quality rows crop them."""
    config = {"classification": model, "regression": f"regression_{model}", "lens_finding": "lens_finding"}[task]
    crop = [] if task == "lens_finding" else ["--crop_size", GEOMETRY[model]["crop"]]
    extra = ["--imbalance", "loss_weights"] if task == "lens_finding" else []
    return ["--dataset_name", "deeplense_sim", "--dataset_config", config, "--num_train", size["n"][0],
            "--num_validation", size["n"][1], "--num_test", size["n"][2], *crop, "--normalization", "standardize",
            "--per_device_train_batch_size", size["batch"], "--task", task, "--mode", "scratch", *extra,
            "--max_steps", size["steps"], "--learning_rate", LEARNING_RATE, *common]


def architecture_arguments(name: str, size: dict, model: str) -> list:
    if name != "lens_mae":
        return ["--architecture", name]
    return ["--model_preset", size["preset"], "--config_overrides", f"patch_size={GEOMETRY[model]['patch']}",
            "--classifier_head_norm", "batchnorm"]


@torch.no_grad()
def size_and_speed(folder: Path, batch: int = 64, repeats: int = 5) -> tuple[int, float]:
    """The saved model's parameter count and the images/s of its forward pass on a batch of test-sized images
    (median of `repeats`)."""
    from lens_hf.training.evaluation import load_saved_model

    model, _ = load_saved_model(folder)
    model.eval()
    config = model.config
    images = torch.randn(batch, config.num_channels, config.image_size, config.image_size)
    model(pixel_values=images)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(pixel_values=images)
        times.append(time.perf_counter() - start)
    return sum(p.numel() for p in model.parameters()), batch / sorted(times)[len(times) // 2]


def tta_summary(folder: Path, stage) -> dict:
    """The test split re-scored with D4 test-time augmentation (scripts/evaluate.py --tta d4)."""
    stage_folder = folder.parent / f"{folder.name}_tta_d4"  # beside the run folder: not part of what it publishes
    stage("D4 test-time augmentation", "evaluate.py", ["--model_name_or_path", folder, "--split", "test", "--tta",
                                                        "d4", "--output_dir", stage_folder, "--refresh_card", "false"])
    return json.loads((stage_folder / "metrics.json").read_text())["evaluations"]["test (D4 TTA)"]["summary"]


def main(argv=None):
    (args, options), out, stage, common = setup((ArchitectureArguments,), argv)
    size = SIZES[args.size]
    started = time.time()
    names = options.names() or list(size["architectures"])
    task, model = options.task, options.model
    row = f"architectures_{task}" + ("" if task == "lens_finding" else f"_{model}")
    folder = out / row
    timings_path = out / f"{row}_train_seconds.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    data = data_arguments(task, model, size, common)
    main_figure, second_figure = FIGURES[task]
    results, failures = [], {}
    for name in names:
        run_folder = folder / name
        begun = time.time()
        try:
            run = stage(f"{name} from scratch", "finetune.py", [*data, *architecture_arguments(name, size, model),
                                                                "--output_dir", run_folder])
        except SystemExit as error:  # one architecture failing (e.g. a non-finite loss) does not end the table
            failures[name] = str(error)
            print(f"# {name} failed: {error}", flush=True)
            continue
        if time.time() - begun > 5 or name not in timings:  # the stage ran now (a reused one returns at once)
            timings[name] = time.time() - begun
            timings_path.parent.mkdir(parents=True, exist_ok=True)
            timings_path.write_text(json.dumps(timings, indent=2))
        metrics, augmented = summary(run), tta_summary(run, stage)
        key = (task, None if task == "lens_finding" else model, name)
        num_parameters, images_per_second = size_and_speed(run)
        results += [(f"{name}/{main_figure}", key, metrics[main_figure], run),
                    (f"{name}/{main_figure}_tta_d4", None, augmented[main_figure], run.parent / f"{name}_tta_d4"),
                    (f"{name}/{second_figure}", None, metrics[second_figure], run),
                    (f"{name}/{second_figure}_tta_d4", None, augmented[second_figure], run.parent / f"{name}_tta_d4"),
                    (f"{name}/parameters", None, float(num_parameters), run),
                    (f"{name}/train_seconds", None, float(timings.get(name, float("nan"))), run),
                    (f"{name}/inference_images_per_s", None, images_per_second, run)]
    report(row, results, out, started, args)
    if failures:
        raise SystemExit(f"{len(failures)} architecture(s) failed: {failures}")


if __name__ == "__main__":
    main()
