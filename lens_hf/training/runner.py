"""What every training script does around its model and loss: data, processor, optimizer, schedule, the loop,
final evaluation, the run folder (model, processor, metrics, plots, card) and the Hub push.

Run folder layout (`--output_dir`), loadable with `from_pretrained(output_dir)`:
    config.json, model.safetensors, *.py (model code), preprocessor_config.json, README.md (model card),
    metrics.json, run_config.json, plots/*.png, logs/ (tensorboard, train_log.jsonl), checkpoints/step_*/
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import datasets
import torch

from ..cards import render_model_card
from ..hub import push_folder_to_hub
from ..metrics import plots
from ..metrics.functional import scalar_metrics
from ..tasks import CONFIG_FIELD, LossContext, Task, get_task, task_of
from ..tasks.base import config_can_store
from ..tasks.classification import check_focal_gamma
from .accelerator import build_accelerator, start_tracker
from .adapters import adapter_settings, is_adapter_folder, is_adapter_model, save_adapter_folder
from .arguments import arguments_to_dict
from .data import (
    SimulatedStream,
    check_streaming,
    class_names,
    dataset_config_name,
    eval_dataloader,
    evaluation_split,
    image_shape,
    load_streaming_dataset,
    load_task_dataset,
    make_processor,
    model_inputs,
    oversampled_indices,
    saved_processor,
    stream_dataloader,
    train_dataloader,
)
from .evaluation import collect_outputs, recompute_batchnorm_statistics
from .loop import NonFiniteLossError, fit, read_train_log, total_training_steps
from .optim import build_optimizer, scaled_learning_rate, warmup_cosine_schedule
from .recipes import apply_recipe
from .run_folder import claim_output_dir, run_identity

logger = logging.getLogger(__name__)

PUSH_IGNORE = ["checkpoints/*", "logs/*", "merged/*"]  # a LoRA run pushes its adapter, not the merged copy


@dataclass
class DataInfo:
    """What a script needs to know about the data to build its model."""

    image_size: int
    num_channels: int
    class_names: list[str] | None
    target_size: int | None  # HR side for super-resolution
    dataset: datasets.DatasetDict


def run_training(
    *,
    task: str | Task,
    data_args,
    model_args,
    run_args,
    build_model: Callable[[DataInfo, dict], object],
    recipe: str | None = None,
    extra_args=None,
    class_weights_fn: Callable[[list[int], int], list[float]] | None = None,
    loss_weights_fn: Callable[[list[int], int], list[float]] | None = None,
    card_description: str | None = None,
    reuse_checkpoint_processor: bool = True,
    head_solver: Callable | None = None,
    oversample: bool = False,
    focal_gamma: float | None = None,
    stream_args=None,
) -> dict:
    """Train `task`, evaluate, save and (optionally) push. Returns the final metrics by split.

    Args:
        task: a `lens_hf.tasks` task or its name; its loss hook (`Task.loss`) is what is minimised, its
            metrics and plots are what is reported, and its name is stored in the saved config (`lens_task`).
        build_model: `(data_info, recipe_config) -> model` or `-> (model, notes)`; `recipe_config` holds recipe
            values that belong to the model config (e.g. `drop_path_rate`); `notes` are sentences on how the model
            was adapted from its checkpoint (e.g. a 3-channel stem summed to 1 band), kept in run_config.json
            (`derived.model_notes`) and shown in the card.
        recipe: a key of `recipes.RECIPES` (default: the task's `default_recipe`).
        class_weights_fn: for imbalanced classification, `(train_labels, num_classes) -> per-class sampling
            weights` for a weighted sampler.
        loss_weights_fn: the same signature, per-class weights of the loss (`LossContext.class_weights`).
        reuse_checkpoint_processor: normalise as the checkpoint's saved processor does (False for SR, whose
            LR and HR images must stay on one scale).
        head_solver: `(accelerator, model, train_loader, validation_loader, output_dir, class_weights) -> dict`
            fits the model instead of the SGD loop (the L-BFGS linear probe, `probe.fit_linear_probe`), on
            un-augmented, unshuffled training rows; its dict goes into run_config.json.
        oversample: repeat the minority classes' training rows until every class has as many as the largest
            (`data.oversampled_indices`, the DeepLense "upsampling"); each copy is augmented anew in the loop.
        focal_gamma: train on the focal loss with this gamma (`LossContext.focal_gamma`) instead of cross-entropy;
            the `loss_weights_fn` weights, if any, are its alpha.
        stream_args: `arguments.StreamingArguments`; with `streaming` the training images come from the
            simulator as an endless stream (`data.StreamLoader`) and only the held-out splits and the head of the
            stream (`--num_train` images) are prepared. They join the run's identity and record only when
            streaming, so the runs of prepared data keep theirs.
    """
    task = get_task(task)
    if (oversample or focal_gamma is not None) and not task.has_classes:
        raise ValueError(f"oversample and focal_gamma balance classes; task {task.name!r} has none")
    if focal_gamma is not None:
        check_focal_gamma(focal_gamma)
    if oversample and class_weights_fn is not None:
        raise ValueError("oversample already balances the classes; drop the weighted sampler (class_weights_fn)")
    if head_solver is not None and (oversample or focal_gamma is not None):
        raise ValueError("the head solver fits a cross-entropy head on every training row once; oversample and "
                         "focal_gamma need the SGD loop (weight classes with loss_weights_fn instead)")
    recipe = recipe or task.default_recipe
    streaming = bool(stream_args is not None and stream_args.streaming)
    argument_objects = [a for a in (data_args, model_args, run_args, extra_args, stream_args if streaming else None)
                        if a is not None]
    recipe_config = apply_recipe(recipe, *argument_objects)
    if streaming:
        if head_solver is not None or oversample or class_weights_fn is not None or loss_weights_fn is not None:
            raise ValueError("--streaming trains with the SGD loop on unlabelled images; it takes no head solver, "
                             "oversampling or class weights")
        check_streaming(data_args, run_args, task)  # before anything is written (it also sets --num_train)
    accelerator = build_accelerator(run_args)
    output_dir = Path(run_args.output_dir)
    identity = run_identity(task.name, arguments_to_dict(*argument_objects))
    claim_output_dir(output_dir, identity, run_args.resume_from_checkpoint, run_args.overwrite_output_dir,
                     accelerator.is_main_process)
    accelerator.wait_for_everyone()
    start_tracker(accelerator, run_args, arguments_to_dict(*argument_objects), project_name=task.name)

    stream = None
    with accelerator.main_process_first():
        if streaming:
            dataset, stream = load_streaming_dataset(data_args, task)
        else:
            dataset = load_task_dataset(data_args, task)
    channels, height, _ = image_shape(dataset, task.input_column)
    info = DataInfo(
        image_size=data_args.crop_size or height,
        num_channels=channels,
        class_names=class_names(dataset, task.target_column) if task.has_classes else None,
        target_size=image_shape(dataset, task.target_column)[1] if task.target_is_image else None,
        dataset=dataset,
    )
    model = build_model(info, recipe_config)
    model, model_notes = model if isinstance(model, tuple) else (model, [])
    setattr(model.config, CONFIG_FIELD, task.name)  # saved with the model: evaluate.py reads it back
    task.check_model(model, info.target_size)
    processor = None
    if reuse_checkpoint_processor:
        processor = saved_processor(model_args.model_name_or_path, model_args.trust_remote_code)
    if processor is None:
        processor = make_processor(data_args, model.config.image_size, model.config.num_channels, dataset["train"],
                                   task.input_column)
    elif (processor.size, processor.num_channels) != (model.config.image_size, model.config.num_channels):
        raise ValueError(f"the processor saved with {model_args.model_name_or_path} makes {processor.size} px, "
                         f"{processor.num_channels}-band images; the model takes {model.config.image_size} px, "
                         f"{model.config.num_channels} bands.")
    views = {split: model_inputs(part, processor, task) for split, part in dataset.items()}
    eval_split = evaluation_split(dataset)

    eval_loaders = {split: eval_dataloader(view, run_args.per_device_eval_batch_size, data_args.dataloader_num_workers)
                    for split, view in views.items() if split != "train"}
    if task.scores_train_split:  # e.g. masked-patch error on seen vs held-out images, as MAE papers compare them
        train_probe = dataset["train"].select(range(min(len(dataset["train"]), len(dataset[eval_split]))))
        eval_loaders["train"] = eval_dataloader(model_inputs(train_probe, processor, task),
                                                run_args.per_device_eval_batch_size)

    class_weights = None
    if loss_weights_fn is not None:
        labels = list(dataset["train"][task.target_column])
        class_weights = torch.tensor(loss_weights_fn(labels, len(info.class_names)), dtype=torch.float32)
    run_record = {**arguments_to_dict(*argument_objects),
                  "derived": {"num_processes": accelerator.num_processes, "recipe": recipe,
                              "recipe_model_config": recipe_config, "model_notes": list(model_notes)}}
    if head_solver is not None:
        if eval_split != "validation":
            raise ValueError("the head solver chooses its regularisation on a validation split; the dataset has "
                             f"only {sorted(dataset)}")
        rows = eval_dataloader(views["train"], run_args.per_device_eval_batch_size, data_args.dataloader_num_workers)
        model, rows, *prepared = accelerator.prepare(model, rows, *eval_loaders.values())
        eval_loaders = dict(zip(eval_loaders, prepared))
        run_record["derived"]["head_solver"] = head_solver(accelerator, model, rows, eval_loaders[eval_split],
                                                           output_dir, class_weights)
    else:
        model, eval_loaders = train_with_sgd(accelerator, model, task, info, dataset, views, processor, eval_loaders,
                                             eval_split, data_args, run_args, class_weights_fn, class_weights,
                                             run_record["derived"], identity, oversample=oversample,
                                             focal_gamma=focal_gamma, stream=stream)
    metrics, references, figures = evaluate_splits(accelerator, model, eval_loaders, task, run_args.seed,
                                                   info.class_names, output_dir / "plots", calibrate=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_run_folder(accelerator.unwrap_model(model), processor, output_dir, task, metrics, references, figures,
                        run_record, data_args, model_args, run_args, card_description)
    accelerator.wait_for_everyone()
    if run_args.push_to_hub and accelerator.is_main_process:
        commit = push_folder_to_hub(output_dir, run_args.hub_model_id, token=run_args.hub_token,
                                    private=run_args.hub_private_repo, ignore_patterns=PUSH_IGNORE,
                                    commit_message=f"lens-hf {task.name} run")
        accelerator.print(f"pushed {output_dir} to {commit}")
    accelerator.end_training()
    return metrics


def train_with_sgd(accelerator, model, task: Task, info: DataInfo, dataset, views: dict, processor, eval_loaders: dict,
                   eval_split: str, data_args, run_args, class_weights_fn, class_weights, derived: dict,
                   identity: dict | None = None, oversample: bool = False, focal_gamma: float | None = None,
                   stream: SimulatedStream | None = None):
    """The gradient loop on the task's loss: shuffled (class-weighted, or oversampled) batches, or the batches of
    a training `stream`, optimizer and warmup-cosine schedule, evaluations during training, and the BatchNorm
    statistics recomputed on training images before the model is saved. Records the learning rate, batch and step
    counts in `derived`; returns the prepared model and eval loaders."""
    weights = labels = None
    if class_weights_fn is not None:
        labels = list(dataset["train"][task.target_column])
        weights = class_weights_fn(labels, len(info.class_names))
    train_view = views["train"]
    if oversample:
        rows = oversampled_indices(dataset["train"][task.target_column], run_args.seed, len(info.class_names))
        train_view = model_inputs(dataset["train"].select(rows), processor, task)
        derived["oversampled_train_rows"] = len(rows)
    if stream is None:
        train_loader = train_dataloader(
            train_view, run_args.per_device_train_batch_size, run_args.seed, data_args.dataloader_num_workers,
            class_weights=weights, labels=labels,
        )
    else:  # this rank's part of the stream, on its device; accelerate does not shard or move it
        train_loader = stream_dataloader(stream, processor, task, run_args.per_device_train_batch_size,
                                         run_args.seed, data_args.dataloader_num_workers, accelerator.process_index,
                                         accelerator.num_processes, accelerator.device)
    statistics_loader = None
    has_batchnorm = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if run_args.batchnorm_statistics_examples > 0 and has_batchnorm:
        statistics_rows = dataset["train"].select(range(min(len(dataset["train"]), run_args.batchnorm_statistics_examples)))
        statistics_loader = eval_dataloader(model_inputs(statistics_rows, processor, task),
                                            run_args.per_device_eval_batch_size, data_args.dataloader_num_workers)

    total_batch = run_args.per_device_train_batch_size * accelerator.num_processes * run_args.gradient_accumulation_steps
    learning_rate = (run_args.learning_rate if run_args.learning_rate is not None
                     else scaled_learning_rate(run_args.base_learning_rate, total_batch))  # 0 means 0
    optimizer = build_optimizer(model, run_args.optimizer, learning_rate, run_args.weight_decay, run_args.layer_decay,
                                betas=(run_args.adam_beta1, run_args.adam_beta2))
    if stream is None:
        total_steps = total_training_steps(run_args, len(train_loader) // accelerator.num_processes)
    else:
        total_steps = run_args.max_steps
        derived["train_stream"] = {"config": stream.config, "seed": stream.seed, "images": total_steps * total_batch}
    warmup_steps = int(round((run_args.warmup_ratio or 0.0) * total_steps))
    scheduler = warmup_cosine_schedule(optimizer, warmup_steps, total_steps, run_args.min_lr_ratio)
    derived.update(learning_rate=learning_rate, total_batch_size=total_batch, total_steps=total_steps,
                   warmup_steps=warmup_steps)

    if stream is None:
        model, optimizer, train_loader, *prepared = accelerator.prepare(model, optimizer, train_loader,
                                                                        *eval_loaders.values())
    else:
        model, optimizer, *prepared = accelerator.prepare(model, optimizer, *eval_loaders.values())
    eval_loaders = dict(zip(eval_loaders, prepared))
    if statistics_loader is not None:
        statistics_loader = accelerator.prepare(statistics_loader)

    def refresh_batchnorm(current_model) -> None:
        if statistics_loader is not None:
            recompute_batchnorm_statistics(accelerator, current_model, statistics_loader)

    def evaluate_during_training(current_model) -> dict:
        refresh_batchnorm(current_model)
        outputs = collect_outputs(accelerator, current_model, eval_loaders[eval_split], task, run_args.seed)
        try:
            return scalar_metrics(task.compute_metrics(outputs, info.class_names))
        except ValueError as error:
            logger.warning("evaluation on %r skipped: %s", eval_split, error)
            return {}

    def loss_fn(current_model, batch, generator):
        context = LossContext(accelerator=accelerator, generator=generator, augment=data_args.augment,
                              class_weights=class_weights, focal_gamma=focal_gamma)
        return task.loss(current_model, batch, context)

    try:
        fit(accelerator=accelerator, model=model, optimizer=optimizer, scheduler=scheduler,
            train_dataloader=train_loader, run_args=run_args, total_steps=total_steps, loss_fn=loss_fn,
            evaluate_fn=evaluate_during_training, identity=identity)
    except NonFiniteLossError as error:
        accelerator.print(f"ERROR: {error}")
        accelerator.end_training()
        raise SystemExit(1) from None
    refresh_batchnorm(model)  # the saved model keeps these statistics
    return model, eval_loaders


def evaluate_splits(accelerator, model, loaders: dict, task: str | Task, seed: int, names, plots_dir: Path,
                    calibrate: bool = False, tta: str | None = None):
    """Metrics of every split in `loaders` (train/validation/test order), baselines, and plots (main process
    draws; the train split gets numbers only).

    Every split is scored with the task's `calibration_fields` that the model config holds. `calibrate=True` (the
    training run) first sets them from `Task.calibrate` on the validation split's outputs (cleared when there is
    no validation split, so a threshold inherited from a base model is never reused); without it (evaluate.py)
    the saved ones are used, so the test split is scored at the threshold chosen on validation. A config that
    cannot store a field gets none, so the figures of a run are always the ones its saved model reproduces."""
    task = get_task(task)
    order = {"train": 0, "validation": 1, "test": 2}
    metrics, references, figures = {}, {}, {}
    unwrapped = accelerator.unwrap_model(model)
    collected = {}
    if calibrate and task.calibration_fields:
        chosen = {}
        if "validation" in loaders:
            collected["validation"] = collect_outputs(accelerator, model, loaders["validation"], task, seed, tta=tta)
            try:
                chosen = task.calibrate(collected["validation"])
            except ValueError as error:  # e.g. one class only in a small validation split
                logger.warning("nothing calibrated on the validation split: %s", error)
        unknown = set(chosen) - set(task.calibration_fields)
        if unknown:
            raise ValueError(f"task {task.name!r} calibrated {sorted(unknown)}, which are not its calibration_fields "
                             f"{task.calibration_fields}")
        for field_name in task.calibration_fields:
            if config_can_store(unwrapped.config, field_name):
                setattr(unwrapped.config, field_name, chosen.get(field_name))
            elif chosen.get(field_name) is not None:
                logger.warning("%s has no field %r to save the value chosen on the validation split; scoring "
                               "without it", type(unwrapped.config).__name__, field_name)
    calibration = {field_name: getattr(unwrapped.config, field_name) for field_name in task.calibration_fields
                   if getattr(unwrapped.config, field_name, None) is not None}
    for split in sorted(loaders, key=lambda s: order.get(s, 9)):
        outputs = collected.pop(split, None)
        if outputs is None:
            outputs = collect_outputs(accelerator, model, loaders[split], task, seed, tta=tta)
        try:
            metrics[split] = task.compute_metrics(outputs, names, **calibration)
        except ValueError as error:  # e.g. a class absent from a small split: its AUC is undefined
            logger.warning("no metrics for split %r: %s", split, error)
            continue
        references.update(task.reference_metrics(outputs, split))
        if accelerator.is_main_process and split != "train":
            plots_dir.mkdir(parents=True, exist_ok=True)
            figures.update(task.plots(outputs, metrics[split], plots_dir, split, unwrapped))
    return metrics, references, figures


def save_run_folder(model, processor, output_dir: Path, task: Task, metrics: dict, references: dict, figures: dict,
                    run_record: dict, data_args, model_args, run_args, description: str | None) -> None:
    """Model, processor, metrics.json, run_config.json, loss-curve plot and the model card (main process)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    if is_adapter_model(model):  # LoRA: the adapter and head, the classifier config, not the frozen base
        save_adapter_folder(model, output_dir)
    else:
        model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    log = read_train_log(output_dir)
    steps = [r["step"] for r in log if "loss" in r]
    if steps:
        curves = {"train loss": (steps, [r["loss"] for r in log if "loss" in r])}
        figures["Training loss"] = plots.plot_loss_curves(curves, output_dir / "plots" / "loss.png")
    run_record = {**run_record, "task": task.name, "base_model": model_args.model_name_or_path,
                  "dataset": {"id": data_args.dataset_name, "config": dataset_config_name(data_args, task) or "default"},
                  "description": description}
    (output_dir / "run_config.json").write_text(json.dumps(run_record, indent=2, default=str))
    write_metrics(output_dir, task, metrics, references, figures)
    refresh_model_card(output_dir, model, task, repo_id=run_args.hub_model_id)


def write_metrics(output_dir: Path, task: str | Task, metrics: dict, references: dict, figures: dict) -> None:
    """Merge into `metrics.json`: per-split scalar summaries, full results (curves, matrices), baselines, and the
    plots (caption -> path relative to the run folder) the card shows."""
    path = output_dir / "metrics.json"
    record = json.loads(path.read_text()) if path.exists() else {}
    record["task"] = get_task(task).name
    for key, new in (("summary", {s: scalar_metrics(m) for s, m in metrics.items()}), ("full", metrics),
                     ("references", {n: scalar_metrics(m) for n, m in references.items()}),
                     ("plots", {c: str(Path(p).resolve().relative_to(output_dir.resolve())) for c, p in figures.items()})):
        record[key] = {**record.get(key, {}), **new}
    path.write_text(json.dumps(record, indent=2, default=float))


def refresh_model_card(output_dir: Path, model, task: str | Task | None = None, repo_id: str | None = None) -> Path:
    """(Re)write README.md from the folder's run_config.json and metrics.json, e.g. after scripts/evaluate.py
    added a split or before scripts/push_to_hub.py publishes under a new repo id. `task`: default the one the
    model's config records."""
    output_dir = Path(output_dir)
    task = get_task(task) if task is not None else task_of(model.config, where=f"{output_dir}/config.json")
    run_record = json.loads((output_dir / "run_config.json").read_text()) if (output_dir / "run_config.json").exists() else {}
    record = json.loads((output_dir / "metrics.json").read_text())
    dataset = run_record.get("dataset") or {"id": "unknown", "config": "default"}
    flat_args = {k: v for part in run_record.values() if isinstance(part, dict) for k, v in part.items()}
    adapter = adapter_settings(output_dir) if is_adapter_folder(output_dir) else None
    shown = record.get("full", {})
    if not task.scores_train_split:  # the training split is shown only where the task compares it (pretraining)
        shown = {split: m for split, m in shown.items() if split != "train"}
    card = render_model_card(
        repo_id=repo_id or output_dir.name,
        task=task,
        config=model.config,
        training_args=flat_args,
        dataset={"id": dataset["id"], "name": f"{dataset['id']} ({dataset['config']})", "config": dataset["config"]},
        metrics=shown,
        plots={caption: output_dir / rel for caption, rel in record.get("plots", {}).items()},
        base_model=(adapter or {}).get("base_model_name_or_path") or run_record.get("base_model"),
        adapter=adapter,
        reference_metrics=record.get("references") or None,
        card_dir=output_dir,
        description=run_record.get("description"),
        num_parameters=sum(p.numel() for p in model.parameters()),
        num_trainable_parameters=sum(p.numel() for p in model.parameters() if p.requires_grad) if adapter else None,
        other_evaluations=record.get("evaluations") or None,
        adaptations=(run_record.get("derived") or {}).get("model_notes") or (),
    )
    card.save(output_dir / "README.md")
    return output_dir / "README.md"
