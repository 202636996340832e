"""The console entry points (`lens-hf-finetune`, ...; setup.cfg) and every script's `__main__`: run a script's
`main()` with the command line and exit 0, or with the status the script returns (build_dataset returns 2 for bad
input data; the training scripts return their metrics, which are not an exit status).

A bad input or a failing file system (a `ValueError` such as `LensDataError`, `CheckpointError` or
`OutputDirError`, or an `OSError`: a missing, read-only or full folder) is one line on stderr,
`<command>: error: <message>`, and exit status 2, as argparse reports a bad flag; `LENS_HF_TRACEBACK=1` shows
the traceback instead. Called as a function (`main(argv)`), a script raises."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Callable

USER_ERRORS = (ValueError, OSError)


def one_line(error: BaseException) -> str:
    """The message of `error` on one line (the first line; exceptions of the libraries underneath add detail)."""
    text = str(error).strip() or type(error).__name__
    if isinstance(error, OSError) and error.filename and str(error.filename) not in text:
        text = f"{text}: {error.filename}"
    first = text.splitlines()[0]
    return first if len(first) < 2000 else first[:2000] + "..."


def run(main: Callable, argv: list[str] | None = None, command: str | None = None) -> None:
    """Run `main(argv)` as a command: exit with its status, or report a user error in one line (exit 2)."""
    command = command or Path(sys.argv[0]).name
    try:
        result = main(argv)
    except USER_ERRORS as error:
        if os.environ.get("LENS_HF_TRACEBACK"):
            raise
        print(f"{command}: error: {one_line(error)}", file=sys.stderr, flush=True)
        sys.exit(2)
    finally:
        close_process_group()
    sys.exit(result if isinstance(result, int) else 0)


def close_process_group() -> None:
    """Destroy this rank's torch.distributed process group, as torch asks of every rank before it exits: left to
    the interpreter's shutdown, a gloo group is torn down in its destructor, after the other rank may be gone."""
    distributed = sys.modules.get("torch.distributed")
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        distributed.destroy_process_group()


def _run(name: str) -> None:
    run(importlib.import_module(f"lens_hf.scripts.{name}").main, command=f"lens-hf-{name.replace('_', '-')}")


def simulate() -> None:
    _run("simulate")


def build_dataset() -> None:
    _run("build_dataset")


def pretrain_mae() -> None:
    _run("pretrain_mae")


def pretrain_contrastive() -> None:
    _run("pretrain_contrastive")


def finetune() -> None:
    _run("finetune")


def train_sr() -> None:
    _run("train_sr")


def evaluate() -> None:
    _run("evaluate")


def push_to_hub() -> None:
    _run("push_to_hub")


def demo() -> None:
    _run("demo")
