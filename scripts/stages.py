"""Running the scripts as stages of a larger job (the demo, the quality benchmarks): each stage is the ordinary
command line (`python -m lens_hf.scripts.<name> ...`, which works from a checkout and from an installed wheel),
printed before it runs, so any stage can be rerun or scaled up by hand. A secret among the arguments (a Hub
token) is shown and recorded as `***`."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from lens_hf.redaction import is_secret

HIDDEN = "***"


def stage_environment(threads: int) -> dict:
    """The environment of a stage: `threads` torch threads, quiet transformers."""
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "TRANSFORMERS_VERBOSITY": "error"}


def shown(words: list[str]) -> list[str]:
    """`words` as printed and recorded: the value of a secret flag (`--hub_token X`, `--hub_token=X`) and any
    token-like word replaced by `***`."""
    def one(index: int, word: str) -> str:
        flag = words[index - 1] if index else ""
        if word.startswith("--") and "=" in word:
            name, _, value = word.partition("=")
            return f"{name}={HIDDEN}" if is_secret(name[2:], value) else word
        if flag.startswith("--") and "=" not in flag and not word.startswith("--") and is_secret(flag[2:]):
            return HIDDEN
        return HIDDEN if is_secret("", word) else word

    return [one(index, word) for index, word in enumerate(words)]


# Written into a finished stage's run folder: the command line that produced it (logs/ is not pushed to the Hub).
STAGE_RECORD = Path("logs") / "stage_command.json"
# Flags that say how a run is checkpointed or whether it may replace another, not what it computes (resuming is
# exact): a run finished with other values of these is the same run.
CHECKPOINT_FLAGS = ("--save_steps", "--save_total_limit", "--resume_from_checkpoint", "--overwrite_output_dir")


def run_stage(title: str, script: str, args: list, env: dict, timings: list | None = None,
              reuse_finished: bool = False, in_process: bool = False) -> Path:
    """Run the script `script` ("finetune.py": `python -m lens_hf.scripts.finetune`) with `args` (which must
    include `--output_dir`); returns the run folder.

    `reuse_finished`: a run folder that a previous call finished with the same command (recorded in
    `logs/stage_command.json` beside its metrics.json; checkpointing flags aside) is returned as it is instead of
    being trained again, so a long job cut off by a time limit continues where it stopped.
    `in_process`: call the script's `main(args)` in this process (the command printed is still the one to rerun
    it by hand): a job of many short stages saves each stage's interpreter start and imports (several seconds);
    `env` is then not applied, the caller sets its threads."""
    module = f"lens_hf.scripts.{Path(script).stem}"
    words = ["python", "-m", module, *map(str, args)]
    folder = Path(words[words.index("--output_dir") + 1])
    print(f"\n==> {title}\n$ {' '.join(shown(words))}", flush=True)
    if reuse_finished and finished_with(folder, words):
        print(f"(finished earlier with this command: reusing {folder})", flush=True)
        return folder
    (folder / STAGE_RECORD).unlink(missing_ok=True)  # until this run finishes, the folder is not a finished run
    start = time.time()
    if in_process:
        importlib.import_module(module).main(words[3:])
    else:
        result = subprocess.run([sys.executable, *words[1:]], env=env)
        if result.returncode != 0:
            raise SystemExit(f"stage {title!r} failed (exit {result.returncode}); its command is printed above")
    if timings is not None:
        timings.append((title, time.time() - start))
    (folder / STAGE_RECORD).parent.mkdir(parents=True, exist_ok=True)
    (folder / STAGE_RECORD).write_text(json.dumps({"command": shown(words)}, indent=1))
    return folder


def finished_with(folder: Path, words: list[str]) -> bool:
    """Whether `folder` holds a finished run (metrics.json) of the command `words`, checkpointing flags aside."""
    record = Path(folder) / STAGE_RECORD
    if not (record.exists() and (Path(folder) / "metrics.json").exists()):
        return False
    try:
        recorded = json.loads(record.read_text())["command"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return False  # a damaged record: train again rather than trust it
    return isinstance(recorded, list) and what_it_computes(recorded) == what_it_computes(shown(words))


def what_it_computes(words: list[str]) -> list[str]:
    """`words` without the checkpointing flags and their values."""
    kept, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word in CHECKPOINT_FLAGS:
            skip = True
        else:
            kept.append(word)
    return kept


def summary(folder: Path, split: str = "test") -> dict:
    """The scalar metrics of `split` in a run folder's metrics.json."""
    record = json.loads((Path(folder) / "metrics.json").read_text())
    if split not in record["summary"]:
        raise KeyError(f"{folder}/metrics.json has no {split!r} results (it has {sorted(record['summary'])})")
    return record["summary"][split]


def references(folder: Path) -> dict:
    """The baselines (e.g. bicubic upsampling) a run folder's metrics.json reports beside the model."""
    return json.loads((Path(folder) / "metrics.json").read_text()).get("references", {})
