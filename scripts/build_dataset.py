#!/usr/bin/env python
"""Build a lens_hf dataset and export it as Parquet + README (optionally push it to the Hub).

    python scripts/build_dataset.py BUILDER --config C [--data_dir D] --output_dir O \\
        [--dataset_overrides n_train=1000,seed=3,...] [--skip_bad_files] [--overwrite_output_dir] \\
        [--push_to_hub --repo_id org/name [--hub_timeout 120]]

BUILDER is one of dataset_builders/ (deeplense_sim, deeplense, lens_sr, lens_finding). The result
loads anywhere with `datasets.load_dataset(O)` (or `load_dataset("org/name")` after the push), no
lens_hf needed. Arguments may also come from a YAML/JSON file given first, overridden by flags.
Exit status 2 and a one-line message name the file when the input data is bad (or an argument is).

The export never destroys the previous one: it is written beside the folder and renamed over it
when complete, so a failure (disk full, read-only folder) leaves the old export loadable, exit
status 1 and one line naming the folder. A config already exported into O is replaced only with
--overwrite_output_dir (another config is added beside it); a second build into the same O while
one runs is refused (lock file .O.lock beside it). A failed push (exit 1) keeps the export.
"""
from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional


from lens_hf.data import LensDataError, available_builders, builder_class, export_builder, prepare_builder, push_exported
from lens_hf.data.export import ExportError, check_export_target
from lens_hf.hub import check_repo_id, hub_error_message
from lens_hf.training.arguments import parse_arguments, parse_overrides

logger = logging.getLogger("build_dataset")


@dataclass
class BuildDatasetArguments:
    """What to build, from where, and where the export goes."""

    # Optional only so a YAML file may supply them (argparse would demand them on the command line).
    builder: Optional[str] = field(
        default=None, metadata={"help": "Builder in dataset_builders/ (also accepted as the first positional argument)."}
    )
    output_dir: Optional[str] = field(default=None, metadata={"help": "Folder for the Parquet shards and README.md."})
    config: Optional[str] = field(default=None, metadata={"help": "Builder config, e.g. model_ii, regression_model_i, bologna."})
    data_dir: Optional[str] = field(default=None, metadata={"help": "Folder of the real data (real-data builders)."})
    dataset_overrides: Optional[str] = field(
        default=None,
        metadata={"help": "Builder config fields, comma-separated key=value (dotted keys for nested fields), as in the "
                          "training scripts: n_train=1000,seed=3,bands=[Band1,Band2],preset_overrides.noise=true."},
    )
    skip_bad_files: bool = field(default=False, metadata={"help": "Skip and count bad input files instead of failing."})
    cache_dir: Optional[str] = field(default=None, metadata={"help": "datasets cache for the prepared builder."})
    export_config_name: Optional[str] = field(
        default=None, metadata={"help": "Config name inside the exported folder (default: the builder config's name)."}
    )
    max_shard_size: str = field(default="500MB", metadata={"help": "Largest Parquet shard."})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Replace the config's earlier export in --output_dir (or write into a non-empty "
                                         "folder that is no export); without it such a folder is refused."}
    )
    push_to_hub: bool = field(default=False, metadata={"help": "Upload the exported folder as a Hub dataset repo."})
    repo_id: Optional[str] = field(default=None, metadata={"help": "org/name of the dataset repo (with --push_to_hub)."})
    private: bool = field(default=False, metadata={"help": "Create the Hub repo private."})
    hub_token: Optional[str] = field(default=None, metadata={"help": "Hub token (default: the logged-in one)."})
    hub_timeout: float = field(
        default=120.0, metadata={"help": "Seconds any Hub request may go without an answer before the push fails; 0: forever."}
    )

    def __post_init__(self):
        if not self.builder:
            raise ValueError(f"name a builder (first argument or --builder): one of {available_builders()}")
        if not self.output_dir:
            raise ValueError("--output_dir is required: the folder for the Parquet shards and README.md")
        if self.push_to_hub and not self.repo_id:
            raise ValueError("--push_to_hub needs --repo_id org/name")
        if self.push_to_hub:
            check_repo_id(self.repo_id, "--repo_id")


def parse_command_line(argv: list[str]) -> BuildDatasetArguments:
    argv = list(argv)
    if argv and not argv[0].startswith("-") and not argv[0].endswith((".yaml", ".yml", ".json")):
        argv = ["--builder", argv[0], *argv[1:]]
    (arguments,) = parse_arguments((BuildDatasetArguments,), argv)
    return arguments


def build(arguments: BuildDatasetArguments) -> dict:
    """Prepare, export and optionally push; returns what happened (rows per split, skipped files, paths)."""
    if arguments.builder not in available_builders():
        raise ValueError(f"unknown builder {arguments.builder!r}; available: {available_builders()}")
    config_kwargs = parse_overrides(arguments.dataset_overrides, "--dataset_overrides")
    # refuse a folder the export may not touch before the (possibly long) build; the export checks again
    check_export_target(arguments.output_dir, _export_config_name(arguments), arguments.overwrite_output_dir)
    if arguments.skip_bad_files:  # passed only when set: every kwarg is part of the cache key
        config_kwargs["skip_bad_files"] = True
    builder = prepare_builder(
        arguments.builder, arguments.config, data_dir=arguments.data_dir, cache_dir=arguments.cache_dir, **config_kwargs
    )
    readme = export_builder(
        builder,
        arguments.output_dir,
        repo_id=arguments.repo_id,
        config_name=arguments.export_config_name,
        max_shard_size=arguments.max_shard_size,
        overwrite=arguments.overwrite_output_dir,
    )
    result = {
        "builder": arguments.builder,
        "config": builder.config.name,
        "rows": {split: info.num_examples for split, info in builder.info.splits.items()},
        "skipped_files": builder.skipped_files,
        "readme": str(readme),
        "pushed": None,
    }
    if arguments.push_to_hub:
        result["pushed"] = push_exported(arguments.output_dir, arguments.repo_id, private=arguments.private,
                                         token=arguments.hub_token, timeout=arguments.hub_timeout or None)
    return result


def _export_config_name(arguments: BuildDatasetArguments) -> Optional[str]:
    """The config name the export will get, where it is known before the build (None: checked at export)."""
    if arguments.export_config_name or arguments.config:
        return arguments.export_config_name or arguments.config
    configs = builder_class(arguments.builder).BUILDER_CONFIGS
    return configs[0].name if len(configs) == 1 else None


def report(result: dict) -> str:
    lines = [f"{result['builder']}/{result['config']}: " + ", ".join(f"{s} {n} rows" for s, n in result["rows"].items())]
    skipped = result["skipped_files"]
    if skipped:
        lines.append(f"skipped {len(skipped)} bad file(s):")
        lines += [f"  {entry['path']}: {entry['problem']}" for entry in skipped[:20]]
        if len(skipped) > 20:
            lines.append(f"  ... and {len(skipped) - 20} more (listed in the card)")
    lines.append(f"exported to {Path(result['readme']).parent} (card: {result['readme']})")
    if result["pushed"]:
        lines.append(f"pushed: {result['pushed']}")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    arguments = None
    try:
        arguments = parse_command_line(sys.argv[1:] if argv is None else argv)
        result = build(arguments)
    except LensDataError as error:
        print(f"error: bad input data: {error}\n(rerun with --skip_bad_files to skip and count such files)", file=sys.stderr)
        return 2
    except ExportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except ValueError as error:  # a bad argument (builder, config field, override, repo id)
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        reason = hub_error_message(error, arguments.hub_timeout if arguments else None, "--hub_timeout")
        if reason is None or arguments is None:
            raise
        print(f"error: push to {arguments.repo_id} failed: {reason}; the export in {arguments.output_dir} is kept",
              file=sys.stderr)
        return 1
    print(report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
