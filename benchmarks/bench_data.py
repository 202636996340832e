"""Data-loading throughput vs training consumption: data must never be the bottleneck.

The consumer is one AdamW train step of the default `LensMAEForPreTraining(LensMAEConfig())` (64 px, patch 8).
Three producers feed it, each a shuffled torch DataLoader with the default workers (`--dataloader_num_workers`
0: the main process, one core):

- the file path, stored 64 px and 150 px (Model I size, resized to 64 by the processor): .npy files in the
  foundation-set layout -> the `deeplense` builder -> Parquet export -> `datasets.load_dataset(folder)`, read
  (a) through `with_training_transforms` (the `set_transform` view: random D4 + `LensImageProcessor` min-max per
  `ds[...]` batch), and (b) the way the training scripts read it: `lens_hf.training.data.ModelInputs` (numpy
  rows, normalised per batch in the collate function) + `train_dataloader`, then the loop's random D4;
- the simulator as a stream (`--streaming`): `SimulatedLensDataset` of Model II through `stream_dataloader`
  (simulated, normalised in the collate function), then the loop's random D4.

Batches of all of them and train steps are timed in alternating rounds (so machine noise hits all alike);
per-batch medians give images/s. One line per figure; each ratio line names its target and says ok or below;
exits 1 if any is below.
Usage: python benchmarks/bench_data.py [--num_images 2048 --batch_size 64 --rounds 8 --batches_per_round 4]
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import datasets  # noqa: E402
import torch  # noqa: E402

from lens_hf import LensImageProcessor, LensMAEConfig, LensMAEForPreTraining  # noqa: E402
from lens_hf.data import export_builder, prepare_builder, with_training_transforms  # noqa: E402
from lens_hf.data.sample_layouts import write_class_folders  # noqa: E402
from lens_hf.data.transforms import random_d4  # noqa: E402
from lens_hf.simulation import get_preset  # noqa: E402
from lens_hf.training.arguments import DataArguments  # noqa: E402
from lens_hf.training.data import SimulatedStream, model_inputs, stream_dataloader, train_dataloader  # noqa: E402

TARGETS = {64: 3.0, 150: 5.0}  # stored image side -> required data / train-step throughput ratio
STREAM_TARGET = 3.0
STREAM_PRESET = "model_ii"  # the pretraining scripts' default --dataset_config


def exported_dataset(workdir: Path, num_images: int, image_size: int) -> datasets.DatasetDict:
    """Write `num_images` .npy files, build, export to Parquet and load the export back."""
    per_class = -(-num_images // 3)
    write_class_folders(workdir / "raw", ("axion", "cdm", "no_sub"), (image_size, image_size), per_class, seed=0)
    builder = prepare_builder(
        "deeplense", "foundation", data_dir=workdir / "raw", cache_dir=workdir / "cache", image_size=image_size,
        validation_fraction=0.0, test_fraction=0.0,
    )
    export_builder(builder, workdir / "export")
    return datasets.load_dataset(str(workdir / "export"), cache_dir=str(workdir / "cache"))


def batches_forever(loader, augment_in_loop: bool = False):
    """The loader's batches, again and again; `augment_in_loop`: with the random D4 the training loop draws
    (`PretrainingTask.loss`) on a generator seeded per step."""
    step = 0
    while True:
        for batch in loader:
            if augment_in_loop:
                generator = torch.Generator().manual_seed(step)
                (batch["pixel_values"],) = random_d4(batch["pixel_values"], generator=generator)
            step += 1
            yield batch


def timed_batches(iterator, count: int) -> list[float]:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        batch = next(iterator)
        batch["pixel_values"].sum().item()  # make sure the batch is materialised
        times.append(time.perf_counter() - start)
    return times


def verdict(ratio: float, target: float) -> str:
    return f"target >= {target:g}: {'ok' if ratio >= target else 'below'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_images", type=int, default=2048)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--batches_per_round", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    datasets.disable_progress_bars()
    workers = DataArguments().dataloader_num_workers  # the scripts' default

    config = LensMAEConfig()
    model = LensMAEForPreTraining(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1.5e-4, betas=(0.9, 0.95), weight_decay=0.05)
    processor = LensImageProcessor(size=config.image_size, num_channels=config.num_channels, normalization="minmax")

    with tempfile.TemporaryDirectory(prefix="bench_data_") as workdir:
        build_seconds, streams = {}, {}
        for size in TARGETS:
            start = time.perf_counter()
            dataset = exported_dataset(Path(workdir) / f"{size}px", args.num_images, size)
            build_seconds[size] = time.perf_counter() - start
            view = with_training_transforms(dataset, processor)["train"]
            streams[(size, "set_transform")] = batches_forever(torch.utils.data.DataLoader(
                view, batch_size=args.batch_size, shuffle=True, drop_last=True, num_workers=workers,
                generator=torch.Generator().manual_seed(0)))
            scripts_loader = train_dataloader(model_inputs(dataset["train"], processor, "pretraining"),
                                              args.batch_size, seed=0, num_workers=workers)
            streams[(size, "scripts")] = batches_forever(scripts_loader, augment_in_loop=True)
        simulated = SimulatedStream(preset=get_preset(STREAM_PRESET), seed=0, config=STREAM_PRESET)
        streams[("stream", "scripts")] = batches_forever(
            stream_dataloader(simulated, processor, "pretraining", args.batch_size, seed=0, num_workers=workers),
            augment_in_loop=True)
        for stream in streams.values():
            next(stream)  # the first batch opens the Arrow files (or starts the simulator)
        sample = next(streams[(64, "set_transform")])["pixel_values"]
        loader_times = {key: [] for key in streams}
        step_times = []
        model.train()
        for _ in range(args.rounds):
            for key, stream in streams.items():
                loader_times[key] += timed_batches(stream, args.batches_per_round)
            for _ in range(args.batches_per_round):
                start = time.perf_counter()
                loss = model(pixel_values=sample).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                step_times.append(time.perf_counter() - start)

    rates = {key: args.batch_size / statistics.median(times) for key, times in loader_times.items()}
    step_rate = args.batch_size / statistics.median(step_times)
    parameters = sum(p.numel() for p in model.parameters()) / 1e6
    setting = (f"model {config.image_size}px/p{config.patch_size} C={config.num_channels}, batch {args.batch_size}, "
               f"{args.threads} thread(s), num_workers={workers} (the default), medians of {len(step_times)} batches")
    below = False
    print(f"data_build_and_export_s {' / '.join(f'{build_seconds[s]:.1f}' for s in TARGETS)}  ({args.num_images} "
          f".npy files of {' / '.join(f'{s}px' for s in TARGETS)} -> builder -> Parquet -> load_dataset)")
    print(f"train_step_images_per_s {step_rate:.0f}  (default LensMAEForPreTraining, {parameters:.2f}M params, "
          f"AdamW; {setting})")
    for size, target in TARGETS.items():
        for path, what in (("set_transform", "with_training_transforms: set_transform view, D4 + min-max per batch"),
                           ("scripts", "the scripts' path: ModelInputs numpy rows + collate min-max, loop's D4")):
            ratio = rates[(size, path)] / step_rate
            below |= ratio < target
            print(f"data_{size}px_{path}_images_per_s {rates[(size, path)]:.0f}  (exported Parquet, stored "
                  f"{size}px -> {config.image_size}px; {what})")
            print(f"data_{size}px_{path}_over_train_ratio {ratio:.1f}  ({verdict(ratio, target)})")
    ratio = rates[("stream", "scripts")] / step_rate
    below |= ratio < STREAM_TARGET
    print(f"stream_images_per_s {rates[('stream', 'scripts')]:.0f}  (--streaming: SimulatedLensDataset "
          f"{STREAM_PRESET} {config.image_size}px simulated in the DataLoader, collate min-max, loop's D4)")
    print(f"stream_over_train_ratio {ratio:.1f}  ({verdict(ratio, STREAM_TARGET)})")
    if below:
        sys.exit(1)


if __name__ == "__main__":
    main()
