#!/usr/bin/env python
"""Publish a saved run folder (model, processor, model code, card, metrics, plots) to a Hub repo.

    python scripts/push_to_hub.py --run_dir outputs/lens-mae-classifier --repo_id org/lens-mae-classifier

The card is re-rendered for the target repo id first, the folder is checked (safetensors only, config present,
the auto_map's code files present) and uploaded in one commit; checkpoints/ and logs/ stay local.

A LoRA run folder (`finetune.py --mode lora`) is published as an adapter repo: adapter, head config, processor
and a card whose `base_model` is the Hub id the adapter applies to. An adapter trained on a local base model
needs that model's Hub id (`--base_model_id org/lens-mae`, after pushing the base there); the pushed copy of
`adapter_config.json` names it, the run folder itself is left as it is.

What is rewritten for the push (card, adapter config) is written into a staging copy beside the run folder
(hard links, so no second copy of the weights), never into the run folder: a failed push (HTTP error,
unreachable Hub, no answer within --timeout, bad repo id) exits with one line and leaves every file of the
run folder as it was. Only after a successful upload does the run folder's README.md become the pushed card.
"""

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from lens_hf.hub import ModelFolderError, check_model_folder, check_repo_id, hub_error_message, push_folder_to_hub
from lens_hf.training import parse_arguments
from lens_hf.training.adapters import ADAPTER_CONFIG, MERGED_FOLDER, adapter_settings, is_adapter_folder
from lens_hf.training.evaluation import load_saved_model
from lens_hf.training.runner import PUSH_IGNORE, refresh_model_card

CARD = "README.md"
REWRITTEN = (CARD, ADAPTER_CONFIG)  # staged as real copies: writing through a hard link would change the run folder


@dataclass
class PushArguments:
    # Optional only so a missing one is a one-line error of ours, not argparse's usage dump.
    run_dir: Optional[str] = field(default=None, metadata={"help": "A folder written by a lens_hf training script."})
    repo_id: Optional[str] = field(default=None, metadata={"help": "org/name of the target model repo."})
    private: bool = field(default=False)
    token: Optional[str] = field(default=None, metadata={"help": "Hub token (default: HF_TOKEN / the login)."})
    create_pr: bool = field(default=False, metadata={"help": "Open a pull request instead of committing to main."})
    commit_message: str = field(default="Upload LensMAE model with lens-hf")
    refresh_card: bool = field(default=True, metadata={"help": "Re-render README.md for repo_id before pushing."})
    base_model_id: Optional[str] = field(default=None, metadata={"help": "LoRA runs: the Hub id of the base model "
                                                                 "(needed when the adapter was trained on a local "
                                                                 "folder)."})
    timeout: float = field(default=120.0, metadata={"help": "Seconds any Hub request may go without an answer "
                                                            "(connect, read, write) before the push fails; 0: wait "
                                                            "forever."})


def adapter_base_id(run_dir: Path, base_model_id: str | None) -> str:
    """The Hub id an adapter repo names as its base: `--base_model_id`, or the recorded base when it is one."""
    recorded = adapter_settings(run_dir).get("base_model_name_or_path") or ""
    base = base_model_id or recorded
    if not base or Path(base).is_absolute() or Path(base).exists() or base.count("/") != 1:
        raise SystemExit(f"{run_dir / ADAPTER_CONFIG} applies to the local model {recorded!r}, which an adapter "
                         "repo cannot name: push that model to the Hub first and pass its id as --base_model_id "
                         "org/name.")
    return base


@contextmanager
def staging_area(run_dir: Path):
    """A temporary folder beside the run folder (same disk, so staged files are hard links), or in the system
    temp folder where the run folder's parent is not writable."""
    try:
        area = tempfile.TemporaryDirectory(prefix=f".{run_dir.resolve().name}.push-", dir=run_dir.resolve().parent)
    except OSError:
        area = tempfile.TemporaryDirectory(prefix="lens_hf_push_")
    with area as path:
        yield Path(path)


def _link_or_copy(source: str, destination: str) -> None:
    if Path(source).name not in REWRITTEN:
        try:
            os.link(source, destination)
            return
        except OSError:
            pass
    shutil.copy2(source, destination)


def stage_run_folder(run_dir: Path, staging: Path) -> Path:
    """What is pushed, minus checkpoints, logs and a LoRA run's merged copy, as `staging/<run name>`."""
    folder = staging / run_dir.resolve().name
    shutil.copytree(run_dir, folder, ignore=shutil.ignore_patterns("checkpoints", "logs", MERGED_FOLDER),
                    copy_function=_link_or_copy)
    return folder


def _replace_file(source: Path, destination: Path) -> None:
    """`destination` becomes a copy of `source` in one rename (never a half-written card)."""
    partial = destination.with_name(f".{destination.name}.push-tmp")
    shutil.copyfile(source, partial)
    os.replace(partial, destination)


def main(argv=None):
    (args,) = parse_arguments((PushArguments,), argv)
    if not args.run_dir:
        raise SystemExit("--run_dir is required: a folder written by a lens_hf training script")
    try:
        repo_id = check_repo_id(args.repo_id, "--repo_id")
        if args.base_model_id:
            check_repo_id(args.base_model_id, "--base_model_id")
    except ValueError as error:
        raise SystemExit(str(error)) from None
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise SystemExit(f"--run_dir {run_dir} does not exist or is not a folder")
    adapter = is_adapter_folder(run_dir)
    if args.base_model_id and not adapter:
        raise SystemExit(f"--base_model_id names the base of a LoRA adapter; {run_dir} holds no {ADAPTER_CONFIG}")
    base = adapter_base_id(run_dir, args.base_model_id) if adapter else None
    try:
        check_model_folder(run_dir, PUSH_IGNORE)  # before loading the model for the card: a clear error first
    except ModelFolderError as error:
        raise SystemExit(str(error)) from None
    refresh = args.refresh_card and (run_dir / "metrics.json").exists()
    with staging_area(run_dir) as staging:
        folder = stage_run_folder(run_dir, staging) if adapter or refresh else run_dir
        if adapter:  # publish a copy whose adapter config and card name the Hub base model
            settings = adapter_settings(folder)
            settings["base_model_name_or_path"] = base
            (folder / ADAPTER_CONFIG).write_text(json.dumps(settings, indent=2))
        if refresh:
            try:
                model, task = load_saved_model(run_dir)
                refresh_model_card(folder, model, task, repo_id=repo_id)
            except (OSError, ValueError) as error:
                raise SystemExit(f"cannot render the model card of {run_dir}: {error}") from None
        try:
            commit = push_folder_to_hub(folder, repo_id, token=args.token, private=args.private,
                                        commit_message=args.commit_message, create_pr=args.create_pr,
                                        ignore_patterns=PUSH_IGNORE, timeout=args.timeout or None)
        except ModelFolderError as error:
            raise SystemExit(str(error)) from None
        except Exception as error:
            reason = hub_error_message(error, args.timeout, "--timeout")
            if reason is None:
                raise
            raise SystemExit(f"push of {run_dir} to {repo_id} failed: {reason}; {run_dir} is unchanged") from None
        if refresh and not adapter:  # the local card now says what the Hub copy says
            _replace_file(folder / CARD, run_dir / CARD)
    print(f"pushed {args.run_dir} -> {commit}")
    return commit


if __name__ == "__main__":
    main()
