"""The tasks lens_hf trains, one object each (see `base.Task`), and the registry every script, the evaluation
and the model cards read. Adding a task is one file here (a `Task` subclass) plus one line in `TASKS`.

A saved model's config records its task as `config.lens_task`; `task_of` reads it back, so a two-class
classifier is evaluated as a classifier, not guessed to be a lens finder."""

from __future__ import annotations

from .base import CardSection, LossContext, Task
from .classification import ClassificationTask
from .contrastive import ContrastiveTask
from .lens_finding import LensFindingTask
from .pretraining import PretrainingTask
from .regression import RegressionTask
from .super_resolution import SuperResolutionTask

TASKS: dict[str, Task] = {task.name: task for task in (
    PretrainingTask(),
    ClassificationTask(),
    RegressionTask(),
    LensFindingTask(),
    SuperResolutionTask(),
    ContrastiveTask(),
)}

CONFIG_FIELD = "lens_task"


def get_task(name: str | Task) -> Task:
    """The task registered as `name` (a Task passes through)."""
    if isinstance(name, Task):
        return name
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; lens_hf tasks are {', '.join(TASKS)}")
    return TASKS[name]


def task_of(config, where: str = "the model config") -> Task:
    """The task a saved model was trained for, read from `config.lens_task` (a config, a model, or a dict)."""
    config = getattr(config, "config", config)
    name = config.get(CONFIG_FIELD) if isinstance(config, dict) else getattr(config, CONFIG_FIELD, None)
    if not name:
        raise ValueError(f"{where} has no `{CONFIG_FIELD}` field, so its task is unknown (a model saved by lens-hf "
                         f"records it; pass the task explicitly, one of {', '.join(TASKS)}).")
    return get_task(name)


__all__ = ["CardSection", "LossContext", "TASKS", "Task", "get_task", "task_of", "CONFIG_FIELD"]
