#!/usr/bin/env python
"""Publish a saved run folder (model, processor, model code, card, metrics, plots) to a Hub repo.

    python scripts/push_to_hub.py --run_dir outputs/lens-mae-classifier --repo_id org/lens-mae-classifier

The card is re-rendered for the target repo id first, the folder is checked (safetensors only, config present,
the auto_map's code files present) and uploaded in one commit; checkpoints/ and logs/ stay local.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from lens_hf.hub import push_folder_to_hub
from lens_hf.training import parse_arguments
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


def main(argv=None):
    (args,) = parse_arguments((PushArguments,), argv)
    if args.refresh_card and (Path(args.run_dir) / "metrics.json").exists():
        model, task = load_saved_model(args.run_dir)
        refresh_model_card(Path(args.run_dir), model, task, repo_id=args.repo_id)
    commit = push_folder_to_hub(args.run_dir, args.repo_id, token=args.token, private=args.private,
                                commit_message=args.commit_message, create_pr=args.create_pr,
                                ignore_patterns=PUSH_IGNORE)
    print(f"pushed {args.run_dir} -> {commit}")
    return commit


if __name__ == "__main__":
    main()
