"""Small random run folders of every task the app answers (classification, regression, pretraining,
super-resolution), saved as the training scripts save them: for the app's tests and its speed benchmark, where
no demo has run and nothing may be downloaded. Their answers are random; their shapes and code paths are real."""

from __future__ import annotations

from pathlib import Path

import torch

SIZES = {  # LensMAEConfig fields: `tiny` for tests, `small` (LensMAEConfig's default, the demo's size) for speed
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                 decoder_hidden_size=32, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
                 decoder_intermediate_size=64),
    "small": {},
}


def write_example_runs(folder: str | Path, size: str = "tiny", image_size: int = 64, patch_size: int = 8,
                       seed: int = 0) -> dict[str, Path]:
    """Run folders `classifier`, `regressor`, `mae`, `sr` under `folder` (task -> path)."""
    from .. import LensImageProcessor, LensMAEConfig, LensMAEForImageClassification, LensMAEForPreTraining
    from ..models.lens_mae.modeling_lens_mae import LensMAEForSuperResolution

    torch.manual_seed(seed)
    common = dict(image_size=image_size, patch_size=patch_size, num_channels=1, **SIZES[size])
    classes = {0: "axion", 1: "cdm", 2: "no_sub"}
    configs = {
        "classifier": (LensMAEForImageClassification, dict(lens_task="classification", num_labels=3,
                                                           id2label=classes, label2id={v: k for k, v in classes.items()},
                                                           problem_type="single_label_classification")),
        "regressor": (LensMAEForImageClassification, dict(lens_task="regression", num_labels=1, problem_type="regression",
                                                          regression_target_mean=-23.0, regression_target_std=0.55)),
        "mae": (LensMAEForPreTraining, dict(lens_task="pretraining")),
        "sr": (LensMAEForSuperResolution, dict(lens_task="super_resolution", sr_scale=2)),
    }
    written = {}
    for name, (model_class, fields) in configs.items():
        path = Path(folder) / name
        model_class(LensMAEConfig(**common, **fields)).save_pretrained(path)
        LensImageProcessor(size=image_size, num_channels=1,
                           normalization="none" if name == "sr" else "minmax").save_pretrained(path)
        written[name] = path
    return written
