#!/usr/bin/env python
"""Super-resolution (e.g. 75 px -> 150 px) with the pretrained LensMAE encoder and a sub-pixel convolution head.

    accelerate launch scripts/train_sr.py --model_name_or_path outputs/lens-mae-75px --output_dir outputs/lens-sr
    python scripts/train_sr.py --model_preset tiny --max_steps 20 --output_dir /tmp/sr   # from scratch

LR and HR images must be on the same scale (the SR data are in [0, 1]); the default `--normalization none`
keeps them so. The head predicts a correction to bicubic upsampling, so training starts at the bicubic baseline;
PSNR/SSIM/MSE are reported beside that baseline.
"""

from dataclasses import dataclass, field

from lens_hf import LensMAEForSuperResolution
from lens_hf.training import DataArguments, ModelArguments, RunArguments, parse_arguments, random_d4, run_training
from lens_hf.training.models import fresh_config, pretrained


@dataclass
class SuperResolutionArguments:
    freeze_encoder: bool = field(default=False, metadata={"help": "Train only the upsampling head."})
    patch_size: int = field(default=5, metadata={"help": "Patch side of a fresh model (must divide the LR size)."})


def main(argv=None):
    argv_list = list(argv) if argv is not None else None
    data_args, model_args, run_args, args = parse_arguments(
        (DataArguments, ModelArguments, RunArguments, SuperResolutionArguments), argv_list
    )
    if not _given("--normalization", argv_list):
        data_args.normalization = "none"

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

    def loss_fn(model, batch, generator):
        pixel_values, labels = batch["pixel_values"], batch["labels"]
        if data_args.augment:
            pixel_values, labels = random_d4(pixel_values, generator, labels)
        return model(pixel_values=pixel_values, labels=labels).loss

    return run_training(task="super_resolution", recipe="super_resolution", data_args=data_args,
                        model_args=model_args, run_args=run_args, build_model=build_model, loss_fn=loss_fn,
                        extra_args=args, reuse_checkpoint_processor=False)


def _given(flag: str, argv) -> bool:
    import sys

    return any(a == flag or a.startswith(flag + "=") for a in (sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
