"""Checkpoints: `accelerator.save_state` folders under `<output_dir>/checkpoints/step_<N>/` plus a
`trainer_state.json` (step, epoch, batches consumed) written last, so a folder without it (a run killed while
saving) is never resumed from."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

TRAINER_STATE = "trainer_state.json"
CHECKPOINTS = "checkpoints"


@dataclass
class TrainState:
    global_step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0  # dataloader batches (micro-batches) consumed in the current epoch


def checkpoint_path(output_dir, step: int) -> Path:
    return Path(output_dir) / CHECKPOINTS / f"step_{step:08d}"


def complete_checkpoints(output_dir) -> list[Path]:
    """Finished checkpoints, oldest first."""
    folder = Path(output_dir) / CHECKPOINTS
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("step_*") if (p / TRAINER_STATE).is_file())


def resolve_checkpoint(output_dir, spec: str | None) -> Path | None:
    """`None` -> no resume; `"latest"` -> newest complete checkpoint (None if there is none yet, so the same
    command starts or resumes a run); anything else must be a complete checkpoint folder."""
    if spec is None:
        return None
    if spec == "latest":
        found = complete_checkpoints(output_dir)
        return found[-1] if found else None
    path = Path(spec)
    if not (path / TRAINER_STATE).is_file():
        raise FileNotFoundError(
            f"resume_from_checkpoint={spec!r} is not a complete checkpoint (no {TRAINER_STATE}); "
            f"available: {[str(p) for p in complete_checkpoints(output_dir)] or 'none'}"
        )
    return path


def save_checkpoint(accelerator, output_dir, state: TrainState, keep: int) -> Path:
    """Save model/optimizer/scheduler/RNG state on every process, then (main process) the trainer state and the
    rotation of old checkpoints."""
    path = checkpoint_path(output_dir, state.global_step)
    accelerator.save_state(str(path))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (path / TRAINER_STATE).write_text(json.dumps(asdict(state), indent=2))
        for old in complete_checkpoints(output_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return path


def load_checkpoint(accelerator, path: Path) -> TrainState:
    accelerator.load_state(str(path))
    return TrainState(**json.loads((Path(path) / TRAINER_STATE).read_text()))
