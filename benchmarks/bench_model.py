"""Train-step time of LensMAEForPreTraining vs transformers.ViTMAEForPreTraining of identical size.

One process, one thread, same batch, same mask noise; the two models' steps are interleaved so machine noise
hits both alike, and the median of the per-step times is compared. A third model, LensMAE under bf16 autocast (the
scripts' `--mixed_precision bf16`), is timed the same way against the fp32 ViTMAE (target <= 0.75). Prints one line
per figure.
Usage: python benchmarks/bench_model.py [--geometries 64:4:32,150:10:16 --steps 8]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from transformers import ViTMAEConfig, ViTMAEForPreTraining  # noqa: E402

from lens_hf import LensMAEConfig, LensMAEForPreTraining  # noqa: E402


def matched_configs(image_size: int, patch_size: int) -> tuple[LensMAEConfig, ViTMAEConfig]:
    lens = LensMAEConfig(image_size=image_size, patch_size=patch_size)
    shared = {
        name: getattr(lens, name)
        for name in (
            "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
            "layer_norm_eps", "image_size", "patch_size", "num_channels", "qkv_bias", "decoder_hidden_size",
            "decoder_num_hidden_layers", "decoder_num_attention_heads", "decoder_intermediate_size", "mask_ratio",
            "norm_pix_loss",
        )
    }
    return lens, ViTMAEConfig(**shared)


def train_step(model, optimizer, pixel_values, noise, bf16: bool = False) -> float:
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model(pixel_values=pixel_values, noise=noise).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def measure(image_size: int, patch_size: int, batch_size: int, args) -> None:
    torch.manual_seed(0)
    lens_config, vit_config = matched_configs(image_size, patch_size)
    models = {"lens_mae": LensMAEForPreTraining(lens_config), "vit_mae": ViTMAEForPreTraining(vit_config),
              "lens_mae_bf16": LensMAEForPreTraining(lens_config)}
    counts = {name: sum(p.numel() for p in m.parameters() if p.requires_grad) for name, m in models.items()}
    if counts["lens_mae"] != counts["vit_mae"]:
        raise SystemExit(f"models differ in size: {counts}")
    optimizers = {name: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4) for name, m in models.items()}
    pixel_values = torch.rand(batch_size, lens_config.num_channels, image_size, image_size)
    noise = torch.rand(batch_size, lens_config.num_patches)

    times = {name: [] for name in models}
    for step in range(args.warmup + args.steps):
        order = list(models) if step % 2 == 0 else list(reversed(models))
        for name in order:
            elapsed = train_step(models[name], optimizers[name], pixel_values, noise, bf16=name.endswith("bf16"))
            if step >= args.warmup:
                times[name].append(elapsed)

    median = {name: statistics.median(values) for name, values in times.items()}
    geometry = f"{image_size}px/p{patch_size} batch {batch_size}, {counts['lens_mae'] / 1e6:.2f}M params, {args.threads} thread(s)"
    tag = f"{image_size}px_p{patch_size}"
    print(f"vit_mae_train_step_ms_{tag} {median['vit_mae'] * 1e3:.1f}  ({geometry})")
    print(f"lens_mae_train_step_ms_{tag} {median['lens_mae'] * 1e3:.1f}  ({geometry})")
    plain = median["lens_mae"] / median["vit_mae"]
    print(f"lens_mae_over_vit_mae_step_time_ratio_{tag} {plain:.3f}  (target <= 1.05: {'ok' if plain <= 1.05 else 'below'}; "
          f"both fp32, median of {args.steps} interleaved steps)")
    bf16 = median["lens_mae_bf16"] / median["vit_mae"]
    print(f"lens_mae_bf16_over_vit_mae_fp32_step_time_ratio_{tag} {bf16:.3f}  (target <= 0.75: {'ok' if bf16 <= 0.75 else 'below'}; "
          "bf16 autocast, as --mixed_precision bf16)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--geometries", default="64:4:32,150:10:16",
                        help="comma-separated image_size:patch_size:batch_size (the issue's two: 64 px / patch 4, 150 px / patch 10)")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for geometry in args.geometries.split(","):
        try:
            image_size, patch_size, batch_size = (int(part) for part in geometry.split(":"))
        except ValueError:
            raise SystemExit(f"--geometries: expected image_size:patch_size:batch_size, got {geometry!r}")
        measure(image_size, patch_size, batch_size, args)


if __name__ == "__main__":
    main()
