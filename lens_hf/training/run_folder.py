"""Whose run is in an output folder, and may this run write there.

A run is identified by what it computes: its task and every argument except those that only say where or how
it is logged, checkpointed or published (`VOLATILE`). The identity is recorded in `run_config.json` of a
finished run and in `run_arguments.json` of every checkpoint. A new run into a folder that holds another run's
files is an error unless `--overwrite_output_dir` is given (then the previous run's files are removed first, so
no checkpoint, metric or card of it survives beside the new one); `--resume_from_checkpoint` continues only a
run with the same identity."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

# Arguments that do not change what a run computes: resuming, re-logging or publishing a run with other values
# of these is the same run (resuming is exact; evaluation runs on a fork of the RNG).
VOLATILE = {
    "DataArguments": {"cache_dir", "dataloader_num_workers"},
    "RunArguments": {"output_dir", "resume_from_checkpoint", "overwrite_output_dir", "logging_steps", "eval_steps",
                     "save_steps", "save_total_limit", "report_to", "run_name", "push_to_hub", "hub_model_id",
                     "hub_private_repo", "hub_token", "cpu", "disable_progress_bar", "per_device_eval_batch_size"},
}
RUN_ARGUMENTS = "run_arguments.json"  # a checkpoint's copy of the identity
# What a lens-hf run writes into its output folder; `--overwrite_output_dir` removes exactly these.
RUN_FILES = ("checkpoints", "logs", "plots", "merged", "metrics.json", "run_config.json", "README.md", "config.json",
             "preprocessor_config.json", "adapter_config.json", "model.safetensors", "model.safetensors.index.json",
             "adapter_model.safetensors", "evaluations")
RUN_FILE_PATTERNS = ("model-*.safetensors", "configuration_*.py", "modeling_*.py", "reconstruction_*.png")


class OutputDirError(ValueError):
    """The output folder holds another run (or this run cannot write there); the message says what to do."""


def run_identity(task_name: str, arguments: dict) -> dict:
    """`arguments` (`arguments_to_dict`: dataclass name -> fields) without the volatile fields, plus the task."""
    identity = {"task": task_name}
    for group, values in arguments.items():
        skip = VOLATILE.get(group, set())
        identity[group] = {k: v for k, v in values.items() if k not in skip}
    return json.loads(json.dumps(identity, default=str))  # as it reads back from JSON (tuples -> lists, ...)


def identity_differences(recorded: dict, current: dict) -> list[str]:
    """'group.field: recorded -> current' for every field that differs (volatile fields of `recorded` ignored)."""
    recorded = run_identity(recorded.get("task", "?"), {k: v for k, v in recorded.items()
                                                         if isinstance(v, dict) and k in current})
    differences = [f"task: {recorded['task']!r} -> {current['task']!r}"] if recorded["task"] != current["task"] else []
    for group in sorted((set(recorded) | set(current)) - {"task"}):
        old, new = recorded.get(group, {}), current.get(group, {})
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                differences.append(f"{group}.{key}: {old.get(key)!r} -> {new.get(key)!r}")
    return differences


def run_files(output_dir: Path) -> list[Path]:
    """The files and folders of a lens-hf run in `output_dir`."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [output_dir / name for name in RUN_FILES if (output_dir / name).exists() or (output_dir / name).is_symlink()]
    for pattern in RUN_FILE_PATTERNS:
        found += sorted(output_dir.glob(pattern))
    return found


def recorded_identity(output_dir: Path) -> dict | None:
    """The identity a finished run recorded in its run_config.json (None when there is none or it is unreadable)."""
    try:
        record = json.loads((Path(output_dir) / "run_config.json").read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "task" in record else None


def claim_output_dir(output_dir, identity: dict, resume: str | None, overwrite: bool, is_main_process: bool = True):
    """Check (every process) that this run may write into `output_dir`; with `overwrite`, the main process removes
    the previous run's files. A folder with a finished run of the same identity may be resumed (the result is
    recomputed exactly); one with checkpoints is checked checkpoint by checkpoint when it is resumed from
    (`checkpoint.load_checkpoint`)."""
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputDirError(f"--output_dir {output_dir} exists and is not a folder")
    existing = run_files(output_dir)
    if not existing:
        return
    if overwrite:
        if is_main_process:
            for path in existing:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        return
    names = ", ".join(sorted(p.name for p in existing)[:6])
    if resume is None:
        raise OutputDirError(
            f"--output_dir {output_dir} holds another run ({names}): pass --resume_from_checkpoint latest to continue "
            "it, --overwrite_output_dir to replace it (its model, card, metrics and checkpoints are deleted), or "
            "another --output_dir")
    recorded = recorded_identity(output_dir)
    if recorded is not None:
        differences = identity_differences(recorded, identity)
        if differences:
            raise OutputDirError(
                f"--output_dir {output_dir} holds a finished run of another configuration; resuming would mix the two. "
                f"Differences (recorded -> now): {'; '.join(differences[:8])}. Use another --output_dir or "
                "--overwrite_output_dir.")


def save_identity(checkpoint: Path, identity: dict) -> None:
    (Path(checkpoint) / RUN_ARGUMENTS).write_text(json.dumps(identity, indent=1))
