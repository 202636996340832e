"""Shared pieces of the quality benchmarks (one script per row of the quality table): arguments, the published
numbers, and the printed / saved comparison. Every number is produced by re-running the scripts; nothing is
hard-coded but the published references themselves."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from lens_hf.scripts.stages import run_stage, stage_environment
from lens_hf.training import parse_arguments

# What DeepLense reported, on its data (ours: the simulator's faithful re-creation of that data).
PUBLISHED = {
    ("model_i", "accuracy"): (0.915, "CvT; equivariant CNN 0.947"),
    ("model_ii", "accuracy"): (0.994, "DeepLense Model II"),
    ("model_iii", "accuracy"): (0.995, "DeepLense Model III"),
    ("foundation", "roc_auc_micro"): (0.97, "MAE finetune, FM set"),
    ("probe", "roc_auc_micro"): (0.58, "MAE linear probe, FM set"),
    ("regression_model_i", "mae"): (0.28, "ResNet34, dex"),
    ("regression_model_ii", "mae"): (0.22, "ResNet34, dex"),
    ("regression_model_iii", "mae"): (0.13, "ResNet34, dex"),
    ("sr", "psnr"): (33.66, "MAE SR 75->150, dB"),
    ("sr", "ssim"): (0.968, "MAE SR 75->150"),
    ("lens_finding", "roc_auc"): (0.97, "Bologna space set"),
}


@dataclass
class QualityArguments:
    size: str = field(default="cpu", metadata={"help": "cpu (tens of minutes on 2 cores) | full (the published scale; "
                                                      "a GPU) | smoke (seconds; checks the wiring, numbers meaningless)."})
    output_dir: str = field(default="benchmark_output", metadata={"help": "Runs, data cache and results JSON."})
    seed: int = field(default=0, metadata={"help": "Seed of data and training (written into every run)."})
    threads: int = field(default=0, metadata={"help": "torch threads per stage (0: all cores, at most 8)."})
    resume: bool = field(default=False, metadata={"help": "Continue a run cut off by a time limit: the same command "
                                                        "reuses the stages it finished and resumes the unfinished one "
                                                        "from its latest checkpoint (saved every --save_steps)."})
    save_steps: Optional[int] = field(default=None, metadata={"help": "With --resume: checkpoint every N steps "
                                                                "(default: 2000 at full size, about a minute of a "
                                                                "GPU; 250 otherwise)."})

    def __post_init__(self):
        if self.size not in ("smoke", "cpu", "full"):
            raise ValueError(f"--size must be smoke, cpu or full, got {self.size!r}")


def setup(extra_dataclasses=(), argv=None):
    """Parsed arguments, the output folder, `stage(title, script, args)` (runs one script as a stage) and the
    arguments every stage shares (data cache, seeds, checkpointing)."""
    parsed = parse_arguments((QualityArguments, *extra_dataclasses), argv)
    args = parsed[0]
    out = Path(args.output_dir).resolve()
    env = stage_environment(args.threads or min(os.cpu_count() or 1, 8))
    common = ["--cache_dir", out / "cache", "--dataset_seed", args.seed, "--seed", args.seed]
    save_steps = args.save_steps or (2000 if args.size == "full" else 250)
    common += ["--save_steps", save_steps, "--resume_from_checkpoint", "latest"] if args.resume else ["--save_steps", 0]

    def stage(title: str, script: str, stage_args: list, in_process: bool = False) -> Path:
        return run_stage(title, script, stage_args, env, reuse_finished=args.resume, in_process=in_process)

    return parsed, out, stage, common


def relative_folder(folder, out: Path) -> str:
    """`folder` as the results JSON records it: relative to the output folder (`--output_dir`), so the JSON names
    no folder of the machine that produced it. A description that is not a path ("in-process (scikit-learn)")
    is kept as it is."""
    if not isinstance(folder, Path) and not os.path.isabs(str(folder)):
        return str(folder)
    return Path(os.path.relpath(Path(folder).resolve(), Path(out).resolve())).as_posix()


def report(row: str, results: list[tuple], out: Path, started: float, args) -> None:
    """Print one line per figure (ours beside the published number, with the run folder) and save them as JSON,
    run folders relative to `out`."""
    device = "GPU " + __import__("torch").cuda.get_device_name() if __import__("torch").cuda.is_available() else "CPU"
    print(f"\n# {row}: size={args.size}, seed={args.seed}, {device}, {time.time() - started:.0f} s")
    lines = []
    for name, key, value, folder in results:
        published, what = PUBLISHED.get(key, (None, "")) if key else (None, "")
        reference = f"published {published} ({what})" if published is not None else "no published figure"
        print(f"{row}/{name} {value:.4f}  [{reference}]  {folder}")
        lines.append(dict(name=name, value=value, published=published, published_what=what,
                          folder=relative_folder(folder, out)))
    path = out / f"quality_{row}.json"
    path.write_text(json.dumps({"row": row, "size": args.size, "seed": args.seed, "device": device,
                                "seconds": time.time() - started, "figures": lines}, indent=2))
    print(f"# saved {path}")
