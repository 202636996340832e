#!/usr/bin/env python
"""Evaluate a saved LensMAE model on a dataset split: metrics.json, plots, and a refreshed model card.

    python scripts/evaluate.py --model_name_or_path outputs/lens-mae-classifier --split test
    accelerate launch scripts/evaluate.py --model_name_or_path outputs/lens-sr --dataset_name lens_sr \
        --data_dir ~/data/sr --split validation

The task (pretraining, classification, lens finding, regression, super-resolution) is the one the model's config
records (`lens_task`); every run folder a lens-hf script writes evaluates, the ResNet baseline included. The seed of
the fixed pretraining masks defaults to the seed the run recorded, so re-evaluating reproduces the stored figure.
Results are merged into <output_dir>/metrics.json (default: the model folder) under the split's name.
"""

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

# Run as a file (`python scripts/evaluate.py`), this folder is sys.path[0] and this file would shadow the
# `evaluate` library that the bundled metric modules import.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

from transformers import AutoImageProcessor  # noqa: E402

import lens_hf  # noqa: F401,E402  (registers the Auto classes)
from lens_hf.tasks import TASKS
from lens_hf.training import DataArguments, RunArguments, build_accelerator, parse_arguments
from lens_hf.training.data import class_names, eval_dataloader, load_task_dataset, make_processor, model_inputs
from lens_hf.training.evaluation import load_saved_model
from lens_hf.training.recipes import apply_recipe
from lens_hf.training.runner import evaluate_splits, refresh_model_card, write_metrics


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
    trust_remote_code: bool = field(default=False)


def recorded_seed(folder: Path) -> int | None:
    """The training seed a run folder's run_config.json recorded (None for a Hub id or a folder without one)."""
    record = folder / "run_config.json"
    if not record.is_file():
        return None
    return json.loads(record.read_text()).get("RunArguments", {}).get("seed")


def main(argv=None):
    data_args, args = parse_arguments((DataArguments, EvaluateArguments), argv)
    output_dir = Path(args.output_dir or args.model_name_or_path)
    if not output_dir.is_dir() and args.output_dir is None:
        raise SystemExit(f"{args.model_name_or_path} is not a local folder: pass --output_dir for the results.")
    model_dir = Path(args.model_name_or_path)
    seed = args.seed if args.seed is not None else recorded_seed(model_dir) if model_dir.is_dir() else None
    seed = 0 if seed is None else seed
    accelerator = build_accelerator(RunArguments(output_dir=str(output_dir), seed=seed, report_to="none"))
    model, task = load_saved_model(args.model_name_or_path, args.trust_remote_code, task=args.task)
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
    loader = eval_dataloader(model_inputs(dataset[args.split], processor, task), args.per_device_eval_batch_size,
                             data_args.dataloader_num_workers)
    model, loader = accelerator.prepare(model, loader)
    names = class_names(dataset, task.target_column) if task.has_classes else None
    metrics, references, figures = evaluate_splits(accelerator, model, {args.split: loader}, task, seed, names,
                                                   output_dir / "plots")
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        write_metrics(output_dir, task, metrics, references, figures)
        if args.refresh_card:
            repo_id = None if model_dir.is_dir() else args.model_name_or_path
            refresh_model_card(output_dir, accelerator.unwrap_model(model), task, repo_id=repo_id)
        summary = json.loads((output_dir / "metrics.json").read_text())["summary"][args.split]
        accelerator.print(json.dumps({"task": task.name, "split": args.split, "seed": seed, **summary}, indent=2))
    accelerator.wait_for_everyone()  # ranks tear the process group down together, as the training scripts do
    accelerator.end_training()
    return metrics


if __name__ == "__main__":
    main()
