#!/usr/bin/env python
"""Masked-autoencoder pretraining of LensMAE (the facebookresearch/mae recipe: AdamW, base lr 1.5e-4, mask 0.75).

    accelerate launch scripts/pretrain_mae.py --output_dir outputs/lens-mae --num_train 20000
    python scripts/pretrain_mae.py configs/pretrain_demo.yaml --max_steps 50
    accelerate launch scripts/pretrain_mae.py --streaming true --dataset_config pretrain --max_steps 100000 \
        --dataloader_num_workers 4 --output_dir outputs/lens-mae-stream    # simulated on the fly, nothing on disk

Writes a run folder that `LensMAEForPreTraining.from_pretrained` (or any head) loads: the model, processor,
masked-patch MSE on train and held-out images, reconstruction grids, loss curve and model card.
"""

from dataclasses import dataclass, field
from typing import Optional

from lens_hf import LensMAEForPreTraining
from lens_hf.training import DataArguments, ModelArguments, RunArguments, parse_arguments, run_training
from lens_hf.training.arguments import StreamingArguments
from lens_hf.training.models import fresh_config, pretrained


@dataclass
class PretrainArguments:
    mask_ratio: Optional[float] = field(default=None, metadata={"help": "Fraction of patches hidden (0.75; ablate 0.9)."})
    norm_pix_loss: Optional[bool] = field(default=None, metadata={"help": "Reconstruct per-patch normalised pixels."})
    reconstruction_loss: Optional[str] = field(default=None, metadata={"help": "mse | l1 | smooth_l1."})
    patch_size: Optional[int] = field(default=None, metadata={"help": "Patch side (must divide the image size)."})


def main(argv=None):
    data_args, model_args, run_args, pretrain_args, stream_args = parse_arguments(
        (DataArguments, ModelArguments, RunArguments, PretrainArguments, StreamingArguments), argv
    )
    config_fields = dict(mask_ratio=pretrain_args.mask_ratio, norm_pix_loss=pretrain_args.norm_pix_loss,
                         reconstruction_loss=pretrain_args.reconstruction_loss)

    def build_model(info, recipe_config):
        if model_args.model_name_or_path:
            return pretrained(LensMAEForPreTraining, model_args, **config_fields)
        config = fresh_config(model_args, info.image_size, info.num_channels, patch_size=pretrain_args.patch_size,
                              **config_fields)
        return LensMAEForPreTraining(config)

    return run_training(task="pretraining", data_args=data_args, model_args=model_args, run_args=run_args,
                        build_model=build_model, extra_args=pretrain_args, stream_args=stream_args)


if __name__ == "__main__":
    from lens_hf.scripts.console import run

    run(main)
