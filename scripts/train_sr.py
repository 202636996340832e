#!/usr/bin/env python
"""Super-resolution (e.g. 75 px -> 150 px) with the pretrained LensMAE encoder and a sub-pixel convolution head.

    accelerate launch scripts/train_sr.py --model_name_or_path outputs/lens-mae-75px --output_dir outputs/lens-sr
    python scripts/train_sr.py --model_preset tiny --max_steps 20 --output_dir /tmp/sr   # from scratch

LR and HR images must be on the same scale (the SR data are in [0, 1]); the recipe's `--normalization none`
keeps them so (a value given on the command line or in a file wins). The head predicts a correction to bicubic upsampling, so training starts at the bicubic baseline;
PSNR/SSIM/MSE are reported beside that baseline.
"""

from dataclasses import dataclass, field

from lens_hf import LensMAEForSuperResolution
from lens_hf.training import DataArguments, ModelArguments, RunArguments, parse_arguments, run_training
from lens_hf.training.models import fresh_config, pretrained


@dataclass
class SuperResolutionArguments:
    freeze_encoder: bool = field(default=False, metadata={"help": "Train only the upsampling head."})
    patch_size: int = field(default=5, metadata={"help": "Patch side of a fresh model (must divide the LR size)."})


def main(argv=None):
    data_args, model_args, run_args, args = parse_arguments(
        (DataArguments, ModelArguments, RunArguments, SuperResolutionArguments), argv
    )

    def build_model(info, recipe_config):
        scale = info.target_size // info.image_size
        if model_args.model_name_or_path:
            model = pretrained(LensMAEForSuperResolution, model_args, sr_scale=scale)
        else:
            model = LensMAEForSuperResolution(fresh_config(model_args, info.image_size, info.num_channels,
                                                           patch_size=args.patch_size, sr_scale=scale))
        if args.freeze_encoder:
            model.vit.requires_grad_(False)
        return model

    return run_training(task="super_resolution", data_args=data_args, model_args=model_args, run_args=run_args,
                        build_model=build_model, extra_args=args, reuse_checkpoint_processor=False)


if __name__ == "__main__":
    from lens_hf.scripts.console import run

    run(main)
