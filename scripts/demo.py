#!/usr/bin/env python
"""The main job (`make demo`): on a fresh CPU machine, in minutes, every lens-hf workflow end to end.

1. simulates a small Model II 3-class set (axion / cdm / no_sub, published DeepLenseSim physics), an axion-only
   regression set and super-resolution pairs with the built-in simulator (cached: a rerun reuses them);
2. pretrains a LensMAE masked autoencoder on the Model II images;
3. linear-probes and finetunes it as a substructure classifier, finetunes it as an axion-mass regressor,
   and trains a super-resolution head on its encoder;
4. evaluates each on its held-out test split and prints one results table (task, metric, value, baseline) with
   the folder of every run: each loads with `from_pretrained` and carries its model card, metrics and plots.

Every stage is one of the real scripts, run as a subprocess with the command line printed, so any line of the
demo can be rerun, scaled up (`--num_train`, `--max_steps`, `accelerate launch ...`) or pointed at real data.

    python scripts/demo.py                     # ~6 minutes on 2 CPU cores with bf16 (measured 5 min 58 s; fp32: 11 min 21 s)
    python scripts/demo.py --smoke             # tiny sizes (CI, < 2 minutes)
    python scripts/demo.py --resume            # after an interruption: finished stages are not trained again
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from lens_hf.scripts.stages import references, run_stage, stage_environment, summary
from lens_hf.training import parse_arguments
from lens_hf.training.accelerator import native_bf16

# Model II images are 64 px with the lensed ring within the central ~32 px: the demo crops there (patch 4 -> 64
# tokens), standardises with training-split statistics and uses a BatchNorm head, which is what lets a small ViT
# pick up the sub-pixel ring changes that separate the classes within a few CPU minutes (README, "The demo").
SHARED = ["--crop_size", "32", "--normalization", "standardize"]
SR_GEOMETRY = ("preset_overrides.image_size=32,preset_overrides.pixel_scale=0.1171875,"
               "preset_overrides.hr_image_size=64,preset_overrides.hr_pixel_scale=0.05859375")

PROFILES = {
    "full": dict(model_preset="small", num_train=3000, num_validation=300, num_test=600, regression_train=3000,
                 sr_train=1000, batch_size=64, pretrain_steps=300, finetune_steps=600,
                 regression_steps=400, sr_steps=150),
    "smoke": dict(model_preset="tiny", num_train=600, num_validation=120, num_test=300, regression_train=300,
                  sr_train=96, batch_size=32, pretrain_steps=30, finetune_steps=400,
                  regression_steps=30, sr_steps=10),
}


@dataclass
class DemoArguments:
    output_dir: str = field(default="demo_output", metadata={"help": "Where runs and the data cache go."})
    smoke: bool = field(default=False, metadata={"help": "Tiny sizes (CI smoke test, < 2 minutes)."})
    seed: int = field(default=0, metadata={"help": "Seed of the simulated data and of training."})
    threads: int = field(default=0, metadata={"help": "torch threads per run (0: all cores, at most 4)."})
    mixed_precision: str = field(default="auto", metadata={
        "help": "auto | no | bf16 for the training stages. auto: bf16 autocast where the hardware computes bf16 "
                "natively (AVX512-BF16/AMX CPUs, bf16 GPUs), where it makes training 2-3x faster; fp32 elsewhere, where "
                "bf16 would be emulated and slower. The linear probe always fits on fp32 features."})
    resume: bool = field(default=False, metadata={"help": "Reuse the stages an interrupted demo finished with the "
                                                        "same command (its data cache is reused in any case)."})
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "Train every stage again, replacing the runs an earlier demo left in --output_dir. Without it (or "
                "--resume) a folder that holds an earlier demo's runs is an error: finished runs are never replaced "
                "silently."})


def main(argv=None) -> dict:
    (demo,) = parse_arguments((DemoArguments,), argv)
    profile = PROFILES["smoke" if demo.smoke else "full"]
    out = Path(demo.output_dir).resolve()
    cache = out / "cache"
    threads = demo.threads or min(os.cpu_count() or 1, 4)
    env = stage_environment(threads)
    batch = profile["batch_size"]
    if demo.mixed_precision not in ("auto", "no", "bf16"):
        raise ValueError(f"--mixed_precision must be auto, no or bf16, got {demo.mixed_precision!r}")
    precision = demo.mixed_precision if demo.mixed_precision != "auto" else ("bf16" if native_bf16() else "no")
    trained = ["--mixed_precision", precision]  # the stages that train a network by gradient descent
    earlier = sorted(p.name for p in out.glob("*/run_config.json")) if out.is_dir() else []
    if earlier and not (demo.resume or demo.overwrite_output_dir):
        raise ValueError(f"{out} holds the runs of an earlier demo: pass --resume true to reuse the stages it finished "
                         "(`make demo` does), --overwrite_output_dir true to train them all again, or another "
                         "--output_dir")
    common = ["--cache_dir", cache, "--dataset_seed", demo.seed, "--seed", demo.seed, "--report_to", "tensorboard",
              "--per_device_train_batch_size", batch, "--save_steps", 0, "--logging_steps", 10,
              "--eval_steps", 100,  # each evaluation re-estimates BatchNorm statistics (~5 s): not every epoch
              "--overwrite_output_dir", demo.overwrite_output_dir]
    classes = ["--dataset_name", "deeplense_sim", "--dataset_config", "model_ii", "--num_train", profile["num_train"],
               "--num_validation", profile["num_validation"], "--num_test", profile["num_test"]]
    timings: list = []
    started = time.time()

    stage = partial(run_stage, env=env, timings=timings, reuse_finished=demo.resume)

    pretrain = stage("1/5 MAE pretraining on Model II images", "pretrain_mae.py", [
        *classes, *common, *SHARED, "--model_preset", profile["model_preset"], "--patch_size", 4,
        "--max_steps", profile["pretrain_steps"], "--learning_rate", 1.5e-3, *trained, "--output_dir", out / "lens-mae"])
    probe = stage("2/5 linear probe (frozen encoder, head fitted by L-BFGS)", "finetune.py", [
        *classes, *common, *SHARED, "--task", "classification", "--mode", "linear_probe", "--probe_solver", "lbfgs",
        "--model_name_or_path", pretrain, "--output_dir", out / "lens-mae-probe"])
    finetune = stage("3/5 finetuned classifier (layer-wise lr decay)", "finetune.py", [
        *classes, *common, *SHARED, "--task", "classification", "--mode", "finetune", "--model_name_or_path", pretrain,
        "--classifier_head_norm", "batchnorm", "--max_steps", profile["finetune_steps"], "--learning_rate", 1e-3,
        "--layer_decay", 0.9, *trained, "--output_dir", out / "lens-mae-classifier"])
    regression = stage("4/5 axion-mass regressor", "finetune.py", [
        "--dataset_name", "deeplense_sim", "--dataset_config", "regression_model_ii",
        "--num_train", profile["regression_train"], "--num_validation", profile["num_validation"],
        "--num_test", profile["num_test"], *common, *SHARED, "--task", "regression", "--mode", "finetune",
        "--model_name_or_path", pretrain, "--classifier_head_norm", "batchnorm", "--max_steps",
        profile["regression_steps"], "--learning_rate", 1e-3, "--layer_decay", 0.9, *trained,
        "--output_dir", out / "lens-mae-regressor"])
    sr = stage("5/5 super-resolution 32 -> 64 px from the pretrained encoder", "train_sr.py", [
        "--dataset_name", "deeplense_sim", "--dataset_config", "sr_pairs", "--dataset_overrides", SR_GEOMETRY,
        "--num_train", profile["sr_train"], "--num_validation", max(8, profile["num_validation"] // 4),
        "--num_test", max(16, profile["num_test"] // 4), *common, "--model_name_or_path", pretrain,
        "--max_steps", profile["sr_steps"], "--learning_rate", 1e-3, *trained, "--output_dir", out / "lens-mae-sr"])

    pre, prb, fin, reg, srm = (summary(pretrain), summary(probe), summary(finetune), summary(regression), summary(sr))
    bicubic = references(sr)["bicubic upsampling (test)"]
    rows = [
        ("MAE pretraining", "masked-patch MSE (test)", pre["masked_mse"], f"train split {summary(pretrain, 'train')['masked_mse']:.4f}", pretrain),
        ("linear probe", "accuracy (test)", prb["accuracy"], "chance 0.333", probe),
        ("linear probe", "ROC AUC micro (test)", prb["roc_auc_micro"], "chance 0.5; DeepLense probe 0.58", probe),
        ("finetuned classifier", "accuracy (test)", fin["accuracy"], "chance 0.333", finetune),
        ("finetuned classifier", "ROC AUC micro (test)", fin["roc_auc_micro"], "chance 0.5", finetune),
        ("axion-mass regressor", "MAE, dex (test)", reg["mae"], "predict-the-mean 0.50 (prior U(-24,-22))", regression),
        ("super-resolution", "PSNR, dB (test)", srm["psnr"], f"bicubic {bicubic['psnr']:.2f}", sr),
        ("super-resolution", "SSIM (test)", srm["ssim"], f"bicubic {bicubic['ssim']:.3f}", sr),
    ]
    print("\n" + "=" * 100)
    print(f"lens-hf demo ({'smoke' if demo.smoke else 'full'} profile) finished in {time.time() - started:.0f} s; "
          f"data cache: {cache}")
    print(f"{'task':<22} {'metric':<24} {'value':>9}   {'baseline':<34} run folder")
    for task, metric, value, baseline, folder in rows:
        print(f"{task:<22} {metric:<24} {value:>9.4f}   {baseline:<34} {folder.relative_to(out.parent) if out.parent in folder.parents else folder}")
    print("Each run folder loads with from_pretrained and holds README.md (model card), metrics.json, plots/*.png.")
    print("Stage times: " + ", ".join(f"{name.split()[0]} {seconds:.0f}s" for name, seconds in timings))
    results = {"profile": "smoke" if demo.smoke else "full", "seconds": time.time() - started,
               # run folders relative to --output_dir: the file names no folder of the machine that wrote it
               "rows": [dict(task=t, metric=m, value=v, baseline=b, folder=Path(f).relative_to(out).as_posix())
                        for t, m, v, b, f in rows]}
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    from lens_hf.scripts.console import run

    run(main)
