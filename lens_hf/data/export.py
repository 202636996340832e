"""Export a DatasetDict as Parquet shards plus a dataset card that `datasets.load_dataset(folder)`
and, once pushed, `load_dataset("org/name")` read with no code and with `Array3D` features intact.

Layout (what `DatasetDict.push_to_hub` writes too): `<data dir>/<split>-00000-of-0000N.parquet`,
where the data dir is `data/` for the "default" config and the config name otherwise, and a
README.md whose YAML has `configs:` (data_files per split) and `dataset_info` (features, split
sizes). Exporting another config into the same folder adds it beside the ones already there.
"""
from __future__ import annotations

import dataclasses
import inspect
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import datasets
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData, HfApi

from .loading import project_resource

logger = logging.getLogger(__name__)

CARD_TEMPLATE = "model_cards/dataset_card.md"
PROVENANCE_KEY = "lens_hf"  # card YAML key: per config, how it was built
DEFAULT_TAGS = ("astronomy", "gravitational-lensing", "strong-lensing", "dark-matter", "deeplense", "lens-hf")


@dataclass
class DatasetCardInfo:
    """What the exported README says besides the schema, which is read off the data.

    Args:
        pretty_name: title of the card.
        description: one paragraph on what the rows are.
        license: Hub licence identifier for the YAML ("mit", "cc-by-4.0", "other").
        license_text: free-text licence notes for the body.
        citation: BibTeX.
        homepage: where the data or the method comes from.
        about: longer markdown about the data (e.g. a builder's own card).
        task_categories: Hub task categories.
        tags: Hub tags (DEFAULT_TAGS are always added).
        provenance: how this config was built (builder, parameters, code hash...); stored in the YAML.
        skipped_files: [{"path", "problem"}] left out by `skip_bad_files`; counted in the card.
        repo_id: where it will be pushed, for the loading example.
    """

    pretty_name: str
    description: str = ""
    license: str = "other"
    license_text: str = ""
    citation: str = ""
    homepage: str = ""
    about: str = ""
    task_categories: list = field(default_factory=list)
    tags: list = field(default_factory=list)
    provenance: dict = field(default_factory=dict)
    skipped_files: list = field(default_factory=list)
    repo_id: Optional[str] = None


def config_data_dir(config_name: str) -> str:
    return "data" if config_name == "default" else config_name


def _size_category(num_rows: int) -> str:
    for bound, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if num_rows < bound:
            return label
    return "1M<n<10M" if num_rows < 10_000_000 else "n>10M"


def _as_dataset_dict(dataset: Union[datasets.Dataset, datasets.DatasetDict]) -> datasets.DatasetDict:
    if isinstance(dataset, datasets.Dataset):
        dataset = datasets.DatasetDict({"train": dataset})
    if not isinstance(dataset, datasets.DatasetDict) or not dataset:
        raise TypeError(f"export_dataset needs a non-empty Dataset or DatasetDict, got {type(dataset).__name__}")
    features = {split: ds.features for split, ds in dataset.items()}
    reference_split, reference = next(iter(features.items()))
    for split, split_features in features.items():
        if split_features != reference:
            raise ValueError(
                f"split {split!r} has features {split_features}, split {reference_split!r} has {reference}; "
                "every split of one config must share its features"
            )
    return dataset


def _write_split_shards(dataset: datasets.Dataset, folder: Path, split: str, max_shard_bytes: int) -> int:
    """Contiguous Parquet shards of at most about `max_shard_bytes`; returns the bytes written."""
    dataset = dataset.with_format(None)  # export rows, not what a transform would make of them
    # the Arrow table may hold more rows than the dataset (after select/shuffle/filter): scale by the share used
    table_rows = max(1, dataset.data.num_rows)
    estimated_bytes = dataset.data.nbytes * dataset.num_rows / table_rows
    num_shards = max(1, min(dataset.num_rows, math.ceil(estimated_bytes / max_shard_bytes)))
    written = 0
    for index in range(num_shards):
        path = folder / f"{split}-{index:05d}-of-{num_shards:05d}.parquet"
        dataset.shard(num_shards, index, contiguous=True).to_parquet(str(path))
        written += path.stat().st_size
    return written


def export_dataset(
    dataset: Union[datasets.Dataset, datasets.DatasetDict],
    output_dir: Union[str, Path],
    card: Union[DatasetCardInfo, dict, None] = None,
    config_name: str = "default",
    max_shard_size: Union[str, int] = "500MB",
) -> Path:
    """Write `dataset` as config `config_name` of the dataset folder `output_dir` and (re)write its card.

    Returns the README path. Shards of an earlier export of the same config are replaced; other
    configs in the folder are kept and stay listed in the card.
    """
    dataset_dict = _as_dataset_dict(dataset)
    if isinstance(card, dict):
        card = DatasetCardInfo(**card)
    card = card or DatasetCardInfo(pretty_name=Path(output_dir).name)
    output_dir = Path(output_dir)
    shard_dir = output_dir / config_data_dir(config_name)
    shard_dir.mkdir(parents=True, exist_ok=True)
    for stale in shard_dir.glob("*.parquet"):
        stale.unlink()
    max_shard_bytes = datasets.utils.py_utils.convert_file_size_to_int(max_shard_size)

    split_dict = datasets.SplitDict()
    for split, split_dataset in dataset_dict.items():
        num_bytes = _write_split_shards(split_dataset, shard_dir, split, max_shard_bytes)
        split_dict.add(datasets.SplitInfo(name=split, num_bytes=num_bytes, num_examples=split_dataset.num_rows))
    info = datasets.DatasetInfo(features=next(iter(dataset_dict.values())).features, splits=split_dict)
    info.dataset_size = sum(s.num_bytes for s in split_dict.values())

    readme = output_dir / "README.md"
    card_data = DatasetCard.load(readme).data if readme.exists() else DatasetCardData()
    DatasetInfosDict({config_name: info}).to_dataset_card_data(card_data)
    data_files = [{"split": split, "path": f"{config_data_dir(config_name)}/{split}-*"} for split in dataset_dict]
    MetadataConfigs({config_name: {"data_files": data_files}}).to_dataset_card_data(card_data)
    provenance = dict(card_data.get(PROVENANCE_KEY) or {})
    provenance[config_name] = {**card.provenance, "skipped_files": len(card.skipped_files)}
    card_data[PROVENANCE_KEY] = provenance

    infos = DatasetInfosDict.from_dataset_card_data(card_data)
    card_data.pretty_name = card.pretty_name
    card_data.license = card.license
    card_data.task_categories = list(card.task_categories) or None
    card_data.tags = sorted(set(DEFAULT_TAGS) | set(card.tags))
    card_data.size_categories = _size_category(max(_rows(i) for i in infos.values()))
    rendered = DatasetCard.from_template(
        card_data,
        template_path=str(project_resource(CARD_TEMPLATE, "the dataset card template")),
        card=card,
        configs=[_config_summary(name, infos[name], provenance.get(name, {})) for name in sorted(infos)],
        current_config=config_name,
    )
    rendered.save(readme)
    return readme


def _rows(info: datasets.DatasetInfo) -> int:
    return sum(split.num_examples for split in (info.splits or {}).values())


def _describe_feature(feature) -> str:
    if isinstance(feature, (datasets.Array2D, datasets.Array3D)):
        return f"{type(feature).__name__} {feature.dtype} {tuple(feature.shape)}"
    if isinstance(feature, datasets.ClassLabel):
        return "ClassLabel " + ", ".join(f"{i}={name}" for i, name in enumerate(feature.names))
    if isinstance(feature, datasets.Value):
        return f"Value {feature.dtype}"
    return repr(feature)


def _config_summary(name: str, info: datasets.DatasetInfo, provenance: dict) -> dict:
    """What the card template shows for one config."""
    return {
        "name": name,
        "splits": [(split.name, split.num_examples) for split in (info.splits or {}).values()],
        "features": [(column, _describe_feature(feature)) for column, feature in (info.features or {}).items()],
        "provenance": {key: value for key, value in provenance.items() if key != "skipped_files"},
        "skipped_files": provenance.get("skipped_files", 0),
    }


# Config fields that say nothing about the rows (or, for data_dir, only where the user keeps files).
_NOT_PROVENANCE = ("name", "version", "description", "data_files", "data_dir")


def _yaml_safe(value):
    """Card YAML is read with yaml.safe_load, which rejects Python tuples and paths."""
    if isinstance(value, (list, tuple)):
        return [_yaml_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def card_for_builder(builder, repo_id: Optional[str] = None) -> DatasetCardInfo:
    """Card contents for a prepared lens_hf builder: its own card (`dataset_builders/<name>/README.md`),
    its DatasetInfo, every config parameter, the code hash and the files it skipped."""
    from lens_hf import __version__

    config = builder.config
    builder_readme = Path(inspect.getfile(type(builder))).with_name("README.md")
    builder_card = DatasetCard.load(builder_readme) if builder_readme.exists() else None
    card_yaml = builder_card.data if builder_card is not None else DatasetCardData()
    provenance = {"builder": builder.dataset_name, "config": config.name}
    for config_field in dataclasses.fields(config):
        if config_field.name not in _NOT_PROVENANCE + tuple(config.UNUSED_FIELDS):
            provenance[config_field.name] = _yaml_safe(getattr(config, config_field.name))
    if config.data_dir:
        provenance["data_dir"] = Path(config.data_dir).name  # the folder's name; the full path is the user's business
    provenance.update(code_hash=builder.hash, lens_hf_version=__version__, datasets_version=datasets.__version__)
    return DatasetCardInfo(
        pretty_name=f"{card_yaml.get('pretty_name') or builder.dataset_name}: {config.name}",
        description="\n\n".join(text.strip() for text in (config.description, builder.info.description) if text),
        license=card_yaml.get("license") or "other",
        license_text=builder.info.license,
        citation=builder.info.citation.strip(),
        homepage=builder.info.homepage,
        about=_without_title(builder_card.text) if builder_card is not None else "",
        task_categories=list(card_yaml.get("task_categories") or []),
        tags=list(card_yaml.get("tags") or []),
        provenance=provenance,
        skipped_files=builder.skipped_files,
        repo_id=repo_id,
    )


def _without_title(markdown: str) -> str:
    """The builder card's body minus its `# title`: the export card has its own."""
    markdown = markdown.strip()
    if markdown.startswith("# "):
        markdown = markdown.partition("\n")[2].strip()
    return markdown


def export_builder(
    builder,
    output_dir: Union[str, Path],
    repo_id: Optional[str] = None,
    config_name: Optional[str] = None,
    max_shard_size: Union[str, int] = "500MB",
) -> Path:
    """Export a prepared builder's splits as config `config_name` (default: the builder's config name)."""
    return export_dataset(
        builder.as_dataset(),
        output_dir,
        card=card_for_builder(builder, repo_id),
        config_name=config_name or builder.config.name,
        max_shard_size=max_shard_size,
    )


def push_exported(
    folder: Union[str, Path],
    repo_id: str,
    private: Optional[bool] = None,
    token: Optional[str] = None,
    commit_message: str = "Upload dataset exported by lens_hf",
) -> str:
    """Upload an exported folder as dataset repo `repo_id` (created if needed); returns the commit URL.

    Older shards of the configs being uploaded are deleted in the same commit, so a re-export
    with fewer shards never leaves duplicate rows behind.
    """
    folder = Path(folder)
    readme = folder / "README.md"
    if not readme.exists():
        raise FileNotFoundError(f"{folder} has no README.md; export it with lens_hf.data.export_dataset first")
    configs = MetadataConfigs.from_dataset_card_data(DatasetCard.load(readme).data)
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    commit = api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type="dataset",
        allow_patterns=["README.md", "*.parquet"],
        delete_patterns=[f"{config_data_dir(name)}/*.parquet" for name in configs],
        commit_message=commit_message,
    )
    logger.info("pushed %s to %s", folder, commit.commit_url)
    return commit.commit_url
