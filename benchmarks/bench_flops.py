"""Achieved FLOP/s of a LensMAE pretraining train step against the machine's measured matmul peak.

FLOPs of forward + backward are counted by torch's FlopCounterMode (matmuls, convolutions, attention); the peak is
the best of several large square matmuls in the same dtype on the same device. On CPU everything runs on one
thread; on a GPU (when present) the step runs in bf16 autocast and the peak is a bf16 matmul, so the ratio is MFU.
Prints one line per figure.
Usage: python benchmarks/bench_flops.py [--batch_size 64 --steps 10 --device cpu|cuda]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from lens_hf import LensMAEConfig, LensMAEForPreTraining  # noqa: E402


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int, repeats: int = 5) -> float:
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--patch_size", type=int, default=8)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = torch.device(args.device)
    use_bf16 = device.type == "cuda"
    torch.manual_seed(0)
    model = LensMAEForPreTraining(LensMAEConfig(image_size=args.image_size, patch_size=args.patch_size)).to(device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    pixel_values = torch.rand(args.batch_size, 1, args.image_size, args.image_size, device=device)
    noise = torch.rand(args.batch_size, model.config.num_patches, device=device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss = model(pixel_values=pixel_values, noise=noise).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    for _ in range(2):
        step()
    times = []
    for _ in range(args.steps):
        synchronize(device)
        start = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    achieved = flops / statistics.median(times)
    peak = matmul_peak(device, torch.bfloat16 if use_bf16 else torch.float32, 4096 if device.type == "cuda" else 1024)
    where = torch.cuda.get_device_name() if device.type == "cuda" else "CPU, 1 thread"
    precision = "bf16" if use_bf16 else "fp32"
    print(f"train_step_gflop {flops / 1e9:.2f}  (LensMAE default {args.image_size}px/p{args.patch_size}, batch {args.batch_size}, fwd+bwd)")
    print(f"train_step_achieved_gflops {achieved / 1e9:.2f}  ({where}, {precision}, median of {args.steps} steps)")
    print(f"matmul_peak_gflops {peak / 1e9:.2f}  ({where}, {precision})")
    print(f"train_step_flops_over_matmul_peak {achieved / peak:.3f}  ({'MFU' if use_bf16 else 'fraction of measured peak'})")


if __name__ == "__main__":
    main()
