"""From `DataArguments` to DataLoaders: which dataset, which columns a task reads, and the processor."""

from __future__ import annotations

import os
from dataclasses import dataclass

import datasets
import numpy as np
import torch
from torch.utils.data import DataLoader, WeightedRandomSampler

from ..data import available_builders, load_builder
from ..data.splits import labelled_subset_indices
from ..data.transforms import LensTrainingTransform
from ..image_processing_lens import LensImageProcessor
from ..tasks import Task, get_task
from .arguments import parse_overrides


SIMULATED_BUILDER = "deeplense_sim"
SIZE_KWARGS = {"num_train": "n_train", "num_validation": "n_validation", "num_test": "n_test"}


def load_task_dataset(data_args, task: str | Task) -> datasets.DatasetDict:
    """The DatasetDict for `task`: a lens_hf builder (prepared and cached with its code hash), an exported folder,
    or a Hub dataset. Fails with the missing column named if the data does not fit the task."""
    task = get_task(task)
    name = data_args.dataset_name
    config = dataset_config_name(data_args, task)
    if os.path.isdir(name):
        if config is not None and not _has_config(name, config):  # never train on another config than the card names
            raise ValueError(f"--dataset_config {config!r}: the dataset folder {name} has no such config; it has "
                             f"{_config_names(name) or 'none readable'}")
        dataset = datasets.load_dataset(name, config, cache_dir=data_args.cache_dir)
    elif name in available_builders():
        dataset = load_builder(name, config, **_builder_kwargs(data_args))
    else:
        dataset = datasets.load_dataset(name, config, cache_dir=data_args.cache_dir)
    if not isinstance(dataset, datasets.DatasetDict):
        dataset = datasets.DatasetDict({"train": dataset})
    _check_columns(dataset, task, name, config)
    if "train" not in dataset:
        raise ValueError(f"dataset {name!r} (config {config!r}) has no 'train' split; it has {list(dataset)}.")
    if data_args.labels_per_class is not None:
        if not task.has_classes:
            raise ValueError(f"--labels_per_class draws a class-balanced subset; task {task.name!r} has no classes")
        train = dataset["train"]
        dataset["train"] = train.select(labelled_subset_indices(train[task.target_column], data_args.labels_per_class,
                                                                data_args.subset_seed))
    limits = {"train": data_args.max_train_samples}
    return datasets.DatasetDict(
        {
            split: part.select(range(min(len(part), limit))) if (limit := limits.get(split, data_args.max_eval_samples)) else part
            for split, part in dataset.items()
        }
    )


def _builder_kwargs(data_args) -> dict:
    """The keyword arguments of a lens_hf builder from the data arguments (seed, cache, data folder, overrides,
    split sizes)."""
    kwargs = {"seed": data_args.dataset_seed, "cache_dir": data_args.cache_dir}
    if data_args.data_dir:
        kwargs["data_dir"] = data_args.data_dir
    kwargs.update(parse_overrides(data_args.dataset_overrides, "--dataset_overrides"))
    for argument, builder_kwarg in SIZE_KWARGS.items():
        if getattr(data_args, argument) is not None:
            kwargs[builder_kwarg] = getattr(data_args, argument)
    return kwargs


def _check_columns(dataset: datasets.DatasetDict, task: Task, name: str, config: str | None) -> None:
    for split, part in dataset.items():
        for column in (task.input_column, task.target_column):
            if column is not None and column not in part.column_names:
                raise ValueError(
                    f"dataset {name!r} (config {config!r}) split {split!r} has no column {column!r}, which task "
                    f"{task.name!r} reads; its columns are {part.column_names}."
                )


def dataset_config_name(data_args, task: str | Task) -> str | None:
    """The config asked for, else the task's default config of the simulator (other sources: their default)."""
    if data_args.dataset_config:
        return data_args.dataset_config
    return get_task(task).default_dataset_config if data_args.dataset_name == SIMULATED_BUILDER else None


def _config_names(folder: str) -> list[str]:
    try:
        return list(datasets.get_dataset_config_names(folder))
    except Exception:  # a folder datasets cannot read: load_dataset says why
        return []


def _has_config(folder: str, config: str) -> bool:
    return config in _config_names(folder)


def evaluation_split(dataset: datasets.DatasetDict) -> str:
    """validation if there is one, else test."""
    for split in ("validation", "test"):
        if split in dataset:
            return split
    raise ValueError(f"the dataset has no validation or test split to evaluate on (splits: {list(dataset)}).")


def class_names(dataset: datasets.DatasetDict, column: str = "label") -> list[str] | None:
    feature = dataset["train"].features.get(column)
    return list(feature.names) if isinstance(feature, datasets.ClassLabel) else None


def image_shape(dataset: datasets.DatasetDict, column: str) -> tuple[int, int, int]:
    """(C, H, W) of the column's Array3D feature (or of the first row)."""
    feature = dataset["train"].features[column]
    shape = getattr(feature, "shape", None)
    if shape is None or len(shape) != 3:
        shape = tuple(dataset["train"].with_format("numpy")[0][column].shape)
    if len(shape) != 3:
        raise ValueError(f"column {column!r} must hold (C, H, W) images, got shape {shape}.")
    return tuple(int(s) for s in shape)


STATISTICS_SAMPLE = 2048


def make_processor(data_args, image_size: int, num_channels: int, train_split: datasets.Dataset | None = None,
                   column: str = "image") -> LensImageProcessor:
    """The processor a fresh run uses; "standardize" measures per-band mean/std on (up to 2048) training images."""
    common = dict(size=image_size, num_channels=num_channels, crop_size=data_args.crop_size)
    if data_args.normalization != "standardize":
        return LensImageProcessor(normalization=data_args.normalization, **common)
    if train_split is None:
        raise ValueError('normalization="standardize" needs the training split to measure its statistics')
    sample = train_split.with_format("numpy")[: min(len(train_split), STATISTICS_SAMPLE)][column]
    geometry = LensImageProcessor(normalization="none", **common)(sample, input_data_format="channels_first")
    return LensImageProcessor.from_statistics(geometry["pixel_values"], size=image_size, crop_size=data_args.crop_size)


def saved_processor(path: str | None, trust_remote_code: bool = False) -> LensImageProcessor | None:
    """The lens processor saved with a checkpoint (so finetuning normalises exactly as pretraining did), if any.
    Another library's processor (an ImageNet checkpoint's RGB resize-and-normalise) is not one: the run then
    makes its own from the data."""
    if not path:
        return None
    from transformers import AutoImageProcessor

    try:
        processor = AutoImageProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError):
        return None
    return processor if isinstance(processor, LensImageProcessor) else None


class ModelInputs(torch.utils.data.Dataset):
    """Rows of `dataset` read as numpy and batched into {"pixel_values", "labels", "row_index"} normalised by the
    processor (`row_index`: the row's position in `dataset`, which keys per-row randomness such as the fixed
    evaluation masks of pretraining).

    Reading numpy and normalising whole batches in the collate function is several times faster than
    `set_transform` (which hands Python lists); augmentation happens in the training loop, where its randomness
    is resume-exact."""

    def __init__(self, dataset: datasets.Dataset, processor, task: str | Task):
        task = get_task(task)
        columns = [c for c in (task.input_column, task.target_column) if c is not None]
        self.rows = dataset.with_format("numpy", columns=columns)
        self.transform = LensTrainingTransform(
            processor,
            augment=False,
            image_column=task.input_column,
            label_column=None if task.target_is_image else task.target_column,
            target_column=task.target_column if task.target_is_image else None,
        )

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        return {**self.rows[int(index)], ROW_INDEX: int(index)}

    def __getitems__(self, indices: list[int]) -> list[dict]:
        batch = self.rows[[int(i) for i in indices]]
        return [{**{key: values[i] for key, values in batch.items()}, ROW_INDEX: int(index)}
                for i, index in enumerate(indices)]

    def collate(self, rows: list[dict]) -> dict:
        batch = self.transform.collate(rows)
        batch[ROW_INDEX] = torch.tensor([row[ROW_INDEX] for row in rows], dtype=torch.int64)
        return batch


ROW_INDEX = "row_index"


def model_inputs(dataset: datasets.Dataset, processor, task: str | Task) -> ModelInputs:
    return ModelInputs(dataset, processor, task)


def oversampled_indices(labels, seed: int, num_classes: int | None = None) -> list[int]:
    """Row indices (for `dataset.select`) in which every class has as many rows as the largest: the DeepLense
    notebooks' "upsampling" of the rare lenses. A minority class's rows are repeated whole as often as they fit,
    then a remainder drawn without replacement by a generator seeded with `seed`; every row of the largest class
    appears once, so an epoch still sees each of them once, and the copies get their own D4 augmentations in the
    loop. Rows come back in ascending order (the loader shuffles). `num_classes` (default: largest label + 1)
    makes an absent class an error instead of silently staying absent."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) == 0:
        raise ValueError(f"oversampling needs a non-empty 1-D list of class labels, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise ValueError(f"oversampling needs integer class labels >= 0, got dtype {labels.dtype} "
                         f"(min {labels.min()})")
    num_classes = int(labels.max()) + 1 if num_classes is None else int(num_classes)
    if labels.max() >= num_classes:
        raise ValueError(f"label {int(labels.max())} is out of range for num_classes={num_classes}")
    rows_of = [np.flatnonzero(labels == k) for k in range(num_classes)]
    empty = [k for k, rows in enumerate(rows_of) if len(rows) == 0]
    if empty:
        raise ValueError(f"classes {empty} have no training row; oversampling cannot repeat a class that is absent")
    target = max(len(rows) for rows in rows_of)
    rng = np.random.default_rng(seed)
    chosen = []
    for rows in rows_of:  # classes in order, so the draw is fixed by the seed
        chosen.append(np.tile(rows, target // len(rows)))
        chosen.append(rng.choice(rows, size=target % len(rows), replace=False))
    return np.sort(np.concatenate(chosen), kind="stable").tolist()


# ------------------------------------------------------------------------------------------- streaming
STREAM_TRAIN_ROWS = 256  # --num_train's default under --streaming: the prepared head of the stream


@dataclass
class SimulatedStream:
    """The endless training stream of a `deeplense_sim` config: the preset and seed of its train split, so image i
    of the stream is row i of the train split the builder would prepare."""

    preset: object
    seed: int
    config: str


def simulator_configs() -> dict:
    """Config name -> builder config of the `deeplense_sim` builder."""
    from ..data import builder_class

    return {config.name: config for config in builder_class(SIMULATED_BUILDER).BUILDER_CONFIGS}


def check_streaming(data_args, run_args, task: str | Task) -> None:
    """Refuse what a stream cannot do, with the flag to use instead; set --num_train's streaming default. Runs
    before any data is built or any folder written."""
    task = get_task(task)
    if task.target_column is not None:
        raise ValueError(f"--streaming trains on unlabelled simulated images (the pretraining scripts); task "
                         f"{task.name!r} reads targets from column {task.target_column!r} of a prepared split")
    if data_args.dataset_name != SIMULATED_BUILDER:
        raise ValueError(f"--streaming simulates the training images: it needs --dataset_name {SIMULATED_BUILDER} "
                         f"(got {data_args.dataset_name!r}); a prepared or Hub dataset trains without --streaming")
    configs = simulator_configs()
    config = dataset_config_name(data_args, task)
    if config not in configs:
        raise ValueError(f"--dataset_config {config!r} is not a simulator preset; valid: {sorted(configs)}")
    if configs[config].preset == "sr_pairs":
        streamable = sorted(c for c, v in configs.items() if v.preset != "sr_pairs")
        raise ValueError(f"--dataset_config {config!r} simulates lr/hr pairs; {task.name} trains on single "
                         f"images: use one of {streamable}")
    if not run_args.max_steps or run_args.max_steps <= 0:
        raise ValueError("--streaming: an endless stream has no epochs; give the run's length as --max_steps N "
                         "(it then sees N x total batch images)")
    for flag in ("max_train_samples", "labels_per_class"):
        if getattr(data_args, flag) is not None:
            raise ValueError(f"--{flag} selects rows of a prepared train split; --streaming trains on the stream "
                             "for --max_steps steps")
    overrides = parse_overrides(data_args.dataset_overrides, "--dataset_overrides")
    if "n_train" in overrides:
        raise ValueError("--dataset_overrides n_train: give the prepared head of the stream as --num_train")
    if data_args.num_train is None:
        data_args.num_train = STREAM_TRAIN_ROWS
    elif data_args.num_train < 1:
        raise ValueError(f"--num_train must be >= 1 with --streaming (the prepared head of the stream), got "
                         f"{data_args.num_train}")


def load_streaming_dataset(data_args, task: str | Task) -> tuple[datasets.DatasetDict, SimulatedStream]:
    """The prepared splits (the stream's first --num_train images as "train", validation, test) and the stream."""
    from ..data import prepare_builder

    task = get_task(task)
    config = dataset_config_name(data_args, task)
    builder = prepare_builder(SIMULATED_BUILDER, config, **_builder_kwargs(data_args))
    dataset = builder.as_dataset()
    _check_columns(dataset, task, SIMULATED_BUILDER, config)
    stream = SimulatedStream(preset=builder.config.make_preset(), seed=builder.split_seed("train"), config=config)
    return dataset, stream


class StreamInputs:
    """The collate function of the stream: the simulator's images normalised exactly as `ModelInputs` normalises a
    prepared split's rows (the same `LensTrainingTransform`, without augmentation: D4 is drawn in the loop), with
    the stream index as `row_index`."""

    def __init__(self, processor, task: str | Task):
        task = get_task(task)
        self.column = task.input_column
        self.transform = LensTrainingTransform(processor, augment=False, image_column=self.column, label_column=None)

    def collate(self, items: list[dict]) -> dict:
        images = np.stack([item["pixel_values"].numpy() for item in items])
        batch = self.transform({self.column: images})
        batch[ROW_INDEX] = torch.tensor([item["index"] for item in items], dtype=torch.int64)
        return batch


class StreamLoader:
    """This rank's endless DataLoader over a `SimulatedLensDataset`, its batches moved to `device`.

    The dataset deals blocks of one batch to the ranks and workers (`SimulatedLensDataset`), so micro-step m of
    rank r trains on images (m * world_size + r) * batch_size onwards, whatever the number of workers, and no
    image is seen twice. `state_dict()` is where the stream stands after the batches consumed so far (the same on
    every rank); a checkpoint stores it as JSON and `load_state_dict()` makes the next iteration start there, so
    a resumed run trains on exactly the images of the uninterrupted run. Not passed through
    `accelerator.prepare` (which would read the whole stream on every rank, or on rank 0 and send it around)."""

    is_stream = True  # the loop resumes it by state, not by skipping batches (lens_hf.training.loop)

    def __init__(self, dataset, loader: DataLoader, device):
        self.dataset, self.loader, self.device = dataset, loader, device
        self.batches = 0  # consumed since dataset.start

    @property
    def images_per_batch(self) -> int:
        """Images of the stream one micro-step consumes, all ranks together."""
        return self.dataset.block_size * self.dataset.world_size

    def state_dict(self) -> dict:
        return {"start": self.dataset.start + self.batches * self.images_per_batch}

    def load_state_dict(self, state: dict) -> None:
        self.dataset.load_state_dict(state)
        self.batches = 0

    def set_epoch(self, epoch: int) -> None:
        """The stream has no epochs: nothing to reshuffle."""

    def __iter__(self):
        self.load_state_dict(self.state_dict())  # a new iteration continues after the last batch consumed
        for batch in self.loader:
            self.batches += 1
            yield {key: value.to(self.device) if isinstance(value, torch.Tensor) else value
                   for key, value in batch.items()}


def stream_dataloader(stream: SimulatedStream, processor, task: str | Task, batch_size: int, seed: int,
                      num_workers: int = 0, rank: int = 0, world_size: int = 1, device="cpu",
                      start: int = 0) -> StreamLoader:
    """The `StreamLoader` of `stream` on `rank` of `world_size`: blocks of `batch_size`, each rendered at once;
    the DataLoader owns its generator so starting an iteration never touches the global RNG."""
    from ..simulation import SimulatedLensDataset

    dataset = SimulatedLensDataset(stream.preset, seed=stream.seed, rank=rank, world_size=world_size,
                                   block_size=batch_size, chunk_size=batch_size, start=start)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers,
                        collate_fn=StreamInputs(processor, task).collate,
                        generator=torch.Generator().manual_seed(seed))
    return StreamLoader(dataset, loader, device)


def train_dataloader(dataset: ModelInputs, batch_size: int, seed: int, num_workers: int = 0,
                     class_weights: list[float] | None = None, labels: list[int] | None = None) -> DataLoader:
    """Shuffled, drop_last; with `class_weights`, a weighted sampler that draws classes with those weights
    (imbalanced lens finding). The DataLoader owns its generator so iterating never touches the global RNG."""
    generator = torch.Generator().manual_seed(seed)
    if class_weights is not None:
        per_row = torch.tensor([class_weights[label] for label in labels], dtype=torch.double)
        sampler = WeightedRandomSampler(per_row, num_samples=len(per_row), replacement=True, generator=generator)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True, num_workers=num_workers,
                          collate_fn=dataset.collate)
    if len(dataset) < batch_size:
        raise ValueError(f"the training split has {len(dataset)} rows, fewer than one batch of {batch_size}; "
                         "lower --per_device_train_batch_size or add data.")
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True, generator=generator,
                      num_workers=num_workers, collate_fn=dataset.collate)


def eval_dataloader(dataset: ModelInputs, batch_size: int, num_workers: int = 0) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=dataset.collate)
