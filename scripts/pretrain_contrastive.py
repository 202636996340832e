#!/usr/bin/env python
"""Contrastive (SimCLR) pretraining of a ResNet-18 or a LensMAE encoder on unlabelled lensing images.

    accelerate launch scripts/pretrain_contrastive.py --backbone resnet18 --output_dir outputs/simclr-resnet18
    python scripts/pretrain_contrastive.py --backbone lens_mae --model_preset small --max_steps 500 \
        --output_dir outputs/simclr-lens-mae
    python scripts/pretrain_contrastive.py --streaming true --dataset_config model_ii --max_steps 5000 \
        --output_dir outputs/simclr-stream    # views of images simulated on the fly (--streaming: see --help)

Two views of every image (D4, sub-pixel shift, PSF-width and noise jitter, flux scaling: see
`lens_hf.data.LensViewAugmentation` for why each is allowed and why there is no crop or colour jitter), the
NT-Xent loss with negatives from every process. The run folder is the encoder alone (projection head dropped), a
transformers model: `AutoModel.from_pretrained(folder)`, or `finetune.py --model_name_or_path folder` for a
linear probe, finetune or LoRA (ResNet-18: `--architecture resnet18`).
"""

from dataclasses import dataclass, field
from typing import Optional

from transformers import ResNetModel

from lens_hf import LensMAEModel
from lens_hf.architectures import get_architecture
from lens_hf.data import LensViewAugmentation
from lens_hf.models.contrastive import ContrastiveModel
from lens_hf.training import DataArguments, ModelArguments, RunArguments, parse_arguments, run_training
from lens_hf.training.arguments import StreamingArguments
from lens_hf.training.models import fresh_config, pretrained

BACKBONES = ("resnet18", "lens_mae")


@dataclass
class ContrastiveArguments:
    backbone: str = field(default="resnet18", metadata={"help": "resnet18 (transformers ResNetModel, one input band "
                                                          "per channel) | lens_mae (the LensMAE encoder; size from "
                                                          "--model_preset / --config_overrides)."})
    temperature: float = field(default=0.2, metadata={"help": "NT-Xent temperature."})
    projection_dim: int = field(default=128, metadata={"help": "Output size of the projection head (dropped at save)."})
    patch_size: Optional[int] = field(default=None, metadata={"help": "lens_mae: patch side (must divide the image)."})
    max_shift: float = field(default=1.0, metadata={"help": "Views: largest translation, pixels."})
    max_blur_sigma: float = field(default=0.75, metadata={"help": "Views: largest extra PSF blur sigma, pixels."})
    max_noise: float = field(default=0.05, metadata={"help": "Views: largest added noise, x the image's std."})
    flux_scale: float = field(default=0.2, metadata={"help": "Views: flux scaled by 1 +- this."})

    def __post_init__(self):
        if self.backbone not in BACKBONES:
            raise ValueError(f"--backbone must be one of {BACKBONES}, got {self.backbone!r}")

    def augmentation(self) -> LensViewAugmentation:
        return LensViewAugmentation(max_shift=self.max_shift, max_blur_sigma=self.max_blur_sigma,
                                    max_noise=self.max_noise, flux_scale=self.flux_scale)


def main(argv=None):
    data_args, model_args, run_args, args, stream_args = parse_arguments(
        (DataArguments, ModelArguments, RunArguments, ContrastiveArguments, StreamingArguments), argv
    )
    augmentation = args.augmentation()  # invalid strengths fail here, before any data is built

    def build_model(info, recipe_config):
        if args.backbone == "resnet18":
            encoder = (pretrained(ResNetModel, model_args) if model_args.model_name_or_path
                       else ResNetModel(get_architecture("resnet18").config(info.image_size, info.num_channels)))
        elif model_args.model_name_or_path:
            encoder = pretrained(LensMAEModel, model_args)
        else:
            encoder = LensMAEModel(fresh_config(model_args, info.image_size, info.num_channels,
                                                patch_size=args.patch_size))
        return ContrastiveModel(encoder, projection_dim=args.projection_dim, temperature=args.temperature,
                                augmentation=augmentation)

    return run_training(task="contrastive", data_args=data_args, model_args=model_args, run_args=run_args,
                        build_model=build_model, extra_args=args, stream_args=stream_args)


if __name__ == "__main__":
    from lens_hf.scripts.console import run

    run(main)
