"""Quality row: super-resolution 75 -> 150 px (sr_pairs: LR 0.05"/px with Model I noise, HR 0.025"/px noiseless).

LensMAE pretrained on the LR images (patch 5), then the sub-pixel head trained on its encoder; PSNR / SSIM / MSE
beside bicubic upsampling. Published: PSNR 33.66 dB, SSIM 0.968, MSE 4.2e-4; target here: PSNR ≥ 35 dB.

    python benchmarks/quality_super_resolution.py --size cpu
"""

import time

from quality_common import report, setup

from lens_hf.scripts.stages import references, summary

SIZES = {"smoke": dict(n=(64, 16, 32), preset="tiny", batch=16, pretrain=3, train=3, steps=3),
         "cpu": dict(n=(2000, 200, 400), preset="small", batch=32, pretrain=300, train=300),
         "full": dict(n=(20000, 1000, 2000), preset="base", batch=128, pretrain=20000, train=10000)}


def main(argv=None):
    (args,), out, stage, common = setup((), argv)
    size = SIZES[args.size]
    started = time.time()
    data = ["--dataset_name", "deeplense_sim", "--dataset_config", "sr_pairs", "--num_train", size["n"][0],
            "--num_validation", size["n"][1], "--num_test", size["n"][2], "--per_device_train_batch_size",
            size["batch"], *common]
    folder = out / "super_resolution"
    # the encoder is pretrained on Model I images at the LR geometry (75 px, 0.05"/px, Model I noise), [0, 1] scaled
    pre = stage("MAE pretraining on LR images", "pretrain_mae.py", [
        "--dataset_name", "deeplense_sim", "--dataset_config", "model_i", "--dataset_overrides",
        "preset_overrides.image_size=75", "--num_train", size["n"][0], "--num_validation", size["n"][1],
        "--num_test", size["n"][2], "--per_device_train_batch_size", size["batch"], *common,
        "--normalization", "minmax", "--model_preset", size["preset"], "--patch_size", 5,
        "--max_steps", size["pretrain"], "--learning_rate", 1.5e-3, "--output_dir", folder / "mae"])
    sr = stage("super-resolution head", "train_sr.py", [*data, "--model_name_or_path", pre, "--max_steps",
                   size["train"], "--learning_rate", 1e-3, "--output_dir", folder / "sr"])
    ours, bicubic = summary(sr), references(sr)["bicubic upsampling (test)"]
    report("super_resolution", [
        ("psnr_db", ("sr", "psnr"), ours["psnr"], sr), ("ssim", ("sr", "ssim"), ours["ssim"], sr),
        ("mse", None, ours["mse"], sr), ("bicubic_psnr_db", None, bicubic["psnr"], sr),
        ("bicubic_ssim", None, bicubic["ssim"], sr),
    ], out, started, args)


if __name__ == "__main__":
    main()
