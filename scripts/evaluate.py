#!/usr/bin/env python
"""Evaluate a saved LensMAE model on a dataset split: metrics.json, plots, and a refreshed model card.

    python scripts/evaluate.py --model_name_or_path outputs/lens-mae-classifier --split test
    accelerate launch scripts/evaluate.py --model_name_or_path outputs/lens-sr --dataset_name lens_sr \
        --data_dir ~/data/sr --split validation

The task (pretraining, classification, lens finding, regression, super-resolution) is the one the model's config
records (`lens_task`); every run folder a lens-hf script writes evaluates, the ResNet baseline included. The seed of
the fixed pretraining masks defaults to the seed the run recorded, so re-evaluating reproduces the stored figure.

The data arguments default to the ones the run recorded (run_config.json): without dataset flags a run is
evaluated on its own data. Results on the run's own data are merged into <output_dir>/metrics.json (default: the
model folder) under the split's name and the card is refreshed; results on other data (another dataset, config,
folder or size) are stored beside them under `evaluations` in metrics.json, keyed by dataset, config and split,
with their plots in `evaluations/<key>/`, shown in the card's "On other data" table and under their own dataset in
its model-index, and never replace the run's own figures. A classifier is evaluated
only on data with the same class names in the same order.

`--tta d4` (classification, lens finding, regression) scores the mean logits over the 8 rotations/flips of each
image (`lens_hf.pipelines.D4TestTimeAugmentation`). A TTA evaluation never replaces the plain figures either: it is
stored under `evaluations` as `<split> (D4 TTA)` (the run's own data, `"own_data": true`, a column of the card's
evaluation table) or `<dataset> (<config>) <split> (D4 TTA)` (other data), with `"tta": "d4"`, and stays out of the
model-index, whose entries are the plain model's.
"""

import json
import re
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Optional

# Run as a file (`python scripts/evaluate.py`), this folder is sys.path[0] and this file would shadow the
# `evaluate` library that the bundled metric modules import.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

from transformers import AutoImageProcessor  # noqa: E402

import lens_hf  # noqa: F401,E402  (registers the Auto classes)
from lens_hf.pipelines import TTA_DESCRIPTIONS
from lens_hf.tasks import TASKS
from lens_hf.training import DataArguments, RunArguments, build_accelerator, parse_arguments
from lens_hf.training.data import (
    class_names,
    dataset_config_name,
    eval_dataloader,
    load_task_dataset,
    make_processor,
    model_inputs,
)
from lens_hf.training.evaluation import checked_tta, load_saved_model
from lens_hf.training.models import check_model_reference
from lens_hf.training.recipes import apply_recipe
from lens_hf.training.run_folder import VOLATILE
from lens_hf.training.runner import evaluate_splits, refresh_model_card, write_metrics

TTA_KEY_SUFFIXES = {"d4": " (D4 TTA)"}  # how an evaluation with test-time augmentation is keyed in `evaluations`


@dataclass
class EvaluateArguments:
    model_name_or_path: str = field(metadata={"help": "A saved run folder or Hub id."})
    split: str = field(default="test", metadata={"help": "Split to evaluate (train, validation, test)."})
    output_dir: Optional[str] = field(default=None, metadata={"help": "Where metrics/plots/card go (default: the "
                                                              "model folder when it is local)."})
    per_device_eval_batch_size: int = field(default=128)
    seed: Optional[int] = field(default=None, metadata={"help": "Seed of the fixed evaluation masks (pretraining); "
                                                        "default: the seed the run recorded (run_config.json)."})
    task: Optional[str] = field(default=None, metadata={"help": f"One of {', '.join(TASKS)}: only for a model whose "
                                                        "config does not record its task (lens_task)."})
    refresh_card: bool = field(default=True, metadata={"help": "Re-render README.md with the new numbers."})
    tta: str = field(default="none", metadata={"choices": ["none", "d4"], "help": "Test-time augmentation: d4 scores "
                                               "the mean logits over the 8 rotations/flips of each image, stored "
                                               "beside the plain figures (classification, lens finding, regression)."})
    trust_remote_code: bool = field(default=False)


def run_record(folder: Path) -> dict:
    """A run folder's run_config.json ({} for a Hub id or a folder without one)."""
    path = Path(folder) / "run_config.json"
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path} must hold a JSON object")
    return record


def recorded_seed(folder: Path) -> int | None:
    """The training seed a run folder's run_config.json recorded (None for a Hub id or a folder without one)."""
    return run_record(folder).get("RunArguments", {}).get("seed")


def data_identity(data_args) -> dict:
    """What data an evaluation ran on: the data arguments, cache and worker settings aside."""
    values = data_args if isinstance(data_args, dict) else {f.name: getattr(data_args, f.name) for f in fields(data_args)}
    return {k: v for k, v in json.loads(json.dumps(values, default=str)).items()
            if k not in VOLATILE["DataArguments"]}


def check_class_names(model, names: list[str] | None, where: str) -> None:
    """A classifier scores a dataset only when its classes are the model's, in the same order (matching by index
    would score axion/cdm/no_sub predictions against no/sphere/vort labels). A model saved without class names
    (transformers' `LABEL_0`, ...) needs only the same number of classes."""
    if names is None or not getattr(model.config, "id2label", None):
        return
    model_names = [model.config.id2label[k] for k in sorted(model.config.id2label, key=int)]
    unnamed = model_names == [f"LABEL_{k}" for k in range(len(model_names))]  # transformers' default: no names
    if (len(model_names) != len(names)) if unnamed else model_names != list(names):
        raise ValueError(f"{where} predicts the classes {model_names}; the dataset's classes are {list(names)}. "
                         "Evaluate it on data with the same classes in the same order.")


def evaluation_name(output_dir: Path, data_args, config: str | None, split: str, suffix: str = "") -> str:
    """The key of an evaluation on other data in metrics.json: `dataset (config) split` (+ `suffix`, e.g. ` (D4
    TTA)`), or `... #2`, ... when that key holds an evaluation on other data arguments (it is replaced only by one on
    the same data)."""
    path = output_dir / "metrics.json"
    evaluations = json.loads(path.read_text()).get("evaluations", {}) if path.is_file() else {}
    key = name = f"{data_args.dataset_name} ({config or 'default'}) {split}{suffix}"
    number = 1
    while name in evaluations and evaluations[name].get("data") != data_identity(data_args):
        number += 1
        name = f"{key} #{number}"
    return name


def main(argv=None):
    data_args, args = parse_arguments((DataArguments, EvaluateArguments), argv)
    check_model_reference(args.model_name_or_path)
    recorded = run_record(Path(args.model_name_or_path)) if Path(args.model_name_or_path).is_dir() else {}
    if recorded.get("DataArguments"):  # the run's own data unless flags say otherwise
        data_args, args = parse_arguments((DataArguments, EvaluateArguments), argv, defaults={
            k: v for k, v in recorded["DataArguments"].items() if k in {f.name for f in fields(DataArguments)}})
    output_dir = Path(args.output_dir or args.model_name_or_path)
    if not output_dir.is_dir() and args.output_dir is None:
        raise SystemExit(f"{args.model_name_or_path} is not a local folder: pass --output_dir for the results.")
    model_dir = Path(args.model_name_or_path)
    seed = args.seed if args.seed is not None else recorded_seed(model_dir) if model_dir.is_dir() else None
    seed = 0 if seed is None else seed
    accelerator = build_accelerator(RunArguments(output_dir=str(output_dir), seed=seed, report_to="none"))
    model, task = load_saved_model(args.model_name_or_path, args.trust_remote_code, task=args.task)
    tta = checked_tta(args.tta, task)  # before any data is read: a task without TTA is refused at once
    apply_recipe(task.default_recipe, data_args)  # the data defaults of the task (normalisation)
    with accelerator.main_process_first():
        dataset = load_task_dataset(data_args, task)
    if args.split not in dataset:
        raise SystemExit(f"split {args.split!r} not in the dataset (splits: {list(dataset)})")
    try:
        processor = AutoImageProcessor.from_pretrained(args.model_name_or_path, trust_remote_code=args.trust_remote_code)
    except OSError:
        processor = make_processor(data_args, model.config.image_size, model.config.num_channels, dataset["train"],
                                   task.input_column)
    names = class_names(dataset, task.target_column) if task.has_classes else None
    check_class_names(model, names, args.model_name_or_path)
    loader = eval_dataloader(model_inputs(dataset[args.split], processor, task), args.per_device_eval_batch_size,
                             data_args.dataloader_num_workers)
    model, loader = accelerator.prepare(model, loader)
    config_name = dataset_config_name(data_args, task)
    owner = owner_data(output_dir, recorded)
    own_data = owner is None or owner == data_identity(data_args)
    suffix = TTA_KEY_SUFFIXES.get(tta, "")
    key = (None if own_data and not tta else f"{args.split}{suffix}" if own_data
           else evaluation_name(output_dir, data_args, config_name, args.split, suffix))
    plots_dir = output_dir / "plots" if key is None else output_dir / "evaluations" / re.sub(r"[^A-Za-z0-9._-]+", "_", key)
    metrics, references, figures = evaluate_splits(accelerator, model, {args.split: loader}, task, seed, names,
                                                   plots_dir, tta=tta)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        if own_data and not tta:
            write_metrics(output_dir, task, metrics, references, figures)
            if owner is None:
                record_owner(output_dir, data_identity(data_args))
            if args.refresh_card:
                repo_id = None if model_dir.is_dir() else args.model_name_or_path
                refresh_model_card(output_dir, accelerator.unwrap_model(model), task, repo_id=repo_id)
            summary = json.loads((output_dir / "metrics.json").read_text())["summary"][args.split]
        else:
            summary = write_foreign_evaluation(output_dir, key, data_args, config_name, metrics, references, figures,
                                               tta=tta, own_data=own_data)
            if own_data and owner is None:
                record_owner(output_dir, data_identity(data_args))
            if args.refresh_card and (own_data or (output_dir / "README.md").is_file()):
                refresh_model_card(output_dir, accelerator.unwrap_model(model), task,
                                   repo_id=None if model_dir.is_dir() else args.model_name_or_path)
            if own_data:
                accelerator.print(f"with {TTA_DESCRIPTIONS[tta]}: stored under evaluations[{key!r}] of "
                                  f"{output_dir / 'metrics.json'} and as its own column of the card's evaluation "
                                  "table; the plain figures are unchanged")
            else:
                accelerator.print(f"{key} is not the data the run was trained and scored on: stored under "
                                  f"evaluations[{key!r}] of {output_dir / 'metrics.json'} and in the card's 'On "
                                  "other data' table; the run's own figures are unchanged")
        record = {"task": task.name, "split": args.split, "seed": seed, "tta": args.tta, **summary}
        accelerator.print(json.dumps(record, indent=2))
    accelerator.wait_for_everyone()  # ranks tear the process group down together, as the training scripts do
    accelerator.end_training()
    return metrics


def owner_data(output_dir: Path, recorded: dict) -> dict | None:
    """The data whose figures metrics.json holds at its top level: the run's training data (run_config.json), else
    the data a first evaluation into this folder ran on (`evaluated_on`), else None (nothing recorded yet)."""
    if recorded.get("DataArguments"):
        return data_identity(recorded["DataArguments"])
    path = output_dir / "metrics.json"
    if path.is_file():
        return json.loads(path.read_text()).get("evaluated_on")
    return None


def record_owner(output_dir: Path, identity: dict) -> None:
    path = output_dir / "metrics.json"
    record = json.loads(path.read_text())
    record["evaluated_on"] = identity
    path.write_text(json.dumps(record, indent=2, default=float))


def write_foreign_evaluation(output_dir: Path, name: str, data_args, config_name, metrics, references, figures,
                             tta: str | None = None, own_data: bool = False) -> dict:
    """Store an evaluation that must not replace the run's own figures (on other data, or with test-time
    augmentation: `tta`; `own_data`: on the run's own data) under `evaluations[name]` of metrics.json; returns its
    summary."""
    from lens_hf.metrics.functional import scalar_metrics

    path = output_dir / "metrics.json"
    record = json.loads(path.read_text()) if path.is_file() else {}
    evaluations = record.setdefault("evaluations", {})
    split = next(iter(metrics)) if metrics else None
    evaluations[name] = {
        "dataset": {"id": data_args.dataset_name, "config": config_name or "default"}, "split": split,
        "data": data_identity(data_args), "tta": tta or "none", "own_data": own_data,
        "summary": scalar_metrics(metrics[split]) if split else {}, "full": metrics.get(split, {}),
        "references": {n: scalar_metrics(m) for n, m in references.items()},
        "plots": {c: str(Path(p).resolve().relative_to(output_dir.resolve())) for c, p in figures.items()},
    }
    path.write_text(json.dumps(record, indent=2, default=float))
    return evaluations[name]["summary"]


if __name__ == "__main__":
    from lens_hf.scripts.console import run

    run(main)
