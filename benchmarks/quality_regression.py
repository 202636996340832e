"""Quality row: axion-mass regression, log10(m / eV), on simulated axion images of Model I, II or III.

LensMAE pretrained on the classification images, then finetuned as a regressor (MAE / RMSE in dex). Published:
0.28 / 0.22 / 0.13 dex (ResNet34) on Models I / II / III; target here: Model III ≤ 0.10 dex.

    python benchmarks/quality_regression.py --model model_iii --size cpu
"""

import time
from dataclasses import dataclass, field

from quality_classification import GEOMETRY, SIZES
from quality_common import report, setup

from lens_hf.scripts.stages import summary


@dataclass
class RegressionArguments:
    model: str = field(default="model_iii", metadata={"help": "model_i | model_ii | model_iii."})


def main(argv=None):
    (args, task), out, stage, common = setup((RegressionArguments,), argv)
    size, geometry = SIZES[args.size], GEOMETRY[task.model]
    started = time.time()
    shared = ["--crop_size", geometry["crop"], "--normalization", "standardize", "--per_device_train_batch_size",
              size["batch"], "--num_validation", size["n"][1], "--num_test", size["n"][2], *common]
    folder = out / f"regression_{task.model}"
    pre = stage("MAE pretraining", "pretrain_mae.py", [
        "--dataset_name", "deeplense_sim", "--dataset_config", task.model, "--num_train", size["n"][0], *shared,
        "--model_preset", size["preset"], "--patch_size", geometry["patch"], "--max_steps", size["pretrain"],
        "--learning_rate", 1.5e-3, "--output_dir", folder / "mae"])
    reg = stage("MAE finetuned regressor", "finetune.py", [
        "--dataset_name", "deeplense_sim", "--dataset_config", f"regression_{task.model}", "--num_train",
        size["n"][0], *shared, "--task", "regression", "--mode", "finetune", "--model_name_or_path", pre,
        "--classifier_head_norm", "batchnorm", "--max_steps", size["finetune"], "--learning_rate", 1e-3,
        "--layer_decay", 0.9, "--output_dir", folder / "regressor"])
    metrics = summary(reg)
    report(f"regression_{task.model}", [
        ("mae_dex", (f"regression_{task.model}", "mae"), metrics["mae"], reg),
        ("rmse_dex", None, metrics["rmse"], reg),
        ("bias_dex", None, metrics["bias"], reg),
    ], out, started, args)


if __name__ == "__main__":
    main()
