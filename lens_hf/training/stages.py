"""Running the scripts as stages of a larger job (the demo, the quality benchmarks): each stage is the ordinary
command line, printed before it runs, so any stage can be rerun or scaled up by hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def stage_environment(threads: int) -> dict:
    """The environment of a stage: `threads` torch threads, quiet transformers, the repository importable."""
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "TRANSFORMERS_VERBOSITY": "error",
            "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def run_stage(title: str, script: str, args: list, env: dict, timings: list | None = None) -> Path:
    """Run `scripts/<script> args` (must include `--output_dir`); returns the run folder."""
    command = [sys.executable, str(REPO_ROOT / "scripts" / script), *map(str, args)]
    print(f"\n==> {title}\n$ {' '.join(['python', f'scripts/{script}', *map(str, args)])}", flush=True)
    start = time.time()
    result = subprocess.run(command, env=env, cwd=REPO_ROOT)
    if result.returncode != 0:
        raise SystemExit(f"stage {title!r} failed (exit {result.returncode}); its command is printed above")
    if timings is not None:
        timings.append((title, time.time() - start))
    return Path(args[list(map(str, args)).index("--output_dir") + 1])


def summary(folder: Path, split: str = "test") -> dict:
    """The scalar metrics of `split` in a run folder's metrics.json."""
    record = json.loads((Path(folder) / "metrics.json").read_text())
    if split not in record["summary"]:
        raise KeyError(f"{folder}/metrics.json has no {split!r} results (it has {sorted(record['summary'])})")
    return record["summary"][split]


def references(folder: Path) -> dict:
    """The baselines (e.g. bicubic upsampling) a run folder's metrics.json reports beside the model."""
    return json.loads((Path(folder) / "metrics.json").read_text()).get("references", {})
