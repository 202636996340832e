"""Data-loading throughput vs training consumption: data must never be the bottleneck.

The data path is the real one: files in the foundation-set layout -> the `deeplense` builder ->
Parquet export -> `datasets.load_dataset(folder)` -> `with_training_transforms` (random D4 +
LensImageProcessor min-max) -> a shuffled torch DataLoader with no worker processes, i.e. one core.
The consumer is one AdamW train step of the default `LensMAEForPreTraining(LensMAEConfig())`.
Batches of both are timed in alternating rounds (so machine noise hits both alike); per-batch
medians give images/s. Prints one line per figure; exits 1 if the ratio is below 3.
Usage: python benchmarks/bench_data.py [--num_images 2048 --batch_size 64 --rounds 8 --batches_per_round 4 --source_size 150]
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
from lens_hf.data import LensTrainingTransform, export_builder, prepare_builder, with_training_transforms  # noqa: E402
from lens_hf.data.sample_layouts import write_class_folders  # noqa: E402

REQUIRED_RATIO = 3.0


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


def batches_forever(loader):
    while True:
        yield from loader


def timed_batches(iterator, count: int) -> list[float]:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        batch = next(iterator)
        batch["pixel_values"].sum().item()  # make sure the batch is materialised
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_images", type=int, default=2048)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--batches_per_round", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--source_size", type=int, default=None,
                        help="side of the stored images (default: the model's; 150 = Model I, resized by the processor)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    datasets.disable_progress_bars()

    config = LensMAEConfig()
    model = LensMAEForPreTraining(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1.5e-4, betas=(0.9, 0.95), weight_decay=0.05)
    processor = LensImageProcessor(size=config.image_size, num_channels=config.num_channels, normalization="minmax")

    with tempfile.TemporaryDirectory(prefix="bench_data_") as workdir:
        build_start = time.perf_counter()
        source_size = args.source_size or config.image_size
        dataset = exported_dataset(Path(workdir), args.num_images, source_size)
        build_seconds = time.perf_counter() - build_start
        transformed = with_training_transforms(dataset, processor)["train"]
        collate_transform = LensTrainingTransform(processor, augment=True)
        loaders = {
            "set_transform": torch.utils.data.DataLoader(
                transformed, batch_size=args.batch_size, shuffle=True, drop_last=True, num_workers=0,
                generator=torch.Generator().manual_seed(0),
            ),
            "numpy_collate": torch.utils.data.DataLoader(
                dataset["train"].with_format("numpy"), batch_size=args.batch_size, shuffle=True, drop_last=True,
                num_workers=0, generator=torch.Generator().manual_seed(0), collate_fn=collate_transform.collate,
            ),
        }
        streams = {name: batches_forever(loader) for name, loader in loaders.items()}
        for stream in streams.values():
            next(stream)  # the first batch opens the Arrow files
        sample = next(streams["set_transform"])["pixel_values"]
        loader_times = {name: [] for name in loaders}
        step_times = []
        model.train()
        for _ in range(args.rounds):
            for name, stream in streams.items():
                loader_times[name] += timed_batches(stream, args.batches_per_round)
            for _ in range(args.batches_per_round):
                start = time.perf_counter()
                loss = model(pixel_values=sample).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                step_times.append(time.perf_counter() - start)

    rates = {name: args.batch_size / statistics.median(times) for name, times in loader_times.items()}
    step_rate = args.batch_size / statistics.median(step_times)
    ratio = rates["set_transform"] / step_rate
    parameters = sum(p.numel() for p in model.parameters()) / 1e6
    setting = (f"stored {source_size}px -> model {config.image_size}px/p{config.patch_size} C={config.num_channels}, "
               f"batch {args.batch_size}, {args.threads} thread(s), medians of {len(step_times)} batches")
    print(f"data_build_and_export_s {build_seconds:.1f}  ({args.num_images} .npy files -> builder -> Parquet -> load_dataset)")
    print(f"dataloader_images_per_s {rates['set_transform']:.0f}  (exported Parquet, with_training_transforms: "
          f"set_transform D4 + min-max, num_workers=0; {setting})")
    print(f"dataloader_numpy_collate_images_per_s {rates['numpy_collate']:.0f}  (same data and transform as a collate_fn "
          f"over with_format('numpy'))")
    print(f"train_step_images_per_s {step_rate:.0f}  (default LensMAEForPreTraining, {parameters:.2f}M params, AdamW; {setting})")
    print(f"data_over_train_throughput_ratio {ratio:.1f}  (set_transform path; required >= {REQUIRED_RATIO:g})")
    print(f"numpy_collate_over_train_throughput_ratio {rates['numpy_collate'] / step_rate:.1f}")
    if ratio < REQUIRED_RATIO:
        sys.exit(1)


if __name__ == "__main__":
    main()
