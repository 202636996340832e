"""The metrics of every lens-hf task as `evaluate` modules that load offline, plus the plain functions and plots.

`evaluate.load("accuracy")` fetches its script from the Hub and fails offline, so lens_hf ships its
own modules, one folder each (`lens_hf/metrics/<name>/<name>.py`). `load(name)` is
`evaluate.load(<path of the bundled module>)`; `functional` holds the numpy implementations.
"""

from __future__ import annotations

from pathlib import Path

METRICS_DIR = Path(__file__).resolve().parent
# The bundled modules: every folder <name>/ holding <name>.py (each task names its own, `Task.metric_module`).
METRIC_NAMES = tuple(sorted(p.name for p in METRICS_DIR.iterdir() if (p / f"{p.name}.py").is_file()))


def module_path(name: str) -> Path:
    """The folder of a bundled metric module, for `evaluate.load(str(path))`."""
    if name not in METRIC_NAMES:
        raise ValueError(f"Unknown lens_hf metric {name!r}; available: {', '.join(METRIC_NAMES)}.")
    path = METRICS_DIR / name
    if not (path / f"{name}.py").is_file():
        raise FileNotFoundError(f"The metric module {path / (name + '.py')} is missing from this lens_hf "
                                "installation (package data not installed?).")
    return path


def load(name: str, **kwargs):
    """`evaluate.load` of the bundled module `name` (one of METRIC_NAMES); works offline."""
    import evaluate

    return evaluate.load(str(module_path(name)), **kwargs)
