"""Masked-autoencoder pretraining: reconstruct the hidden patches of D4-augmented images. Scored by the
masked-patch error on training and held-out images, with masks fixed per image so every evaluation of a model
gives the same number."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data.transforms import random_d4
from ..metrics import functional, plots
from ..seeds import seeded_generator
from .base import CardSection, LossContext, Task

EVALUATION_MASKS = "evaluation-mask"
PICTURED_EXAMPLES = 4  # rows of the reconstruction picture


def evaluation_noise(seed: int, row_indices, num_patches: int, device) -> torch.Tensor:
    """The masking noise of each evaluated row: a function of (seed, row index) only, so the masked-patch error
    of a split does not depend on batch size, number of processes or when it is computed."""
    rows = [torch.rand(num_patches, generator=seeded_generator(seed, EVALUATION_MASKS, int(i))) for i in row_indices]
    return torch.stack(rows).to(device)


def predicted_images(outputs, model) -> np.ndarray:
    """The decoder's prediction of every patch as (N, C, H, W) images in the units of `outputs["inputs"]`.

    `outputs` as `PretrainingTask.evaluation_outputs`: "predictions" are the patchified logits, "inputs" the
    images the encoder saw (the scale of every column of the reconstruction picture; "targets" are not used, as
    under norm_pix_loss they are normalised per patch). Under norm_pix_loss the logits are per-patch-normalised
    too and are put back in pixel units with each input patch's mean/std, from the model's own `pixel_targets` (as
    the MAE paper's figures). Paste the visible patches with `plots.paste_visible_patches` before showing them.
    """
    logits = torch.from_numpy(np.ascontiguousarray(outputs["predictions"]))
    _, mean, std = model.pixel_targets(torch.from_numpy(np.ascontiguousarray(outputs["inputs"])).to(logits.dtype))
    return model.unpatchify(logits if mean is None else logits * std + mean).numpy()


class PretrainingTask(Task):
    name = "pretraining"
    target_column = None
    default_dataset_config = "model_ii"
    default_recipe = "pretrain"
    model_class = "LensMAEForPreTraining"
    metric_module = "masked_reconstruction"
    scores_train_split = True
    card = CardSection(
        title="masked-autoencoder pretraining (reconstruct hidden patches)",
        auto_class="AutoModelForPreTraining",
        pipeline_tag="image-feature-extraction",
        eval_task_type="image-feature-extraction",
        headline_metrics=(("masked_mse", "masked-patch MSE"),),
        citation_keys=("deeplense", "mae"),
        usage="reconstruction = model.unpatchify(outputs.logits)  # every patch predicted; outputs.mask = hidden ones",
        config_keys=("decoder_hidden_size", "decoder_num_hidden_layers", "decoder_num_attention_heads",
                     "decoder_intermediate_size", "mask_ratio", "norm_pix_loss", "reconstruction_loss"),
    )

    def loss(self, model, batch, context: LossContext):
        pixel_values = batch["pixel_values"]
        if context.augment:
            (pixel_values,) = random_d4(pixel_values, generator=context.generator)
        num_patches = context.accelerator.unwrap_model(model).config.num_patches
        noise = torch.rand(pixel_values.shape[0], num_patches, generator=context.generator,
                           device=context.generator.device)
        return model(pixel_values=pixel_values, noise=noise.to(pixel_values.device)).loss

    def evaluation_outputs(self, model, batch, unwrapped, seed):
        pixel_values = batch["pixel_values"]
        noise = evaluation_noise(seed, batch["row_index"].tolist(), unwrapped.config.num_patches, pixel_values.device)
        output = model(pixel_values=pixel_values, noise=noise)
        target, _, _ = unwrapped.pixel_targets(pixel_values)
        return {"predictions": output.logits, "targets": target, "mask": output.mask, "inputs": pixel_values}

    def compute_metrics(self, outputs, class_names=None):
        return functional.masked_reconstruction_metrics(outputs["predictions"], outputs["targets"], outputs["mask"])

    def plots(self, outputs, metrics, folder: Path, split, model):
        shown = {key: outputs[key][:PICTURED_EXAMPLES] for key in ("inputs", "predictions", "mask")}
        grid = plots.plot_reconstruction_grid(shown["inputs"], shown["mask"], predicted_images(shown, model),
                                              model.config.patch_size, folder / f"reconstruction_{split}.png",
                                              num_examples=PICTURED_EXAMPLES)
        caption = f"MAE reconstructions ({split}): input | masked input | reconstruction (visible patches pasted, " \
                  "mask outlined)"
        return {caption: grid}
