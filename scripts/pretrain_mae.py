#!/usr/bin/env python
"""Masked-autoencoder pretraining of LensMAE (facebookresearch/mae recipe, DESIGN §5).

    accelerate launch scripts/pretrain_mae.py --output_dir outputs/lens-mae --num_train 20000
    python scripts/pretrain_mae.py configs/pretrain_demo.yaml --max_steps 50

Writes a run folder that `LensMAEForPreTraining.from_pretrained` (or any head) loads: the model, processor,
masked-patch MSE on train and held-out images, reconstruction grids, loss curve and model card.
"""

from dataclasses import dataclass, field
from typing import Optional

import torch

from lens_hf import LensMAEForPreTraining
from lens_hf.training import DataArguments, ModelArguments, RunArguments, parse_arguments, random_d4, run_training
from lens_hf.training.models import fresh_config, pretrained


@dataclass
class PretrainArguments:
    mask_ratio: Optional[float] = field(default=None, metadata={"help": "Fraction of patches hidden (0.75; ablate 0.9)."})
    norm_pix_loss: Optional[bool] = field(default=None, metadata={"help": "Reconstruct per-patch normalised pixels."})
    reconstruction_loss: Optional[str] = field(default=None, metadata={"help": "mse | l1 | smooth_l1."})
    patch_size: Optional[int] = field(default=None, metadata={"help": "Patch side (must divide the image size)."})


def main(argv=None):
    data_args, model_args, run_args, pretrain_args = parse_arguments(
        (DataArguments, ModelArguments, RunArguments, PretrainArguments), argv
    )
    config_fields = dict(mask_ratio=pretrain_args.mask_ratio, norm_pix_loss=pretrain_args.norm_pix_loss,
                         reconstruction_loss=pretrain_args.reconstruction_loss)

    def build_model(info, recipe_config):
        if model_args.model_name_or_path:
            return pretrained(LensMAEForPreTraining, model_args, **config_fields)
        config = fresh_config(model_args, info.image_size, info.num_channels, patch_size=pretrain_args.patch_size,
                              **config_fields)
        return LensMAEForPreTraining(config)

    def loss_fn(model, batch, generator):
        pixel_values = batch["pixel_values"]
        if data_args.augment:
            (pixel_values,) = random_d4(pixel_values, generator)
        num_patches = pixel_values.shape[-1] // model_patch_size(model)
        noise = torch.rand(pixel_values.shape[0], num_patches**2, generator=generator, device=generator.device)
        return model(pixel_values=pixel_values, noise=noise.to(pixel_values.device)).loss

    return run_training(task="pretraining", recipe="pretrain", data_args=data_args, model_args=model_args,
                        run_args=run_args, build_model=build_model, loss_fn=loss_fn, extra_args=pretrain_args)


def model_patch_size(model) -> int:
    return getattr(model, "module", model).config.patch_size


if __name__ == "__main__":
    main()
