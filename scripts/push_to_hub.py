#!/usr/bin/env python
"""Publish a saved run folder (model, processor, model code, card, metrics, plots) to a Hub repo.

    python scripts/push_to_hub.py --run_dir outputs/lens-mae-classifier --repo_id org/lens-mae-classifier

The card is re-rendered for the target repo id first, the folder is checked (safetensors only, config present,
the auto_map's code files present) and uploaded in one commit; checkpoints/ and logs/ stay local.

A LoRA run folder (`finetune.py --mode lora`) is published as an adapter repo: adapter, head config, processor
and a card whose `base_model` is the Hub id the adapter applies to. An adapter trained on a local base model
needs that model's Hub id (`--base_model_id org/lens-mae`, after pushing the base there); the pushed copy of
`adapter_config.json` names it, the run folder itself is left as it is.
"""

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from lens_hf.hub import push_folder_to_hub
from lens_hf.training import parse_arguments
from lens_hf.training.adapters import ADAPTER_CONFIG, MERGED_FOLDER, adapter_settings, is_adapter_folder
from lens_hf.training.evaluation import load_saved_model
from lens_hf.training.runner import PUSH_IGNORE, refresh_model_card


@dataclass
class PushArguments:
    run_dir: str = field(metadata={"help": "A folder written by a lens_hf training script."})
    repo_id: str = field(metadata={"help": "org/name of the target model repo."})
    private: bool = field(default=False)
    token: Optional[str] = field(default=None, metadata={"help": "Hub token (default: HF_TOKEN / the login)."})
    create_pr: bool = field(default=False, metadata={"help": "Open a pull request instead of committing to main."})
    commit_message: str = field(default="Upload LensMAE model with lens-hf")
    refresh_card: bool = field(default=True, metadata={"help": "Re-render README.md for repo_id before pushing."})
    base_model_id: Optional[str] = field(default=None, metadata={"help": "LoRA runs: the Hub id of the base model "
                                                                 "(needed when the adapter was trained on a local "
                                                                 "folder)."})


def adapter_base_id(run_dir: Path, base_model_id: str | None) -> str:
    """The Hub id an adapter repo names as its base: `--base_model_id`, or the recorded base when it is one."""
    recorded = adapter_settings(run_dir).get("base_model_name_or_path") or ""
    base = base_model_id or recorded
    if not base or Path(base).is_absolute() or Path(base).exists() or base.count("/") != 1:
        raise SystemExit(f"{run_dir / ADAPTER_CONFIG} applies to the local model {recorded!r}, which an adapter "
                         "repo cannot name: push that model to the Hub first and pass its id as --base_model_id "
                         "org/name.")
    return base


def main(argv=None):
    (args,) = parse_arguments((PushArguments,), argv)
    run_dir = Path(args.run_dir)
    adapter = is_adapter_folder(run_dir)
    if args.base_model_id and not adapter:
        raise SystemExit(f"--base_model_id names the base of a LoRA adapter; {run_dir} holds no {ADAPTER_CONFIG}")
    with tempfile.TemporaryDirectory() as staging:
        folder = run_dir
        if adapter:  # publish a copy whose adapter config and card name the Hub base model
            base = adapter_base_id(run_dir, args.base_model_id)
            folder = Path(staging) / run_dir.name
            shutil.copytree(run_dir, folder, ignore=shutil.ignore_patterns("checkpoints", "logs", MERGED_FOLDER))
            settings = adapter_settings(folder)
            settings["base_model_name_or_path"] = base
            (folder / ADAPTER_CONFIG).write_text(json.dumps(settings, indent=2))
        if args.refresh_card and (folder / "metrics.json").exists():
            model, task = load_saved_model(run_dir)
            refresh_model_card(folder, model, task, repo_id=args.repo_id)
        commit = push_folder_to_hub(folder, args.repo_id, token=args.token, private=args.private,
                                    commit_message=args.commit_message, create_pr=args.create_pr,
                                    ignore_patterns=PUSH_IGNORE)
    print(f"pushed {args.run_dir} -> {commit}")
    return commit


if __name__ == "__main__":
    main()
