"""Super-resolution (e.g. 75 -> 150 px): LR image in, HR image out, the same D4 element applied to both.
PSNR, SSIM and MSE beside the bicubic-upsampling baseline, which every SR model must beat."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.transforms import random_d4
from ..metrics import functional, plots
from .base import CardSection, LossContext, Task


class SuperResolutionTask(Task):
    name = "super_resolution"
    input_column = "lr"
    target_column = "hr"
    target_is_image = True
    default_dataset_config = "sr_pairs"
    default_recipe = "super_resolution"
    model_class = "LensMAEForSuperResolution"
    metric_module = "super_resolution"
    output_key = "reconstruction"
    card = CardSection(
        title="super-resolution of lensing images",
        auto_class="AutoModelForImageToImage",
        pipeline_tag="image-to-image",
        eval_task_type="image-to-image",
        headline_metrics=(("psnr", "PSNR (dB)"), ("ssim", "SSIM"), ("mse", "MSE")),
        citation_keys=("deeplense", "mae", "ssim"),
        usage="high_resolution = outputs.reconstruction[0]  # (C, H * sr_scale, W * sr_scale)",
        config_keys=("sr_scale", "sr_hidden_channels", "sr_residual", "sr_loss"),
    )

    def loss(self, model, batch, context: LossContext):
        pixel_values, labels = batch["pixel_values"], batch["labels"]
        if context.augment:
            pixel_values, labels = random_d4(pixel_values, labels, generator=context.generator)
        return model(pixel_values=pixel_values, labels=labels).loss

    def evaluation_outputs(self, model, batch, unwrapped, seed):
        return {**super().evaluation_outputs(model, batch, unwrapped, seed), "inputs": batch["pixel_values"]}

    def compute_metrics(self, outputs, class_names=None):
        return functional.super_resolution_metrics(np.clip(outputs["predictions"], 0.0, 1.0), outputs["targets"])

    def reference_metrics(self, outputs, split):
        return {f"bicubic upsampling ({split})": functional.bicubic_baseline_metrics(outputs["inputs"],
                                                                                    outputs["targets"])}

    def plots(self, outputs, metrics, folder: Path, split, model):
        bicubic = functional.bicubic_upsample(outputs["inputs"][:4], outputs["targets"].shape[-2:])
        grid = plots.plot_sr_grid(outputs["inputs"][:4], bicubic, np.clip(outputs["predictions"][:4], 0, 1),
                                  outputs["targets"][:4], folder / f"super_resolution_{split}.png")
        return {f"Super-resolution ({split}): LR | bicubic | LensMAE | HR": grid}

    def check_model(self, model, target_size):
        config = model.config
        if target_size != config.image_size * config.sr_scale:
            raise ValueError(f"the HR images are {target_size} px but the model maps {config.image_size} px to "
                             f"{config.image_size * config.sr_scale} px (image_size x sr_scale).")
