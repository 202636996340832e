"""How cost grows with image size and batch: simulator images/s (Model II physics at 32-150 px) and the train-step
time of the default LensMAE pretraining model (`small`: 3.1-3.2 M parameters with its decoder) at those sizes and two
batch sizes, one thread, medians. A table to plan a 10^6-image run from (BENCHMARKS.md), not a target.

Usage: python benchmarks/bench_scaling.py [--quick]   (--quick: one size, tiny batch, for the smoke test)
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from lens_hf import LensMAEConfig, LensMAEForPreTraining  # noqa: E402
from lens_hf.simulation import get_preset, simulate  # noqa: E402

# (image size, patch size): the patch keeps 64-225 tokens, as the scripts' geometries do.
GEOMETRIES = ((32, 4), (64, 8), (100, 10), (150, 10))
BATCHES = (16, 64)


def simulator_images_per_second(size: int, count: int, repeats: int) -> float:
    preset = get_preset("model_ii", image_size=size)
    simulate(preset, n=8, seed=0)  # warm-up
    times = []
    for repeat in range(repeats):
        start = time.perf_counter()
        simulate(preset, n=count, seed=repeat + 1)
        times.append(time.perf_counter() - start)
    return count / statistics.median(times)


def train_step_seconds(size: int, patch: int, batch: int, steps: int) -> float:
    torch.manual_seed(0)
    model = LensMAEForPreTraining(LensMAEConfig(image_size=size, patch_size=patch))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    pixels = torch.rand(batch, 1, size, size)
    times = []
    for step in range(steps + 2):
        start = time.perf_counter()
        model(pixel_values=pixels).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    geometries, batches = (GEOMETRIES[:1], (4,)) if args.quick else (GEOMETRIES, BATCHES)
    count, repeats, steps = (16, 1, 1) if args.quick else (256, 3, 5)
    for size, patch in geometries:
        rate = simulator_images_per_second(size, count, repeats)
        print(f"scaling_simulator_images_per_s_{size}px {rate:.0f}  (model_ii physics, noise, 1 thread)")
        for batch in batches:
            seconds = train_step_seconds(size, patch, batch, steps)
            print(f"scaling_train_step_ms_{size}px_p{patch}_batch{batch} {seconds * 1e3:.0f}  "
                  f"({batch / seconds:.0f} images/s; default LensMAE pretraining, AdamW, 1 thread)")


if __name__ == "__main__":
    main()
