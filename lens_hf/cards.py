"""Model cards: render `model_cards/model_card.md` from what a training run knows.

A card is the Hub's README.md: YAML metadata (`ModelCardData`: license, tags, datasets, base model,
pipeline tag and an `eval_results` `model-index` that the Hub and `ModelCard.load` parse back)
followed by markdown (how to load the model with and without lens_hf, evaluation tables and
plots, the training recipe, the configuration, citations). `render_model_card` is a plain
function so scripts/evaluate.py can refresh a card without re-training.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from lens_hf.data.loading import project_resource
from lens_hf.metrics.functional import scalar_metrics
from lens_hf.metrics.references import citations
from lens_hf.pipelines import TTA_DESCRIPTIONS
from lens_hf.redaction import without_secrets
from lens_hf.tasks import CardSection, Task, get_task

TEMPLATE_DIR = "model_cards"
DEFAULT_TEMPLATE = "model_card.md"
DEFAULT_TAGS = ("lens-hf", "lens_mae", "astronomy", "gravitational-lensing", "strong-lensing", "dark-matter",
                "deeplense", "masked-autoencoder")

# Keys of the training arguments that make up the recipe table, in this order, when present.
RECIPE_KEYS = (
    "mode", "optimizer", "learning_rate", "base_learning_rate", "layer_decay", "weight_decay", "adam_beta1",
    "adam_beta2", "lars_momentum", "per_device_train_batch_size", "gradient_accumulation_steps",
    "total_batch_size", "num_train_epochs", "max_steps", "warmup_steps", "warmup_ratio", "lr_scheduler_type",
    "mask_ratio", "norm_pix_loss", "drop_path_rate", "augmentation", "class_weighting", "mixed_precision", "seed",
)
# Config fields shown in the card, when present: the backbone's, then those of the task's head
# (`CardSection.config_keys`).
ENCODER_KEYS = ("image_size", "patch_size", "num_channels", "hidden_size", "num_hidden_layers",
                "num_attention_heads", "intermediate_size", "drop_path_rate", "embedding_size", "hidden_sizes",
                "depths", "layer_type", "width_coefficient", "depth_coefficient", "depth_multiplier", "embed_dim",
                "depth", "num_heads")
# Table names of metric keys beyond a task's headline metrics; "a/b" keys show as "<name of a> (b)".
METRIC_DISPLAY_NAMES = {
    "roc_auc_per_class": "ROC AUC", "bias": "bias (dex)", "scatter": "scatter (dex)", "r2": "R²",
    "visible_mse": "visible-patch MSE", "mask_ratio": "mask ratio", "precision": "precision", "recall": "recall",
    "threshold": "decision threshold P(lens)", "f1_at_0.5": "F1 at P(lens) ≥ 0.5",
    "precision_at_0.5": "precision at P(lens) ≥ 0.5", "recall_at_0.5": "recall at P(lens) ≥ 0.5",
}
# How the card names an architecture (config.model_type -> words); anything else by its model_type.
ARCHITECTURE_NAMES = {"lens_mae": "LensMAE vision transformer", "resnet": "ResNet convolutional network",
                      "efficientnet": "EfficientNet convolutional network", "mobilenet_v2": "MobileNetV2 convolutional "
                      "network", "cvt": "CvT convolutional vision transformer", "vit": "ViT vision transformer",
                      "convnext": "ConvNeXt convolutional network"}


def _plain(value: Any) -> Any:
    if hasattr(value, "to_dict"):  # a transformers config (a dataclass too, but asdict would drop model_type)
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def _cell(value: Any) -> str:
    """A value as one markdown table cell."""
    if isinstance(value, float):
        text = f"{value:.4g}" if math.isfinite(value) else str(value)
    elif isinstance(value, dict):
        text = ", ".join(f"{k}: {v}" for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        text = ", ".join(str(v) for v in value)
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _training_tables(training_args: Mapping[str, Any]) -> tuple[list, list]:
    """(recipe rows, other rows): the recipe keys first, then every other non-empty, non-secret argument."""
    arguments = {k: v for k, v in without_secrets(dict(training_args)).items() if v not in (None, "", [], {})}
    recipe = [(key, _cell(arguments[key])) for key in RECIPE_KEYS if key in arguments]
    others = [(key, _cell(value)) for key, value in sorted(arguments.items()) if key not in RECIPE_KEYS]
    return recipe, others


def _metric_table(task: CardSection, metrics: Mapping[str, Mapping], reference_metrics: Mapping[str, Mapping]):
    """Rows = metrics (headline ones first), columns = evaluated splits, then reference rows' columns."""
    columns = {f"this model ({split})": scalar_metrics(result) for split, result in metrics.items()}
    columns.update({label: scalar_metrics(result) for label, result in reference_metrics.items()})
    if not columns:
        return None
    names = {**METRIC_DISPLAY_NAMES, **dict(task.headline_metrics)}

    def display(key: str) -> str:
        head, _, tail = key.partition("/")
        return f"{names.get(head, head)} ({tail})" if tail else names.get(key, key)

    keys = [key for key, _ in task.headline_metrics if any(key in c for c in columns.values())]
    keys += sorted({k for c in columns.values() for k in c} - set(keys) - {"num_examples", "num_images"})
    rows = [{"name": display(key), "cells": [_cell(c[key]) if key in c else "–" for c in columns.values()]}
            for key in keys]
    counts = {label: int(c.get("num_examples", c.get("num_images", 0))) for label, c in columns.items()}
    notes = "Examples evaluated: " + "; ".join(f"{label}: {n}" for label, n in counts.items() if n) + "." \
        if any(counts.values()) else ""
    return {"columns": list(columns), "rows": rows, "notes": notes}


# How a column of an evaluation with test-time augmentation is named (scripts/evaluate.py --tta).
TTA_SHORT_NAMES = {"d4": "D4 TTA"}


def _tta_mode(entry: Mapping[str, Any]) -> str | None:
    """The test-time augmentation an evaluation of `evaluations` ran with (None: the plain model)."""
    mode = entry.get("tta")
    return None if mode in (None, "none") else mode


def _evaluation_columns(evaluations: Mapping[str, Mapping[str, Any]], own_data: bool) -> dict:
    """Column label -> metrics of `evaluations` entries: the run's own data's TTA ones as "this model with D4 TTA
    (split)", the others by their key."""
    return {(f"this model with {TTA_SHORT_NAMES.get(_tta_mode(entry), _tta_mode(entry))} ({entry['split']})"
             if own_data else name): entry.get("full") or entry.get("summary") or {}
            for name, entry in evaluations.items()}


def _with_tta_notes(table: dict | None, evaluations) -> dict | None:
    """`table` with a sentence saying what each TTA of its columns did and that the model-index leaves it out."""
    modes = sorted({_tta_mode(entry) for entry in evaluations} - {None})
    if table is None or not modes:
        return table
    sentences = [f"{TTA_SHORT_NAMES.get(mode, mode)}: with {TTA_DESCRIPTIONS.get(mode, mode)}; not in the "
                 "model-index, which holds the plain model's figures." for mode in modes]
    return {**table, "notes": " ".join(filter(None, [table["notes"], *sentences]))}


def _hub_id(name_or_path: str) -> str | None:
    """`name_or_path` when it names a Hub repo ("namespace/name"), None for a local folder."""
    looks_like_hub_id = re.fullmatch(r"[\w.\-]+/[\w.\-]+", name_or_path) is not None
    return name_or_path if looks_like_hub_id and not Path(name_or_path).exists() else None


def _eval_results(task: CardSection, metrics: Mapping[str, Mapping], dataset: Mapping[str, Any]) -> list[EvalResult]:
    """The headline metrics per split; a local dataset is named by its folder name (no local paths in public)."""
    dataset_type = _hub_id(dataset["id"]) or Path(dataset["id"]).name
    results = []
    for split, result in metrics.items():
        flat = scalar_metrics(result)
        for key, display in task.headline_metrics:
            if key in flat and math.isfinite(flat[key]):
                results.append(EvalResult(
                    task_type=task.eval_task_type, task_name=task.title, dataset_type=dataset_type,
                    dataset_name=dataset.get("name", dataset_type), dataset_config=dataset.get("config"),
                    dataset_split=split, metric_type=key, metric_name=display, metric_value=round(flat[key], 6),
                ))
    return results


def _index_key(result: EvalResult) -> tuple:
    return result.task_type, result.dataset_type, result.dataset_config, result.dataset_split


def _plot_entries(plots: Mapping[str, str | Path], card_dir: Path | None) -> list[dict]:
    """Plot paths as the card links them: relative to the folder the README.md is saved in.

    A relative input path may be relative to the working directory or to `card_dir`.
    """
    entries = []
    for caption, path in plots.items():
        path = Path(path)
        if card_dir is not None:
            candidates = [path] if path.is_absolute() else [path, card_dir / path]  # cwd-relative, then card-relative
            absolute = next((c for c in candidates if c.is_file()), None)
            if absolute is None:
                raise FileNotFoundError(f"Plot {caption!r} not found at {' or '.join(map(str, candidates))}.")
            try:
                path = absolute.resolve().relative_to(card_dir.resolve())
            except ValueError:
                raise ValueError(f"Plot {caption!r} ({absolute}) is outside the model folder {card_dir}; the Hub "
                                 "repo only holds that folder, so save plots inside it.") from None
        elif path.is_absolute():
            raise ValueError(f"Plot {caption!r} has the absolute path {path}; pass `card_dir` (the folder the "
                             "card is saved in) or a path relative to it.")
        entries.append({"caption": caption, "path": path.as_posix()})
    return entries


def render_model_card(
    *,
    repo_id: str,
    task: str | Task,
    config: Any,
    training_args: Any,
    dataset: Mapping[str, Any],
    metrics: Mapping[str, Mapping[str, Any]] | None = None,
    plots: Mapping[str, str | Path] | None = None,
    base_model: str | None = None,
    reference_metrics: Mapping[str, Mapping[str, Any]] | None = None,
    card_dir: str | Path | None = None,
    description: str | None = None,
    license: str = "mit",  # noqa: A002 - the Hub's field name
    tags: Sequence[str] = (),
    num_parameters: int | None = None,
    adapter: Mapping[str, Any] | None = None,
    num_trainable_parameters: int | None = None,
    other_evaluations: Mapping[str, Mapping[str, Any]] | None = None,
    adaptations: Sequence[str] = (),
    template: str = DEFAULT_TEMPLATE,
) -> ModelCard:
    """Render the model card of a lens_hf model.

    Args:
        repo_id: Hub id the model is (or will be) pushed to; used in the loading snippets.
        task: a `lens_hf.tasks` task or its name ("pretraining", "classification", "lens_finding", "regression",
            "super_resolution"); its `card` section says how the model is described, loaded and scored.
        config: the model config (`PreTrainedConfig` or its dict).
        training_args: the run's arguments (dict or dataclass); secrets (`*token*`...) are left out.
        dataset: {"id": Hub id or local path (required), "name", "config", "url"}.
        metrics: split -> result of the matching `lens_hf.metrics` function (e.g. {"test": {...}}).
            The task's headline metrics become the card's `model-index` (`eval_results`).
        plots: caption -> PNG path inside `card_dir` (absolute, or relative to the working directory or to
            `card_dir`); the card links it relative to `card_dir`.
        base_model: Hub id of the checkpoint this model was trained from (None = from scratch). A local folder is
            named by its folder name only and left out of the YAML, which the Hub reads as a model id.
        reference_metrics: label -> result shown beside the model in the table, e.g.
            {"bicubic upsampling (test)": bicubic_baseline_metrics(...)}; not in the model-index.
        card_dir: the folder the card will be saved in (`card.save(card_dir / "README.md")`).
        adapter: the peft adapter config (`adapter_config.json`) of a LoRA run: the card is an adapter repo's
            (`library_name: peft`, loading through `PeftModel` on `base_model`, the LoRA settings).
        num_trainable_parameters: an adapter's trained parameters (LoRA matrices and head).
        other_evaluations: name -> {"dataset": {"id", "config"}, "split", "full" or "summary"}: evaluations on data
            other than the training data's (scripts/evaluate.py's `evaluations` in metrics.json). Shown in their
            own table, each under its own dataset in the model-index, never mixed with `metrics`. An entry with
            test-time augmentation (`"tta": "d4"`) stays out of the model-index; on the run's own data
            (`"own_data": true`) it is a column "this model with D4 TTA (split)" of the evaluation table.
        adaptations: sentences on how the model was adapted from its base model (a 3-channel stem summed to one
            band, a replaced head; `lens_hf.architectures.transfer`), listed under the summary table.
        template: file name in the project's `model_cards/` folder.

    Returns:
        `huggingface_hub.ModelCard`; `card.save(path)` writes it, `card.push_to_hub(repo_id)` uploads it.
    """
    task = get_task(task)
    if not isinstance(dataset, Mapping) or not dataset.get("id"):
        raise ValueError("`dataset` must be a mapping with at least an 'id' (Hub dataset id or local path), "
                         f"got {dataset!r}.")
    spec = task.card
    config_dict = dict(_plain(config) or {})
    arguments = dict(_plain(training_args) or {})
    metrics = dict(metrics or {})
    for split, result in {**metrics, **(reference_metrics or {})}.items():
        if not isinstance(result, Mapping):
            raise ValueError(f"Metrics for {split!r} must be a mapping of metric name -> value, got "
                             f"{type(result).__name__}.")
    card_dir = Path(card_dir) if card_dir is not None else None
    template_path = project_resource(f"{TEMPLATE_DIR}/{template}", f"the model card template {template!r}")

    model_name = repo_id.split("/")[-1]
    hub_dataset = _hub_id(dataset["id"])
    eval_results = _eval_results(spec, metrics, dataset)
    other_evaluations = dict(other_evaluations or {})
    for name, entry in other_evaluations.items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("dataset"), Mapping) or not entry.get("split"):
            raise ValueError(f"other evaluation {name!r} needs 'dataset' (a mapping with 'id') and 'split', got "
                             f"{entry!r}")
        if _tta_mode(entry):  # the model-index is the plain model's: a TTA figure beside it would read as the model's
            continue
        # The Hub's model-index keys results by dataset, config and split: an evaluation on the same ones (another
        # size of simulated data) would merge into the run's own entry there, so it stays in the card's table only.
        other = _eval_results(spec, {entry["split"]: entry.get("full") or entry.get("summary") or {}},
                              {"id": entry["dataset"]["id"], "config": entry["dataset"].get("config"), "name": name})
        if not {_index_key(r) for r in other} & {_index_key(r) for r in eval_results}:
            eval_results += other
    own_tta = {name: entry for name, entry in other_evaluations.items() if _tta_mode(entry) and entry.get("own_data")}
    other_evaluations = {name: entry for name, entry in other_evaluations.items() if name not in own_tta}
    adapter = dict(adapter) if adapter else None
    if adapter and not base_model:
        raise ValueError("an adapter's card needs its base model (the Hub id the adapter applies to)")
    local_base = None
    if base_model and not adapter and _hub_id(base_model) is None:  # a local folder: named, never its path
        base_model, local_base = None, Path(base_model).name
    card_data = ModelCardData(
        license=license,
        library_name="peft" if adapter else "transformers",
        pipeline_tag=spec.pipeline_tag,
        tags=sorted(set(DEFAULT_TAGS) | {task.name.replace("_", "-")} | set(tags) | ({"lora", "peft"} if adapter else set())),
        datasets=[hub_dataset] if hub_dataset else None,
        base_model=base_model,
        model_name=model_name,
        eval_results=eval_results or None,
    )
    recipe, other_arguments = _training_tables(arguments)
    usage = spec.usage
    num_labels = config_dict.get("num_labels") or len(config_dict.get("id2label") or {})  # to_dict() omits it
    if task.name == "lens_finding" and num_labels == 1:
        usage = "lens_probability = float(outputs.logits.sigmoid()[0, 0])"
    dataset_name = dataset.get("name", hub_dataset or Path(dataset["id"]).name)
    model_type = config_dict.get("model_type", "lens_mae")
    architecture_name = ARCHITECTURE_NAMES.get(model_type, f"`{model_type}` model")
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path),
        model_name=model_name,
        repo_id=repo_id,
        description=description or (
            f"A {architecture_name} for {spec.title}, trained with lens-hf on {dataset_name}"
            + (f", starting from [{base_model}](https://huggingface.co/{base_model})." if base_model else
               f", starting from the local checkpoint `{local_base}`." if local_base else ".")),
        task=spec,
        usage=usage,
        model_type=model_type,
        architecture_name=architecture_name,
        adaptations=list(adaptations),
        num_parameters=f"{num_parameters:,}" if num_parameters else None,
        num_trainable_parameters=f"{num_trainable_parameters:,}" if num_trainable_parameters else None,
        adapter=None if not adapter else {
            "rank": adapter.get("r"), "alpha": adapter.get("lora_alpha"), "dropout": adapter.get("lora_dropout"),
            "rslora": bool(adapter.get("use_rslora")),
            "targets": ", ".join(f"`{t}`" for t in sorted(adapter.get("target_modules") or [])),
            "trained_in_full": ", ".join(f"`{m}`" for m in adapter.get("modules_to_save") or [])},
        base_model=base_model,
        local_base=local_base,
        base_model_url=f"https://huggingface.co/{base_model}" if base_model else None,
        dataset={"name": dataset_name, "config": dataset.get("config"),
                 "url": dataset.get("url") or (f"https://huggingface.co/datasets/{hub_dataset}" if hub_dataset
                                               else None)},
        example_file="lens.npy",
        metric_table=_with_tta_notes(_metric_table(spec, metrics, {**_evaluation_columns(own_tta, own_data=True),
                                                                   **(reference_metrics or {})}), own_tta.values()),
        other_table=_with_tta_notes(_metric_table(spec, {}, _evaluation_columns(other_evaluations, own_data=False)),
                                    other_evaluations.values()),
        plots=_plot_entries(plots or {}, card_dir),
        recipe=recipe,
        other_arguments=other_arguments,
        architecture=[(key, _cell(config_dict[key])) for key in ENCODER_KEYS + spec.config_keys
                      if config_dict.get(key) is not None],
        citations=citations(*spec.citation_keys, *(("lora",) if adapter else ())),
    )
