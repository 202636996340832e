"""Checkpoints: `accelerator.save_state` folders under `<output_dir>/checkpoints/step_<N>/` plus
`scheduler_state.json`, for a run on a training stream `data_state.json` (where the stream stands), and a
`trainer_state.json` (step, epoch, batches consumed) written last, so a folder without it (a run killed while
saving) is never resumed from.

Nothing in a checkpoint can run code on resume. The project's own state (trainer position, lr schedule) is JSON,
the weights are safetensors, and every file accelerate unpickles (the optimizer, the RNG states) is first opened
with torch's restricted `weights_only` unpickler; a file that needs anything else is refused with its name.
accelerate's `register_for_checkpointing` is not used: it unpickles `custom_checkpoint_<i>.pkl` without
restriction."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from .run_folder import RUN_ARGUMENTS, identity_differences, save_identity

TRAINER_STATE = "trainer_state.json"
SCHEDULER_STATE = "scheduler_state.json"
DATA_STATE = "data_state.json"
CHECKPOINTS = "checkpoints"


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from safely; the message names the file."""


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


def save_checkpoint(accelerator, output_dir, state: TrainState, keep: int, scheduler=None,
                    identity: dict | None = None, data_state: dict | None = None) -> Path:
    """Save model/optimizer/RNG state on every process, then (main process) the scheduler state, the data state
    (`data_state`: e.g. a training stream's position, the same on every process), the run's identity
    (`run_folder.run_identity`) and the trainer state as JSON, and the rotation of old checkpoints."""
    path = checkpoint_path(output_dir, state.global_step)
    accelerator.save_state(str(path))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if scheduler is not None:
            (path / SCHEDULER_STATE).write_text(json.dumps(scheduler.state_dict(), indent=1))
        if data_state is not None:
            (path / DATA_STATE).write_text(json.dumps(data_state, indent=1))
        if identity is not None:
            save_identity(path, identity)
        (path / TRAINER_STATE).write_text(json.dumps(asdict(state), indent=2))
        for old in complete_checkpoints(output_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return path


def weights_problem(path: Path) -> str | None:
    """Why the weights in checkpoint `path` are not usable (a missing file, a non-finite tensor), or None."""
    from safetensors import safe_open

    files = sorted(Path(path).glob("model*.safetensors"))
    if not files:
        return f"no model*.safetensors in {path}"
    import torch

    for file in files:
        try:
            with safe_open(str(file), framework="pt") as handle:
                for name in handle.keys():
                    tensor = handle.get_tensor(name)
                    if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                        return f"{file.name}: tensor {name} is not finite"
        except Exception as error:  # a truncated or foreign file
            return f"{file.name} cannot be read ({type(error).__name__}: {str(error)[:120]})"
    return None


def last_good_checkpoint(output_dir, losses: dict[int, float]) -> tuple[Path | None, list[str]]:
    """The newest complete checkpoint whose weights are all finite and whose training losses (`losses`: step ->
    loss) are finite up to the step after it, the first loss computed with its weights (a checkpoint saved just
    before the loss went NaN holds the weights that produced it), and why each newer one was passed over."""
    import math

    passed_over = []
    for path in reversed(complete_checkpoints(output_dir)):
        try:
            step = int(json.loads((path / TRAINER_STATE).read_text())["global_step"])
        except (OSError, ValueError, KeyError, TypeError):
            passed_over.append(f"{path.name}: unreadable {TRAINER_STATE}")
            continue
        bad_steps = sorted(s for s, loss in losses.items() if s <= step + 1 and not math.isfinite(loss))
        problem = weights_problem(path) or (f"the loss at step {bad_steps[0]} is not finite" if bad_steps else None)
        if problem is None:
            return path, passed_over
        passed_over.append(f"{path.name}: {problem}")
    return None, passed_over


def _read_json(file: Path) -> dict:
    try:
        value = json.loads(file.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{file} is missing: the checkpoint is incomplete") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{file} is not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{file} must hold a JSON object, got {type(value).__name__}")
    return value


def check_pickles(path: Path) -> None:
    """Open every pickled file of a checkpoint with torch's `weights_only` unpickler (plus the numpy types
    accelerate allows for RNG states) before accelerate loads it: a file that would need any other global, e.g.
    one that calls `os.system` when unpickled, raises `CheckpointError` and nothing of it runs."""
    import torch
    from accelerate.utils.other import TORCH_SAFE_GLOBALS

    for file in sorted(Path(path).iterdir()):
        if file.suffix not in (".bin", ".pkl", ".pt", ".pth"):
            continue
        if file.name.startswith("custom_checkpoint_"):
            raise CheckpointError(f"{file} is an unrestricted pickle (accelerate's custom state): lens-hf never loads "
                                  "one. Its checkpoints keep the scheduler in scheduler_state.json; remove the file "
                                  "or start the run again.")
        try:
            with torch.serialization.safe_globals(list(TORCH_SAFE_GLOBALS)):
                torch.load(file, map_location="cpu", weights_only=True)
        except Exception as error:  # UnpicklingError, a truncated file, ...: one message naming the file
            raise CheckpointError(f"{file} cannot be loaded safely ({type(error).__name__}: "
                                  f"{str(error).splitlines()[0][:200]}); refusing to resume from {path}") from None


def load_data_state(path, key: str) -> dict:
    """Entry `key` of checkpoint `path`'s data_state.json (a training stream's `{"start": images consumed}`),
    checked to be a JSON object of non-negative integers."""
    file = Path(path) / DATA_STATE
    record = _read_json(file)
    if key not in record:
        raise CheckpointError(f"{file} has no {key!r} entry (it has {sorted(record)}): the checkpoint cannot say "
                              "where the training stream stands")
    state = record[key]
    if not isinstance(state, dict) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                              for v in state.values()):
        raise CheckpointError(f"{file}: {key!r} must be an object of non-negative integers, got {state!r}")
    return state


def load_checkpoint(accelerator, path: Path, scheduler=None, identity: dict | None = None) -> TrainState:
    """Validate `path` (JSON state, that it is a checkpoint of this run's configuration `identity`, restricted
    pickles, the RNG state of this process), then restore it."""
    path = Path(path)
    if identity is not None:
        differences = identity_differences(_read_json(path / RUN_ARGUMENTS), identity)
        if differences:
            raise CheckpointError(
                f"{path} is a checkpoint of another run configuration; resuming would continue that run under this "
                f"one's name. Differences (checkpoint -> now): {'; '.join(differences[:8])}. Use another "
                "--output_dir, or --overwrite_output_dir without --resume_from_checkpoint to start again.")
    raw = _read_json(path / TRAINER_STATE)
    try:
        state = TrainState(**raw)
    except TypeError:
        raise CheckpointError(f"{path / TRAINER_STATE} has fields {sorted(raw)}, expected "
                              f"{sorted(asdict(TrainState()))}") from None
    if not all(isinstance(v, int) and v >= 0 for v in asdict(state).values()):
        raise CheckpointError(f"{path / TRAINER_STATE} must hold non-negative integers, got {raw}")
    rng = path / f"random_states_{accelerator.process_index}.pkl"
    if not rng.is_file():  # accelerate would go on with other randomness, and the run would not be exact
        raise CheckpointError(f"{rng} is missing: the checkpoint cannot restore this process's randomness")
    if not any(path.glob("model*.safetensors")):
        raise CheckpointError(f"{path} has no model*.safetensors: the checkpoint's weights are missing")
    scheduler_state = _read_json(path / SCHEDULER_STATE) if scheduler is not None else None
    check_pickles(path)
    accelerator.load_state(str(path))
    if scheduler is not None:
        scheduler.load_state_dict(scheduler_state)
    return state
