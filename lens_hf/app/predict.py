"""The app's models and what each says about one image: loaded once from run folders or Hub ids (through the
same checked loader as evaluation), each answering only what its task can: class probabilities with and without
D4 test-time augmentation (classification, lens finding), the axion mass in log10(m/eV) with and without it
(regression), the masked-autoencoder reconstruction at a chosen mask ratio (pretraining), the super-resolved image
beside bicubic upsampling (super-resolution). A model that does not fit the image says why instead."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..pipelines import D4TestTimeAugmentation
from .inputs import AppInputError, LensImage

ANSWERING_TASKS = ("classification", "lens_finding", "regression", "pretraining", "super_resolution")
MASK_SEED = 0  # the MAE mask of the app: fixed, so moving the slider changes only how many patches are hidden


@dataclass
class AppModel:
    """One loaded model: where it came from, its task, the model (eval mode) and its image processor."""

    name: str
    task: str
    model: torch.nn.Module
    processor: object

    @property
    def bands(self) -> int:
        return int(self.model.config.num_channels)

    @property
    def image_size(self) -> int:
        return int(self.model.config.image_size)

    def describe(self) -> str:
        return f"`{self.name}`: {self.task.replace('_', ' ')}, {self.image_size} px, {self.bands} band(s)"


def load_models(sources) -> tuple[list[AppModel], list[str]]:
    """Every model of `sources` (run folders or Hub ids) that loads, and one message per source that does not."""
    from transformers import AutoImageProcessor

    from ..training.evaluation import load_saved_model

    models, problems = [], []
    for source in sources:
        source = str(source).strip()
        if not source:
            continue
        try:
            model, task = load_saved_model(source)
            if task.name not in ANSWERING_TASKS:
                raise ValueError(f"it is a {task.name} model, which says nothing about one image")
            processor = AutoImageProcessor.from_pretrained(source)
        except Exception as error:  # any failure to load is a message in the page, never a traceback
            problems.append(f"`{Path(source).name or source}` did not load: {str(error).splitlines()[0][:300]}")
            continue
        models.append(AppModel(Path(source).name or source, task.name, model.eval(), processor))
    return models, problems


@dataclass
class Answer:
    """What one model says about one image (only the fields of its task are set)."""

    model: AppModel
    error: str | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    probabilities_tta: dict[str, float] = field(default_factory=dict)
    decision_threshold: float | None = None
    log10_mass: float | None = None
    log10_mass_tta: float | None = None
    model_input: np.ndarray | None = None  # (C, H, W) the image as the model saw it (normalised)
    masked_input: np.ndarray | None = None
    reconstruction: np.ndarray | None = None  # visible patches pasted, predictions where masked
    mask: np.ndarray | None = None  # (H, W) 1 where a patch was hidden
    patch_size: int | None = None
    patch_mask: np.ndarray | None = None  # (num_patches,) the same mask per patch, raster order
    super_resolved: np.ndarray | None = None
    bicubic: np.ndarray | None = None

    @property
    def predicted_class(self) -> str | None:
        scores = self.probabilities_tta or self.probabilities
        return max(scores, key=scores.get) if scores else None


def _fits(model: AppModel, image: LensImage) -> None:
    if image.pixels.shape[0] != model.bands:
        raise AppInputError(f"`{model.name}` takes {model.bands}-band images; this image has "
                            f"{image.pixels.shape[0]} band(s)")


def _pixel_values(model: AppModel, image: LensImage) -> torch.Tensor:
    return model.processor(image.pixels, return_tensors="pt", input_data_format="channels_first")["pixel_values"]


@torch.no_grad()
def answer(model: AppModel, image: LensImage, mask_ratio: float = 0.75) -> Answer:
    """What `model` says about `image`; an image it cannot take gives an Answer with `error` set."""
    result = Answer(model=model)
    try:
        _fits(model, image)
        pixel_values = _pixel_values(model, image)
        result.model_input = pixel_values[0].numpy()
        if model.task in ("classification", "lens_finding"):
            names = [str(model.model.config.id2label[k]) for k in range(model.model.config.num_labels)]
            for target, net in ((result.probabilities, model.model), (result.probabilities_tta,
                                                                     D4TestTimeAugmentation(model.model))):
                scores = net(pixel_values=pixel_values).logits.float().softmax(-1)[0]
                target.update({name: float(p) for name, p in zip(names, scores)})
            result.decision_threshold = getattr(model.model.config, "decision_threshold", None)
        elif model.task == "regression":
            result.log10_mass = float(model.model(pixel_values=pixel_values).logits.reshape(-1)[0])
            result.log10_mass_tta = float(D4TestTimeAugmentation(model.model)(pixel_values=pixel_values).logits
                                          .reshape(-1)[0])
        elif model.task == "pretraining":
            _reconstruct(model, pixel_values, mask_ratio, result)
        elif model.task == "super_resolution":
            from ..metrics.functional import bicubic_upsample

            output = model.model(pixel_values=pixel_values).reconstruction.float()
            result.super_resolved = output[0].numpy()
            result.bicubic = bicubic_upsample(pixel_values.numpy(), tuple(output.shape[-2:]),
                                              data_range=float(max(pixel_values.max(), 1.0)))[0]
    except (AppInputError, ValueError, RuntimeError) as error:
        result.error = str(error).splitlines()[0][:400]
    return result


def _reconstruct(model: AppModel, pixel_values: torch.Tensor, mask_ratio: float, result: Answer) -> None:
    """The MAE picture (`LensMAEForPreTraining.reconstruct`): the masked input, and the input with the hidden
    patches filled by the model's predictions in pixel units, at `mask_ratio`, under a fixed mask order."""
    if not 0.0 < float(mask_ratio) < 1.0:
        raise AppInputError(f"the mask ratio must lie strictly between 0 and 1, got {mask_ratio}")
    net = model.model
    noise = torch.rand(1, net.config.num_patches, generator=torch.Generator().manual_seed(MASK_SEED))
    parts = net.reconstruct(pixel_values, noise=noise, mask_ratio=float(mask_ratio))
    result.masked_input = parts["masked"][0].numpy()
    result.reconstruction = parts["pasted"][0].numpy()
    result.mask = parts["mask"][0, 0].numpy()
    result.patch_size = int(net.config.patch_size)
    result.patch_mask = result.mask[::result.patch_size, ::result.patch_size].reshape(-1)
