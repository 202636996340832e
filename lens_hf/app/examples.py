"""Small random run folders of every task the app answers (classification, regression, pretraining,
super-resolution), saved as the training scripts save them: for the app's tests and its speed benchmark, where
no demo has run and nothing may be downloaded. Their answers are random; their shapes and code paths are real."""

from __future__ import annotations

from pathlib import Path

import torch

def _size(size: str) -> dict:
    """LensMAEConfig fields of a model preset (`lens_hf.training.recipes.MODEL_PRESETS`): `tiny` for tests, `small`
    (LensMAEConfig's default, the demo's size) for the speed benchmark."""
    from ..training.recipes import MODEL_PRESETS

    if size not in MODEL_PRESETS:
        raise ValueError(f"size must be one of {sorted(MODEL_PRESETS)}, got {size!r}")
    return MODEL_PRESETS[size]


def write_example_runs(folder: str | Path, size: str = "tiny", image_size: int = 64, patch_size: int = 8,
                       seed: int = 0) -> dict[str, Path]:
    """Run folders `classifier`, `regressor`, `mae`, `sr` under `folder` (task -> path)."""
    from .. import LensImageProcessor, LensMAEConfig, LensMAEForImageClassification, LensMAEForPreTraining
    from ..models.lens_mae.modeling_lens_mae import LensMAEForSuperResolution

    torch.manual_seed(seed)
    common = dict(image_size=image_size, patch_size=patch_size, num_channels=1, **_size(size))
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
