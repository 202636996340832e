"""What a task is: the one object that says which columns a model reads, how it is trained and scored, and how
its model card describes it. Everything task-specific in lens_hf (data columns, the training loss, the outputs
evaluation reads, metrics, plots, card section, default recipe) lives on a `Task`; the training runner, the
evaluation script and the card renderer only ever call these methods."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class CardSection:
    """How a task is described, loaded and scored on the Hub (the model card and its `model-index`)."""

    title: str
    auto_class: str  # the transformers Auto class that loads a model of this task
    pipeline_tag: str | None
    eval_task_type: str
    headline_metrics: tuple[tuple[str, str], ...]  # (metric key, display name) that enter the model-index
    citation_keys: tuple[str, ...]
    usage: str  # python lines after `outputs = model(**inputs)` in the how-to-use snippet
    config_keys: tuple[str, ...] = ()  # head fields of the model config shown in the card


@dataclass
class LossContext:
    """What the loss hook gets besides the model and the batch.

    `accelerator` lets a loss gather across processes (a contrastive loss needs every rank's embeddings);
    `generator` is seeded by (seed, micro-step, rank), so augmentation and masks are resume-exact;
    `class_weights`: per-class loss weights (imbalanced classes); `focal_gamma`: a classifier's loss is the focal
    loss with this gamma instead of cross-entropy (None), the class weights then acting as its alpha."""

    accelerator: Any
    generator: torch.Generator
    augment: bool = True
    class_weights: torch.Tensor | None = None
    focal_gamma: float | None = None


def config_can_store(config, name: str) -> bool:
    """Whether `config` saves and loads back a field `name`. transformers' own configs (ResNet) keep any attribute;
    LensMAEConfig refuses fields it does not declare (a typo guard), so a task's `calibration_fields` must be
    declared there before a LensMAE model can carry them."""
    if name in getattr(type(config), "__dataclass_fields__", {}):
        return True
    try:
        type(config).from_dict({**config.to_dict(), name: None})
    except (TypeError, ValueError):
        return False
    return True


class Task:
    """A task lens_hf trains and evaluates. Subclasses set the class attributes and override the hooks."""

    name: str = ""
    input_column: str = "image"
    target_column: str | None = None
    target_is_image: bool = False
    default_dataset_config: str = "model_ii"  # the simulator's config (deeplense_sim builder) when none is given
    default_recipe: str = "finetune"  # a key of lens_hf.training.recipes.RECIPES
    model_class: str = "LensMAEForImageClassification"  # the LensMAE class that trains it
    metric_module: str | None = None  # the bundled evaluate module (lens_hf.metrics.load(name))
    output_key: str = "logits"  # the model output that is the prediction
    has_classes: bool = False  # the target is a ClassLabel whose names the model's id2label carries
    scores_train_split: bool = False  # also report the training split (train vs held-out error)
    calibration_fields: tuple[str, ...] = ()  # model-config fields `calibrate` sets and `compute_metrics` takes
    card: CardSection

    # -- training -------------------------------------------------------------------------------
    def loss(self, model, batch: dict, context: LossContext) -> torch.Tensor:
        raise NotImplementedError

    # -- evaluation ------------------------------------------------------------------------------
    def evaluation_outputs(self, model, batch: dict, unwrapped, seed: int) -> dict[str, torch.Tensor]:
        """Tensors of one evaluation batch that `compute_metrics` and `plots` read (gathered across
        processes by the caller). Default: the prediction the model outputs under `output_key` and the
        batch's labels."""
        output = model(pixel_values=batch["pixel_values"])
        return {"predictions": output[self.output_key], "targets": batch["labels"]}

    def compute_metrics(self, outputs: dict[str, np.ndarray], class_names: list[str] | None = None,
                        **calibration) -> dict:
        """Metrics of one split. `calibration`: the `calibration_fields` the model config holds (none for most
        tasks), passed as keyword arguments."""
        raise NotImplementedError

    def calibrate(self, validation_outputs: dict[str, np.ndarray]) -> dict:
        """Settings chosen on the validation split's outputs, keyed by `calibration_fields` (e.g. the lens-finding
        decision threshold); {} when the task has none. The training run's `evaluate_splits` stores them on the
        model config before scoring any split, so every split (and a later `scripts/evaluate.py` of the test split
        alone, which reads the saved config) is scored with the same settings, never ones fitted on test data."""
        return {}

    def reference_metrics(self, outputs: dict[str, np.ndarray], split: str) -> dict:
        """Baselines shown beside the model (name -> metrics), e.g. bicubic upsampling for SR."""
        return {}

    def plots(self, outputs: dict[str, np.ndarray], metrics: dict, folder: Path, split: str, model) -> dict[str, Path]:
        """PNG plots of one split in `folder`; caption -> path."""
        return {}

    # -- models ----------------------------------------------------------------------------------
    def check_model(self, model, target_size: int | None) -> None:
        """Raise if `model` cannot be trained on this task's data (e.g. a wrong SR output size)."""

    def __repr__(self) -> str:
        return f"<lens_hf task {self.name!r}>"
