"""Quality row: lens finding (lens vs non-lens, 3 bands, 10% lenses) on the simulator's lens_finding preset.

LensMAE from scratch with inverse-frequency loss weights, and the ResNet-18 baseline; ROC AUC, average precision,
TPR at FPR 1e-2 / 1e-3. Published (Bologna space set, real-like data, not the same images): AUC 0.97.

    python benchmarks/quality_lens_finding.py --size cpu
"""

import time

from quality_common import report, setup

from lens_hf.scripts.stages import summary

SIZES = {"smoke": dict(n=(64, 16, 32), preset="tiny", batch=16, pretrain=3, train=3, steps=3),
         "cpu": dict(n=(4000, 1000, 2000), preset="small", batch=64, steps=500),
         "full": dict(n=(50000, 5000, 20000), preset="base", batch=256, steps=10000)}


def main(argv=None):
    (args,), out, stage, common = setup((), argv)
    size = SIZES[args.size]
    started = time.time()
    data = ["--dataset_name", "deeplense_sim", "--dataset_config", "lens_finding", "--num_train", size["n"][0],
            "--num_validation", size["n"][1], "--num_test", size["n"][2], "--per_device_train_batch_size",
            size["batch"], "--normalization", "standardize", "--task", "lens_finding", "--mode", "scratch",
            "--imbalance", "loss_weights", "--max_steps", size["steps"], "--learning_rate", 1e-3, *common]
    folder = out / "lens_finding"
    vit = stage("LensMAE from scratch", "finetune.py", [*data, "--model_preset", size["preset"],
                    "--classifier_head_norm", "batchnorm", "--output_dir", folder / "lens_mae"])
    resnet = stage("ResNet-18 baseline", "finetune.py", [*data, "--architecture", "resnet18",
                       "--output_dir", folder / "resnet18"])
    results = []
    for name, run in (("lens_mae", vit), ("resnet18", resnet)):
        metrics = summary(run)
        results += [(f"{name}/roc_auc", ("lens_finding", "roc_auc"), metrics["roc_auc"], run),
                    (f"{name}/average_precision", None, metrics["average_precision"], run),
                    (f"{name}/tpr_at_fpr_1e-2", None, metrics["tpr_at_fpr_1e-2"], run),
                    (f"{name}/tpr_at_fpr_1e-3", None, metrics["tpr_at_fpr_1e-3"], run)]
    report("lens_finding", results, out, started, args)


if __name__ == "__main__":
    main()
