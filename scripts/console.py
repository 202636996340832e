"""The console entry points (`lens-hf-finetune`, ...; setup.cfg): each runs a script's `main()` with the command
line and exits 0, or with the status the script returns (build_dataset returns 2 for bad input data). The
training scripts return their metrics, which are not an exit status."""

from __future__ import annotations

import importlib
import sys


def _run(name: str) -> None:
    result = importlib.import_module(f"lens_hf.scripts.{name}").main()
    sys.exit(result if isinstance(result, int) else 0)


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
