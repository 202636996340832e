"""Quality row: label efficiency. Does self-supervised pretraining on unlabelled images beat training from scratch
when only a few labels exist? Substructure classification (axion / cdm / no_sub) on simulated Model II or III.

    python benchmarks/quality_label_efficiency.py --model model_ii --size cpu --resume    # < 75 min, 2 CPU cores
    python benchmarks/quality_label_efficiency.py --model model_ii --size full            # GPU
    python benchmarks/quality_label_efficiency.py --size smoke                            # wiring only (CI)

The protocol, written down so anyone can re-run it:

- Data: `deeplense_sim` (`--model`), simulated with `--seed`; one unlabelled pool (the train split: 20,000 images at
  cpu size) on which every pretraining runs with its labels unused; a fixed validation split (300 at cpu size:
  only the L-BFGS probes and the pixel regression read it, to choose their L2 strength) and a fixed test split
  (1,500) that every figure is measured on. Images centre-cropped to the lensed ring (32 px for Model II, 40 px
  for Model III) and standardised.
- Labelled subsets: 10, 100 and 1,000 labelled images per class, and all of the pool. The subset of (k, seed s) is
  `lens_hf.data.splits.labelled_subset_indices(train labels, k, s)` (`finetune.py --labels_per_class k
  --subset_seed s`): per class, the first k rows of a permutation drawn by numpy's default_rng(s). Subsets of at
  most 100 per class are repeated over seeds 0, 1, 2 (different subsets and initialisations) and reported as
  mean +- sd; larger ones once.
- Pretraining, once per run on the pool: MAE (LensMAE, patch 4, mask 0.75), SimCLR with a ResNet-18 encoder and
  SimCLR with a LensMAE encoder (`pretrain_contrastive.py`: D4, sub-pixel shifts, PSF-width and noise jitter,
  flux scaling; NT-Xent, temperature 0.2).
- Methods, each on the same subsets: logistic regression on the pixels; ResNet-18 from scratch; LensMAE from
  scratch; MAE linear probe (L-BFGS head), MAE finetune, MAE LoRA (rank 8 on qkv/proj/fc1/fc2), all three on the
  first block of the pretrained encoder (`MAE_DOWNSTREAM`); SimCLR-ResNet-18 linear probe and finetune;
  SimCLR-LensMAE linear probe.
- Steps of every gradient-trained method scale with the subset: ceil(epochs x labelled images / batch) clamped to
  [min, max] (`STEPS` below: 30 epochs within [100, 500] at cpu size), batch min(64, labelled images).

Outputs (`--output_dir`): quality_label_efficiency_<model>.json (every figure, per seed, with run folders relative
to the output folder), label_efficiency_<model>.png (accuracy and macro AUC vs labels per class, log x, error bars),
and one printed line per figure, the targets with ok/below.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from quality_classification import GEOMETRY
from quality_common import relative_folder, setup

from lens_hf.scripts.stages import summary

SIZES = {
    "smoke": dict(n=(240, 30, 60), per_class=(2,), seeds=2, preset="tiny", batch=16, mae=3, simclr=3, simclr_vit=2),
    "cpu": dict(n=(20000, 300, 1500), per_class=(10, 100, 1000), seeds=3, preset="small", batch=64, mae=3000,
                simclr=2000, simclr_vit=600),
    "full": dict(n=(100000, 3000, 5000), per_class=(10, 100, 1000), seeds=5, preset="base", batch=256, mae=20000,
                 simclr=20000, simclr_vit=10000),
}
# Gradient steps of a downstream run: ceil(epochs * labelled / batch) clamped to [low, high].
STEPS = {"smoke": dict(epochs=1, low=2, high=3), "cpu": dict(epochs=30, low=100, high=500),
         "full": dict(epochs=50, low=300, high=5000)}
REPEATED_UP_TO = 100  # subsets of at most this many labels per class are repeated over seeds
# The MAE methods read the pretrained encoder's first block only (the later blocks are dropped at load): on the cpu
# pool its block-1 features hold the most class information (benchmarks/probe_features.py --labels_per_class 100:
# 0.861 after block 1, 0.775 after block 6; BENCHMARKS.md, "Label efficiency"). `--mae_downstream_args` comes
# after it, so '--config_overrides num_hidden_layers=6' gives back the whole encoder.
MAE_DOWNSTREAM = ["--config_overrides", "num_hidden_layers=1"]
# Learning rates (AdamW peak, absolute): the classification benchmark's, LoRA's larger (few trained weights).
LR = {"scratch": 1e-3, "finetune": 1e-3, "lora": 2e-3, "simclr": 1e-3, "simclr_vit": 5e-4, "mae": 1.5e-3}
METHODS = ("pixel_logistic_regression", "resnet18_scratch", "lens_mae_scratch", "mae_linear_probe", "mae_finetune",
           "mae_lora", "simclr_resnet18_linear_probe", "simclr_resnet18_finetune", "simclr_lens_mae_linear_probe")
SELF_SUPERVISED = ("mae_linear_probe", "mae_finetune", "mae_lora", "simclr_resnet18_linear_probe",
                   "simclr_resnet18_finetune", "simclr_lens_mae_linear_probe")
FROM_SCRATCH_NETWORKS = ("resnet18_scratch", "lens_mae_scratch")
# The closest packaged peer (a JEPA ViT with LoRA adapters) on the released Model II files: accuracy by labels per
# class. Theirs are on the released data; ours on our simulation of the same recipe.
PEER = {"full finetune": {100: 0.485, 500: 0.719, 1000: 0.808, 5000: 0.898},
        "rsLoRA": {100: 0.482, 500: 0.719, 1000: 0.797, 5000: 0.899}}
TARGET_ACCURACY_AT_100 = 0.90
TARGET_MARGIN_AT_100 = 0.10
CHANCE = 1 / 3


@dataclass
class LabelEfficiencyArguments:
    model: str = field(default="model_ii", metadata={"help": "model_ii | model_iii."})
    methods: Optional[str] = field(default=None, metadata={"help": "Ablations: only these methods (comma-separated; "
                                                           "default all). Only the pretrainings they need run."})
    per_class: Optional[str] = field(default=None, metadata={"help": "Ablations: only these labels-per-class subsets "
                                                             "(comma-separated integers; 'all' for the whole pool)."})
    mae_args: str = field(default="", metadata={"help": "Ablations: extra pretrain_mae.py arguments, e.g. "
                                                "'--mask_ratio 0.9'."})
    simclr_args: str = field(default="", metadata={"help": "Ablations: extra arguments of the SimCLR ResNet-18 "
                                                   "pretraining, e.g. '--max_noise 0 --max_blur_sigma 0'."})
    simclr_vit_args: str = field(default="", metadata={"help": "Ablations: extra arguments of the SimCLR LensMAE "
                                                       "pretraining."})
    mae_model: Optional[str] = field(default=None, metadata={"help": "Ablations of the downstream recipe: start the "
                                                             "MAE methods from this finished pretraining folder "
                                                             "instead of pretraining again."})
    mae_downstream_args: str = field(default="", metadata={"help": "Ablations: extra finetune.py arguments of the MAE "
                                                           "probe / finetune / LoRA, e.g. '--config_overrides "
                                                           "num_hidden_layers=1' (only the first block)."})

    def __post_init__(self):
        if self.model not in ("model_ii", "model_iii"):
            raise ValueError(f"--model must be model_ii or model_iii, got {self.model!r}")
        unknown = sorted(set(self.selected_methods()) - set(METHODS))
        if unknown:
            raise ValueError(f"--methods: unknown {unknown}; the methods are {', '.join(METHODS)}")

    def selected_methods(self) -> tuple:
        return tuple(m.strip() for m in self.methods.split(",") if m.strip()) if self.methods else METHODS

    def selected_subsets(self, all_subsets: list) -> list:
        if not self.per_class:
            return all_subsets
        wanted = {None if w.strip() == "all" else int(w) for w in self.per_class.split(",") if w.strip()}
        return [(k, seed) for k, seed in all_subsets if k in wanted]


def downstream_steps(size: str, labelled: int, batch: int) -> int:
    rule = STEPS[size]
    return int(min(rule["high"], max(rule["low"], math.ceil(rule["epochs"] * labelled / batch))))


def subsets(size: dict) -> list[tuple[int | None, int]]:
    """(labels per class or None for all, seed) of every labelled subset."""
    chosen = [(k, seed) for k in size["per_class"] for seed in range(size["seeds"] if k <= REPEATED_UP_TO else 1)]
    return chosen + [(None, 0)]


def pixel_logistic_regression(processor_folder, data_args: dict, per_class, seed: int) -> dict:
    """Logistic regression on the processed (cropped, standardised) pixels of the same labelled subset, L2 chosen
    on the validation split (benchmarks/probe_features.py's protocol)."""
    from probe_features import logistic_regression_metrics, processed_splits
    from transformers import AutoImageProcessor

    from lens_hf.data import load_builder
    from lens_hf.data.splits import labelled_subset_indices

    dataset = load_builder("deeplense_sim", data_args["config"], seed=data_args["seed"], cache_dir=data_args["cache"],
                           n_train=data_args["n"][0], n_validation=data_args["n"][1], n_test=data_args["n"][2])
    if per_class is not None:
        dataset["train"] = dataset["train"].select(labelled_subset_indices(dataset["train"]["label"], per_class, seed))
    splits = processed_splits(dataset, AutoImageProcessor.from_pretrained(processor_folder))
    return logistic_regression_metrics(*[(pixels.flatten(1).numpy(), labels) for pixels, labels in splits],
                                       dataset["train"].features["label"].names)


def aggregate(values: list[float]) -> dict:
    array = np.asarray(values, dtype=float)
    return {"mean": float(array.mean()), "sd": float(array.std(ddof=1)) if len(array) > 1 else 0.0,
            "values": [float(v) for v in array]}


def plot(results: dict, pool_per_class: float, path: Path, title: str) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.2), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2)
    from matplotlib import colormaps

    colours = colormaps["tab20"].colors
    for axis, metric, name in ((axes[0], "accuracy", "test accuracy"), (axes[1], "roc_auc_macro", "test macro AUC")):
        for index, (method, by_subset) in enumerate(results.items()):
            xs = [pool_per_class if key == "all" else int(key) for key in by_subset]
            means = [by_subset[key][metric]["mean"] for key in by_subset]
            sds = [by_subset[key][metric]["sd"] for key in by_subset]
            style = "-" if method in SELF_SUPERVISED else "--"
            axis.errorbar(xs, means, yerr=sds, fmt="o" + style, capsize=3, markersize=4, linewidth=1, label=method,
                          color=colours[(2 * index) % 20 + (2 * index // 20) % 2])
        if metric == "accuracy":
            for label, figures in PEER.items():
                axis.plot(list(figures), list(figures.values()), "k:" if label == "rsLoRA" else "k-.", linewidth=1,
                          label=f"peer JEPA ViT, {label} (released data)")
            axis.axhline(CHANCE, color="grey", linewidth=0.6)
        axis.set_xscale("log")
        axis.set_xlabel("labelled images per class")
        axis.set_ylabel(name)
        axis.grid(alpha=0.3)
    axes[0].set_title(title, fontsize=9)
    axes[1].legend(fontsize=6, loc="lower right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def main(argv=None):
    (args, options), out, stage, common = setup((LabelEfficiencyArguments,), argv)
    import torch

    torch.set_num_threads(args.threads or min(os.cpu_count() or 1, 8))
    size, geometry = SIZES[args.size], GEOMETRY[options.model]
    started = time.time()
    folder = out / options.model
    data = ["--dataset_name", "deeplense_sim", "--dataset_config", options.model, "--num_train", size["n"][0],
            "--num_validation", size["n"][1], "--num_test", size["n"][2], "--crop_size", geometry["crop"],
            "--normalization", "standardize", "--disable_progress_bar", "true", "--report_to", "none", *common]
    pool = [*data, "--per_device_train_batch_size", size["batch"]]
    patch = geometry["patch"]

    def run(title, script, arguments):
        return stage(title, script, arguments, in_process=True)

    methods = options.selected_methods()
    needs = lambda *names: any(m in methods for m in names)  # noqa: E731
    mae = simclr = simclr_vit = None
    if options.mae_model:
        mae = Path(options.mae_model).resolve()
        if not (mae / "metrics.json").exists():
            raise SystemExit(f"--mae_model {mae} is not a finished pretraining run folder (no metrics.json)")
    elif needs("mae_linear_probe", "mae_finetune", "mae_lora", "pixel_logistic_regression"):  # pixels: its processor
        mae = run("MAE pretraining (pool)", "pretrain_mae.py", [
            *pool, "--model_preset", size["preset"], "--patch_size", patch, "--max_steps", size["mae"],
            "--learning_rate", LR["mae"], *shlex.split(options.mae_args), "--output_dir", folder / "pretrain_mae"])
    if needs("simclr_resnet18_linear_probe", "simclr_resnet18_finetune"):
        simclr = run("SimCLR ResNet-18 pretraining (pool)", "pretrain_contrastive.py", [
            *pool, "--backbone", "resnet18", "--max_steps", size["simclr"], "--learning_rate", LR["simclr"],
            *shlex.split(options.simclr_args), "--output_dir", folder / "pretrain_simclr_resnet18"])
    if needs("simclr_lens_mae_linear_probe"):
        simclr_vit = run("SimCLR LensMAE pretraining (pool)", "pretrain_contrastive.py", [
            *pool, "--backbone", "lens_mae", "--model_preset", size["preset"], "--patch_size", patch, "--max_steps",
            size["simclr_vit"], "--learning_rate", LR["simclr_vit"], *shlex.split(options.simclr_vit_args),
            "--output_dir", folder / "pretrain_simclr_lens_mae"])

    trained = {  # method -> finetune.py arguments (besides data, subset, steps, output)
        "resnet18_scratch": ["--architecture", "resnet18", "--mode", "scratch", "--learning_rate", LR["scratch"]],
        "lens_mae_scratch": ["--mode", "scratch", "--model_preset", size["preset"], "--config_overrides",
                             f"patch_size={patch}", "--classifier_head_norm", "batchnorm", "--learning_rate",
                             LR["scratch"]],
        "mae_linear_probe": ["--mode", "linear_probe", "--probe_solver", "lbfgs", "--model_name_or_path", mae],
        "mae_finetune": ["--mode", "finetune", "--model_name_or_path", mae, "--classifier_head_norm", "batchnorm",
                         "--learning_rate", LR["finetune"], "--layer_decay", 0.9],
        "mae_lora": ["--mode", "lora", "--model_name_or_path", mae, "--classifier_head_norm", "batchnorm",
                     "--learning_rate", LR["lora"]],
        "simclr_resnet18_linear_probe": ["--architecture", "resnet18", "--mode", "linear_probe", "--probe_solver",
                                         "lbfgs", "--model_name_or_path", simclr],
        "simclr_resnet18_finetune": ["--architecture", "resnet18", "--mode", "finetune", "--model_name_or_path",
                                     simclr, "--learning_rate", LR["finetune"]],
        "simclr_lens_mae_linear_probe": ["--mode", "linear_probe", "--probe_solver", "lbfgs", "--model_name_or_path",
                                         simclr_vit],
    }
    per_seed: dict[str, dict[str, list]] = {method: {} for method in methods}
    folders: dict[str, dict[str, list]] = {method: {} for method in methods}
    steps_used: dict[str, int] = {}
    data_spec = {"config": options.model, "seed": args.seed, "cache": str(out / "cache"), "n": size["n"]}
    for method in ("mae_linear_probe", "mae_finetune", "mae_lora"):
        trained[method] = [*trained[method], *MAE_DOWNSTREAM, *shlex.split(options.mae_downstream_args)]
    trained = {method: extra for method, extra in trained.items() if method in methods}
    for per_class, seed in options.selected_subsets(subsets(size)):
        key = "all" if per_class is None else str(per_class)
        labelled = size["n"][0] if per_class is None else 3 * per_class
        batch = min(size["batch"], labelled)
        steps = downstream_steps(args.size, labelled, batch)
        steps_used[key] = steps
        subset = [] if per_class is None else ["--labels_per_class", per_class, "--subset_seed", seed]
        # the initialisation and data order follow the subset's seed too (the base --seed is the data's)
        downstream = [*without_seed(data), *subset, "--seed", args.seed + seed, "--per_device_train_batch_size", batch,
                      "--max_steps", steps, "--eval_steps", steps, "--task", "classification"]
        for method, extra in trained.items():
            run_dir = folder / f"{method}" / f"{key}_per_class_seed{seed}"
            done = run(f"{method}, {key} labels per class, seed {seed}", "finetune.py",
                       [*downstream, *extra, "--output_dir", run_dir])
            metrics = summary(done)
            per_seed[method].setdefault(key, []).append(metrics)
            folders[method].setdefault(key, []).append(relative_folder(done, out))
        if "pixel_logistic_regression" in methods:
            pixels = pixel_logistic_regression(mae, data_spec, per_class, seed)
            per_seed["pixel_logistic_regression"].setdefault(key, []).append(pixels)
            folders["pixel_logistic_regression"].setdefault(key, []).append("in-process (scikit-learn)")

    results = {method: {key: {metric: aggregate([m[metric] for m in runs]) for metric in ("accuracy", "roc_auc_macro")}
                        for key, runs in by_key.items()} for method, by_key in per_seed.items()}
    device = "GPU " + torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    seconds = time.time() - started
    print(f"\n# label_efficiency_{options.model}: size={args.size}, seed={args.seed}, {device}, {seconds:.0f} s")
    for method in methods:
        for key, figures in results[method].items():
            accuracy, auc = figures["accuracy"], figures["roc_auc_macro"]
            print(f"label_efficiency_{options.model}/{method}/{key}_per_class accuracy {accuracy['mean']:.4f} "
                  f"+- {accuracy['sd']:.4f}, macro AUC {auc['mean']:.4f} +- {auc['sd']:.4f} "
                  f"(n={len(accuracy['values'])})")
    verdicts = targets(results)
    for line in verdicts["lines"]:
        print(line)
    pool_per_class = size["n"][0] / 3
    png = plot(results, pool_per_class, out / f"label_efficiency_{options.model}.png",
               f"{options.model}, {args.size} size: pool {size['n'][0]}, test {size['n'][2]} (seed {args.seed})")
    record = {
        "row": f"label_efficiency_{options.model}", "size": args.size, "seed": args.seed, "device": device,
        "seconds": seconds, "model": options.model,
        "protocol": {"pool": size["n"][0], "validation": size["n"][1], "test": size["n"][2],
                     "crop": geometry["crop"], "patch": patch, "preset": size["preset"],
                     "labels_per_class": [*size["per_class"], "all"], "seeds_up_to_100_per_class": size["seeds"],
                     "subset_rule": "lens_hf.data.splits.labelled_subset_indices(train labels, k, seed)",
                     "steps_rule": STEPS[args.size], "steps": steps_used, "batch": size["batch"],
                     "pretraining_steps": {"mae": size["mae"], "simclr_resnet18": size["simclr"],
                                           "simclr_lens_mae": size["simclr_vit"]},
                     "learning_rates": LR},
        "pretraining": {name: relative_folder(path, out) for name, path in
                        (("mae", mae), ("simclr_resnet18", simclr), ("simclr_lens_mae", simclr_vit)) if path},
        "ablation": {"methods": list(methods), "per_class": options.per_class, "mae_args": options.mae_args,
                     "mae_model": relative_folder(mae, out) if options.mae_model else None,
                     "mae_downstream_args": options.mae_downstream_args,
                     "simclr_args": options.simclr_args, "simclr_vit_args": options.simclr_vit_args},
        "results": results, "per_seed": {m: {k: [scalar(r) for r in v] for k, v in by.items()}
                                         for m, by in per_seed.items()},
        "folders": folders, "targets": verdicts["figures"], "peer": {k: {str(n): v for n, v in f.items()}
                                                                     for k, f in PEER.items()},
        "plot": relative_folder(png, out),
    }
    path = out / f"quality_label_efficiency_{options.model}.json"
    path.write_text(json.dumps(record, indent=2))
    print(f"# saved {path} and {png}")
    return record


def without_seed(words: list) -> list:
    """`words` without its `--seed <value>` pair (a downstream run sets its own)."""
    kept, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word == "--seed":
            skip = True
        else:
            kept.append(word)
    return kept


def scalar(metrics: dict) -> dict:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def targets(results: dict) -> dict:
    """The issue's targets, each with ok/below: at 100 labels per class the best self-supervised method reaches
    0.90 accuracy and is >= 0.10 above the best network trained from scratch on the same labels; at 10 per class it
    is clearly above chance (mean - 2 sd > 1/3)."""
    lines, figures = [], {}

    def best(methods, key):
        present = [(results[m][key]["accuracy"]["mean"], m) for m in methods if key in results.get(m, {})]
        return max(present) if present else (float("nan"), None)

    has = lambda key: any(key in by_key for by_key in results.values())  # noqa: E731
    if has("100") and any(m in results for m in SELF_SUPERVISED) and any(m in results for m in FROM_SCRATCH_NETWORKS):
        ssl, ssl_method = best(SELF_SUPERVISED, "100")
        scratch, scratch_method = best(FROM_SCRATCH_NETWORKS, "100")
        figures["best_ssl_accuracy_at_100"] = {"value": ssl, "method": ssl_method, "target": TARGET_ACCURACY_AT_100}
        figures["ssl_minus_scratch_at_100"] = {"value": ssl - scratch, "ssl": ssl_method, "scratch": scratch_method,
                                               "target": TARGET_MARGIN_AT_100}
        lines.append(f"target: best self-supervised accuracy at 100/class {ssl:.4f} ({ssl_method})  "
                     f"[target >= {TARGET_ACCURACY_AT_100}]  {'ok' if ssl >= TARGET_ACCURACY_AT_100 else 'below'}")
        lines.append(f"target: best self-supervised minus best from-scratch network at 100/class {ssl - scratch:+.4f} "
                     f"({ssl_method} vs {scratch_method})  [target >= +{TARGET_MARGIN_AT_100}]  "
                     f"{'ok' if ssl - scratch >= TARGET_MARGIN_AT_100 else 'below'}")
    else:
        lines.append("target: accuracy at 100/class (>= 0.90, >= +0.10 over from scratch): not measured at this size")
    if has("10") and any(m in results for m in SELF_SUPERVISED):
        ssl, ssl_method = best(SELF_SUPERVISED, "10")
        sd = results[ssl_method]["10"]["accuracy"]["sd"]
        figures["best_ssl_accuracy_at_10"] = {"value": ssl, "sd": sd, "method": ssl_method, "chance": CHANCE}
        lines.append(f"target: best self-supervised accuracy at 10/class {ssl:.4f} +- {sd:.4f} ({ssl_method})  "
                     f"[target: mean - 2 sd > chance {CHANCE:.3f}]  {'ok' if ssl - 2 * sd > CHANCE else 'below'}")
    else:
        lines.append("target: accuracy at 10/class clearly above chance: not measured at this size")
    return {"lines": lines, "figures": figures}


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
