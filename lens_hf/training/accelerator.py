"""The one Accelerator factory every script uses (lerobot style): precision, accumulation, seeded data order,
tracker and project folders all come from `RunArguments`."""

from __future__ import annotations

import logging
import os

import torch

from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, TorchDynamoPlugin, set_seed

TRACKERS = ("tensorboard", "none")


def build_accelerator(run_args) -> Accelerator:
    """An `Accelerator` for `run_args`; seeds every process identically (same initial weights everywhere). The
    tracker is started separately (`start_tracker`), once the run may write into its folder."""
    if run_args.report_to not in TRACKERS:
        raise ValueError(f"report_to must be one of {TRACKERS}, got {run_args.report_to!r}")
    if run_args.gradient_accumulation_steps < 1:
        raise ValueError(f"gradient_accumulation_steps must be >= 1, got {run_args.gradient_accumulation_steps}")
    accelerator = Accelerator(
        # Without an accelerator, cpu=True is what makes `accelerate launch --multi_gpu --num_processes N` start
        # N gloo ranks (DistributedType.MULTI_CPU) instead of N independent single-process runs.
        cpu=run_args.cpu or not has_accelerator_device(),
        mixed_precision=run_args.mixed_precision,
        # Masks of dynamic size per batch would recompile for every shape: compile for dynamic shapes.
        dynamo_plugin=TorchDynamoPlugin(backend="inductor", dynamic=True) if run_args.torch_compile else None,
        gradient_accumulation_steps=run_args.gradient_accumulation_steps,
        log_with=None if run_args.report_to == "none" else run_args.report_to,
        project_config=ProjectConfiguration(
            project_dir=run_args.output_dir, logging_dir=os.path.join(run_args.output_dir, "logs")
        ),
        # The shuffling order depends only on (seed, epoch): resumed runs see exactly the same batches.
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    set_seed(run_args.seed)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    logging.getLogger("lens_hf").setLevel(logging.INFO if accelerator.is_main_process else logging.WARNING)
    return accelerator


def start_tracker(accelerator: Accelerator, run_args, tracker_config: dict, project_name: str = "lens_hf") -> None:
    """Start the tracker `run_args.report_to` asks for (it writes into `<output_dir>/logs`), with
    `tracker_config` as hyper-parameters."""
    if run_args.report_to != "none":
        accelerator.init_trackers(run_args.run_name or project_name, config=_flat_hparams(tracker_config))


def native_bf16() -> bool:
    """True where bf16 autocast is a speed-up rather than an emulation: a CUDA GPU with bf16, or a CPU with
    AVX512-BF16 / AMX instructions (measured on such a CPU, one thread: a default-LensMAE train step at 32 px / patch 4,
    batch 64, takes 0.53x (pretraining), 0.41x (classification) and 0.35x (super-resolution) of its fp32 time)."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    cpu = getattr(torch, "cpu", None)
    return any(getattr(cpu, probe, lambda: False)() for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def has_accelerator_device() -> bool:
    return torch.cuda.is_available() or (hasattr(torch.backends, "mps") and torch.backends.mps.is_available())


def _flat_hparams(config: dict, prefix: str = "") -> dict:
    """TensorBoard hparams take scalars and strings only."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flat_hparams(value, name + "."))
        elif isinstance(value, (int, float, str, bool)):
            flat[name] = value
        elif value is not None:
            flat[name] = str(value)
    return flat
