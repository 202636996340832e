"""Argument dataclasses shared by every script, parsed by `HfArgumentParser` from the command line, a YAML/JSON
file, or a file plus command-line overrides (`python scripts/finetune.py configs/x.yaml --max_steps 10`).

Recipe defaults (learning rate, optimizer, weight decay, normalisation, ...) are `None` here and filled in per
script and mode from `recipes.RECIPES`, so the default command is the published recipe and any field given in a
file or on the command line wins.

Fields of nested objects (a model config, a dataset builder config, a simulation preset) are overridden with one
syntax everywhere, the one transformers' example scripts use for `--config_overrides`: comma-separated
`key=value` pairs, a dotted key for a nested field (`--dataset_overrides image_size=32,preset_overrides.noise=true`),
`[a,b]` for a list. `parse_overrides` reads it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Optional

import yaml
from transformers import HfArgumentParser

from ..redaction import without_secrets


@dataclass
class DataArguments:
    """Where the images come from and how they are prepared."""

    dataset_name: str = field(
        default="deeplense_sim",
        metadata={"help": "A builder in dataset_builders/ (deeplense_sim, deeplense, lens_sr, lens_finding), a folder "
                  "written by scripts/build_dataset.py, or a Hub dataset id."},
    )
    dataset_config: Optional[str] = field(default=None, metadata={"help": "Builder config (e.g. model_ii, sr_pairs); "
                                                                    "default: the script's task default."})
    data_dir: Optional[str] = field(default=None, metadata={"help": "Root of real data on disk for the real-data builders."})
    num_train: Optional[int] = field(default=None, metadata={
        "help": "Simulated builders: training images. With --streaming (pretraining scripts): the stream's first N "
                "images, also prepared as the train split that the training-split figures, 'standardize' statistics "
                "and precise BatchNorm use (default 256); training itself reads the endless stream."})
    num_validation: Optional[int] = field(default=None, metadata={"help": "Simulated builders: validation images."})
    num_test: Optional[int] = field(default=None, metadata={"help": "Simulated builders: test images."})
    dataset_overrides: Optional[str] = field(default=None, metadata={
        "help": "More dataset builder config fields, comma-separated key=value (dotted keys for nested fields), "
                "e.g. 'image_size=32,skip_bad_files=true,preset_overrides.noise=true'."})
    dataset_seed: int = field(default=0, metadata={"help": "Seed of the simulated data (splits never overlap)."})
    max_train_samples: Optional[int] = field(default=None, metadata={"help": "Use only the first N training rows."})
    max_eval_samples: Optional[int] = field(default=None, metadata={"help": "Use only the first N validation/test rows."})
    labels_per_class: Optional[int] = field(default=None, metadata={
        "help": "Classification tasks: train on a class-balanced subset of N labelled rows per class (few-label "
                "experiments; lens_hf.data.splits.labelled_subset_indices says how they are drawn)."})
    subset_seed: int = field(default=0, metadata={"help": "Seed of the --labels_per_class subset (another seed, "
                                                          "another subset)."})
    normalization: Optional[str] = field(default=None, metadata={
        "help": "minmax (per image) | standardize (mean/std measured on the training split) | none. Default: the "
                "recipe's (minmax; none for super-resolution, whose LR and HR images share one scale). A pretrained "
                "checkpoint's own processor is reused instead."})
    crop_size: Optional[int] = field(default=None, metadata={"help": "Centre-crop images to this side first (e.g. 32 "
                                                               "keeps the lensed ring of a 64 px Model II image)."})
    augment: bool = field(default=True, metadata={"help": "Random D4 rotations/flips of training images."})
    cache_dir: Optional[str] = field(default=None, metadata={"help": "datasets cache for prepared builders."})
    dataloader_num_workers: int = field(default=0, metadata={"help": "DataLoader worker processes."})

    def __post_init__(self):
        _check_at_least(self, 1, "crop_size", "max_train_samples", "max_eval_samples", "labels_per_class")
        _check_at_least(self, 0, "num_train", "num_validation", "num_test", "dataloader_num_workers")


@dataclass
class StreamingArguments:
    """Train on the simulator as an endless stream instead of a prepared train split (the pretraining scripts)."""

    streaming: bool = field(default=False, metadata={
        "help": "Simulate the training images on the fly, as the DataLoader asks for them, instead of preparing a "
                "train split on disk: an endless stream of --dataset_name deeplense_sim, --dataset_config (the "
                "preset: model_i, model_ii, model_iii, pretrain, ...) seeded by --dataset_seed, its fields set by "
                "--dataset_overrides preset_overrides.x=...; image i is the one a prepared train split would hold "
                "at row i. Needs --max_steps (the run sees max_steps x total batch images, none twice: every rank "
                "and DataLoader worker draws its own part of the stream, and a resumed run continues it exactly). "
                "Validation and test stay prepared splits (--num_validation, --num_test); without --eval_steps "
                "the run is evaluated once, at the end."})


@dataclass
class ModelArguments:
    """Which model: a pretrained checkpoint (folder or Hub id) or a fresh one from a size preset."""

    model_name_or_path: Optional[str] = field(default=None, metadata={"help": "Checkpoint to start from."})
    model_preset: str = field(default="small", metadata={"help": "Size of a fresh model: tiny | small | base."})
    config_overrides: Optional[str] = field(
        default=None, metadata={"help": "Model config fields, comma-separated key=value, e.g. 'patch_size=4,mask_ratio=0.9'."}
    )
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow Hub model code (not needed with lens_hf)."})


@dataclass
class RunArguments:
    """How to train: optimisation, schedule, logging, checkpoints and publishing."""

    output_dir: str = field(default="outputs/run", metadata={"help": "Run folder: model, card, metrics, checkpoints/, logs/."})
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "Replace the run in --output_dir: its model, card, metrics, plots, logs and checkpoints are deleted "
                "first. Without it a folder that holds a run is an error (unless it is resumed)."})
    seed: int = field(default=42, metadata={"help": "Seed of initialisation, data order, masks and augmentation."})
    per_device_train_batch_size: int = field(default=64)
    per_device_eval_batch_size: int = field(default=128)
    gradient_accumulation_steps: int = field(default=1)
    num_train_epochs: float = field(default=10.0)
    max_steps: int = field(default=-1, metadata={"help": "Optimizer steps; overrides num_train_epochs when > 0."})
    optimizer: Optional[str] = field(default=None, metadata={"help": "adamw | lars (recipe default per mode)."})
    base_learning_rate: Optional[float] = field(default=None, metadata={"help": "lr = base_lr x total_batch / 256."})
    learning_rate: Optional[float] = field(default=None, metadata={"help": "Absolute peak lr; overrides the base rule."})
    weight_decay: Optional[float] = field(default=None)
    adam_beta1: float = field(default=0.9)
    adam_beta2: float = field(default=0.95)
    layer_decay: Optional[float] = field(default=None, metadata={"help": "Layer-wise lr decay (finetune recipe 0.75)."})
    warmup_ratio: Optional[float] = field(default=None, metadata={"help": "Fraction of steps of linear warmup."})
    min_lr_ratio: float = field(default=0.0, metadata={"help": "Cosine floor as a fraction of the peak lr."})
    max_grad_norm: Optional[float] = field(default=None, metadata={"help": "Clip gradients to this norm."})
    mixed_precision: Optional[str] = field(default=None, metadata={"help": "no | fp16 | bf16 (bf16 autocast works on CPUs "
                                                                   "too); default: what `accelerate launch` was given."})
    torch_compile: bool = field(default=False, metadata={"help": "Compile the model with torch.compile (inductor) "
                                                         "through accelerate's dynamo plugin; the first steps pay the "
                                                         "compilation."})
    logging_steps: int = field(default=10)
    eval_steps: Optional[int] = field(default=None, metadata={"help": "Evaluate every N steps (default: each epoch)."})
    batchnorm_statistics_examples: int = field(default=2048, metadata={
        "help": "Before each evaluation, re-estimate BatchNorm running statistics on this many training images "
                "with the current weights (precise BN; models without BatchNorm skip it). 0: keep the running "
                "averages."})
    save_steps: int = field(default=500, metadata={"help": "Checkpoint (save_state) every N steps."})
    save_total_limit: int = field(default=2, metadata={"help": "Checkpoints kept (oldest deleted first)."})
    resume_from_checkpoint: Optional[str] = field(default=None, metadata={"help": "'latest' or a checkpoint folder."})
    report_to: str = field(default="tensorboard", metadata={"help": "tensorboard | none."})
    run_name: Optional[str] = field(default=None)
    push_to_hub: bool = field(default=False)
    hub_model_id: Optional[str] = field(default=None, metadata={"help": "org/name of the Hub repo."})
    hub_private_repo: bool = field(default=False)
    hub_token: Optional[str] = field(default=None)
    cpu: bool = field(default=False, metadata={"help": "Train on CPU even when a GPU is present."})
    disable_progress_bar: bool = field(default=False)

    def __post_init__(self):
        _check_at_least(self, 1, "per_device_train_batch_size", "per_device_eval_batch_size",
                        "gradient_accumulation_steps", "logging_steps", "eval_steps")
        _check_at_least(self, 0, "save_steps", "save_total_limit", "batchnorm_statistics_examples", "num_train_epochs",
                        "warmup_ratio", "min_lr_ratio", "max_grad_norm", "weight_decay", "learning_rate",
                        "base_learning_rate")


def _check_at_least(arguments, minimum: float, *names: str) -> None:
    """Each named field is None or >= `minimum` (a finite number): `--crop_size 0` would crop to nothing."""
    for name in names:
        value = getattr(arguments, name)
        if value is not None and not (value >= minimum and value == value and value != float("inf")):
            raise ValueError(f"--{name} must be >= {minimum}, got {value!r}")


def _read_file(path: str) -> dict:
    text = Path(path).read_text()
    try:
        data = yaml.safe_load(text) if path.endswith((".yaml", ".yml")) else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not valid {'YAML' if path.endswith(('.yaml', '.yml')) else 'JSON'}: {error}") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of argument names to values, got {type(data).__name__}")
    return data


def parse_arguments(dataclass_types: tuple, argv: list[str] | None = None, defaults: dict | None = None) -> tuple:
    """Parse `dataclass_types` from `argv`; a first argument ending in .yaml/.yml/.json is a file of defaults that
    the remaining command-line arguments override. Unknown keys in the file are an error naming them, and so is an
    abbreviated flag on the command line (`--learning_rat`): argparse's prefix matching is off, as in the file.
    `defaults` (field -> value, e.g. what a run recorded) come before the file and the command line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser(dataclass_types, allow_abbrev=False)
    values = dict(defaults or {})
    if argv and argv[0].endswith((".yaml", ".yml", ".json")):
        path, argv = argv[0], argv[1:]
        from_file = _read_file(path)
        known = {f.name for cls in dataclass_types for f in fields(cls)}
        unknown = sorted(set(from_file) - known)
        if unknown:
            raise ValueError(f"{path}: unknown argument(s) {unknown}")
        values.update(from_file)
    if values:
        parser.set_defaults(**values)
        for action in parser._actions:  # a field the file gives is no longer required on the command line
            if action.dest in values:
                action.required = False
    return parser.parse_args_into_dataclasses(args=argv)


def arguments_to_dict(*argument_objects) -> dict:
    """Everything a run was given, by dataclass name (for run_config.json, tracker hyper-parameters and the model
    card), secrets left out (`hub_token` and anything else `lens_hf.redaction.is_secret` names)."""
    return without_secrets({type(obj).__name__: {f.name: getattr(obj, f.name) for f in fields(obj)}
                            for obj in argument_objects})


def parse_overrides(text: str | None, what: str = "overrides") -> dict:
    """'a=1,b=0.5,c=mse,d=true,e.f=64,g=[x,y]' -> {'a': 1, 'b': 0.5, 'c': 'mse', 'd': True, 'e': {'f': 64},
    'g': ('x', 'y')}: ints, floats, bools, `null`, strings and bracketed lists (as tuples, which builder and preset
    fields expect); a dotted key fills a nested dict.
    `what` names the flag in error messages."""
    parsed: dict = {}
    for item in _split_top_level(text or "", what):
        key, separator, raw = (part.strip() for part in item.partition("="))
        if not separator or not key:
            raise ValueError(f"{what}: expected comma-separated key=value pairs, got {item!r}")
        *parents, leaf = key.split(".")
        target = parsed
        for parent in parents:
            target = target.setdefault(parent, {})
            if not isinstance(target, dict):
                raise ValueError(f"{what}: {key!r}: {parent!r} is both a value and a group")
        if leaf in target:
            raise ValueError(f"{what}: {key!r} is given twice")
        target[leaf] = _override_value(raw, what)
    return parsed


def _split_top_level(text: str, what: str) -> list[str]:
    """Split on commas outside brackets."""
    items, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if depth < 0:
            raise ValueError(f"{what}: unbalanced ']' in {text!r}")
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    if depth:
        raise ValueError(f"{what}: unbalanced '[' in {text!r}")
    return [item.strip() for item in [*items, current] if item.strip()]


def _override_value(raw: str, what: str):
    if raw.startswith("["):
        if not raw.endswith("]"):
            raise ValueError(f"{what}: a list value must end with ']', got {raw!r}")
        return tuple(_override_value(item, what) for item in _split_top_level(raw[1:-1], what))
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none"):
        return None
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw
