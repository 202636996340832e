"""Export a DatasetDict as Parquet shards plus a dataset card that `datasets.load_dataset(folder)`
and, once pushed, `load_dataset("org/name")` read with no code and with `Array3D` features intact.

Layout (what `DatasetDict.push_to_hub` writes too): `<data dir>/<split>-00000-of-0000N.parquet`,
where the data dir is `data/` for the "default" config and the config name otherwise, and a
README.md whose YAML has `configs:` (data_files per split) and `dataset_info` (features, split
sizes). Exporting another config into the same folder adds it beside the ones already there.

An export never destroys the previous one: the new folder is written as a hidden sibling
(`.<name>.tmp-*`, other configs' shards hard-linked in) and renamed over the old one only once
complete, so a failure half-way (disk full, read-only disk, a crash) leaves the previous export
loadable. Replacing a config already in the folder, or writing into a folder that is not an
export, needs `overwrite=True` (`--overwrite_output_dir`). A lock file beside the folder
(`.<name>.lock`, `fcntl.flock`) refuses a second export into the same folder while one runs.
"""
from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import inspect
import logging
import math
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import datasets
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData, HfApi

from .loading import project_resource

try:
    import fcntl
except ImportError:  # not POSIX: no lock, the atomic rename still protects the previous export
    fcntl = None

logger = logging.getLogger(__name__)

CARD_TEMPLATE = "model_cards/dataset_card.md"
PROVENANCE_KEY = "lens_hf"  # card YAML key: per config, how it was built
DEFAULT_TAGS = ("astronomy", "gravitational-lensing", "strong-lensing", "dark-matter", "deeplense", "lens-hf")


class ExportError(RuntimeError):
    """The export was refused or could not be written; the message names the folder. The previous export,
    if any, is unchanged."""


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
        ignored_folders: [{"path", "reason"}] folders beside the data that the builder did not read; listed in the
            card so a reader sees what was left out, not only what was in.
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
    ignored_folders: list = field(default_factory=list)
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
    overwrite: bool = False,
) -> Path:
    """Write `dataset` as config `config_name` of the dataset folder `output_dir` and (re)write its card.

    Returns the README path. Other configs in the folder are kept and stay listed in the card. A config
    already in the folder, or a non-empty folder that is not an export, is replaced only with
    `overwrite=True`; otherwise, and when the folder is read-only, locked by another export or the disk
    fills up, `ExportError` is raised and the folder is left exactly as it was.
    """
    dataset_dict = _as_dataset_dict(dataset)
    if isinstance(card, dict):
        card = DatasetCardInfo(**card)
    card = card or DatasetCardInfo(pretty_name=Path(output_dir).name)
    max_shard_bytes = datasets.utils.py_utils.convert_file_size_to_int(max_shard_size)
    shown = Path(output_dir)
    target = Path(os.path.realpath(shown))  # through a symlinked folder: replace its target, not the link
    with _export_lock(target, shown):
        previous = _check_target(target, shown, config_name, overwrite)
        kept = ("the previous export is unchanged" if previous is not None
                else "the folder is unchanged" if target.is_dir() and any(target.iterdir())
                else "nothing was written there")
        staging = None
        try:
            staging = _staging_copy(target, config_data_dir(config_name))
            _write_export(dataset_dict, staging, card, config_name, max_shard_bytes, previous)
            _swap_in(staging, target)
        except OSError as error:
            raise ExportError(
                f"could not write the export to {shown}: {_reason(error)}; {kept}"
            ) from error
        finally:
            if staging is not None and staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return shown / "README.md"


def check_export_target(output_dir: Union[str, Path], config_name: Optional[str] = None, overwrite: bool = False) -> None:
    """Raise `ExportError` now if `export_dataset` into `output_dir` would be refused (folder read-only,
    locked, not an export, or already holding `config_name` without `overwrite`), so a script can
    refuse before a long build. The export itself checks again under its lock."""
    shown = Path(output_dir)
    target = Path(os.path.realpath(shown))
    with _export_lock(target, shown):
        _check_target(target, shown, config_name, overwrite)


def export_lock_path(output_dir: Union[str, Path]) -> Path:
    """The lock file an export into `output_dir` holds: `.<name>.lock` beside the folder."""
    target = Path(os.path.realpath(output_dir))
    return target.parent / f".{target.name}.lock"


def _reason(error: OSError) -> str:
    """What went wrong, in a few words (shutil.Error carries a list of per-file errors: the first)."""
    if isinstance(error, shutil.Error) and error.args and isinstance(error.args[0], list) and error.args[0]:
        return str(error.args[0][0][-1])
    return error.strerror or str(error) or type(error).__name__


@contextlib.contextmanager
def _export_lock(target: Path, shown: Path):
    """Exclusive, non-blocking flock on `.<name>.lock` beside `target`: a second export into the same folder
    is refused at once rather than interleaving shards or racing the final rename."""
    lock_path = export_lock_path(target)
    for _ in range(3):  # the holder removes the file on release: retry when we locked a removed one
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            handle = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise ExportError(f"cannot export to {shown}: cannot create {lock_path}: {_reason(error)}") from error
        if fcntl is None:
            break
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            raise ExportError(f"another export into {shown} is running (it holds {lock_path}); "
                              "wait for it to finish") from None
        try:
            if os.stat(lock_path).st_ino == os.fstat(handle).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(handle)
    else:
        raise ExportError(f"another export into {shown} keeps taking {lock_path}; try again")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock_path)  # while still held, so no newcomer can be waiting on this file
        os.close(handle)


def _read_card_data(readme: Path) -> Optional[DatasetCardData]:
    """The YAML of an exported card, or None when `readme` is not one (no `configs:`)."""
    try:
        card_data = DatasetCard.load(readme).data
    except Exception:  # any README that is not a dataset card: not an export
        return None
    return card_data if card_data.get("configs") else None


def _check_target(target: Path, shown: Path, config_name: Optional[str], overwrite: bool) -> Optional[DatasetCardData]:
    """Refuse what the export must not touch; returns the existing card's YAML (None: nothing to merge)."""
    if not target.exists():
        return None
    if not target.is_dir():
        raise ExportError(f"{shown} exists and is not a folder; choose another output folder")
    mode = target.stat().st_mode
    if not os.access(target, os.W_OK) or not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        raise ExportError(f"{shown} is read-only; make it writable or choose another output folder")
    if not any(target.iterdir()):
        return None
    readme = target / "README.md"
    previous = _read_card_data(readme) if readme.is_file() else None
    if previous is None:
        if not overwrite:
            raise ExportError(f"{shown} is not empty and holds no dataset export (no README.md with configs:); "
                              "choose an empty folder or pass --overwrite_output_dir (overwrite=True) to write into it")
        return None
    if config_name is not None and not overwrite:
        exported = MetadataConfigs.from_dataset_card_data(previous)
        if config_name in exported or any((target / config_data_dir(config_name)).glob("*.parquet")):
            raise ExportError(f"{shown} already holds an export of config {config_name!r}; pass "
                              "--overwrite_output_dir (overwrite=True) to replace it")
    return previous


def _link_or_copy(source: str, destination: str) -> None:
    """Hard link (instant, no extra disk): shards are never modified in place, only replaced."""
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _staging_copy(target: Path, replaced_dir: str) -> Path:
    """A hidden sibling of `target` holding everything the new export keeps: the old folder minus its README
    and the shards of the config being replaced."""
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    if not target.is_dir():
        return staging
    replaced = target / replaced_dir

    def ignore(folder, names):
        folder = Path(folder)
        if folder == target:
            return {"README.md"}
        return {name for name in names if name.endswith(".parquet")} if folder == replaced else set()

    shutil.copytree(target, staging, symlinks=True, ignore=ignore, copy_function=_link_or_copy, dirs_exist_ok=True)
    return staging


def _rename_exchange(source: Path, destination: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(source), at_fdcwd, os.fsencode(destination), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(destination))


def _swap_in(staging: Path, target: Path) -> None:
    """Make `staging` the folder at `target`; afterwards `staging` holds the old folder (deleted by the caller).
    Readers see the old export or the new one, never a mix."""
    if not target.exists() or (target.is_dir() and not any(target.iterdir())):
        os.replace(staging, target)  # rename over an empty folder is atomic
        return
    if _rename_exchange(staging, target):
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.replace(target, old)  # fallback: two renames, with the old folder put back if the second fails
    try:
        os.replace(staging, target)
    except OSError:
        os.replace(old, target)
        raise
    os.replace(old, staging)


def _write_export(dataset_dict, folder: Path, card: DatasetCardInfo, config_name: str, max_shard_bytes: int,
                  previous: Optional[DatasetCardData]) -> None:
    """Shards of `config_name` and the merged card, into the staging `folder`."""
    shard_dir = folder / config_data_dir(config_name)
    shard_dir.mkdir(parents=True, exist_ok=True)
    split_dict = datasets.SplitDict()
    for split, split_dataset in dataset_dict.items():
        num_bytes = _write_split_shards(split_dataset, shard_dir, split, max_shard_bytes)
        split_dict.add(datasets.SplitInfo(name=split, num_bytes=num_bytes, num_examples=split_dataset.num_rows))
    info = datasets.DatasetInfo(features=next(iter(dataset_dict.values())).features, splits=split_dict)
    info.dataset_size = sum(s.num_bytes for s in split_dict.values())

    card_data = previous if previous is not None else DatasetCardData()
    DatasetInfosDict({config_name: info}).to_dataset_card_data(card_data)
    data_files = [{"split": split, "path": f"{config_data_dir(config_name)}/{split}-*"} for split in dataset_dict]
    MetadataConfigs({config_name: {"data_files": data_files}}).to_dataset_card_data(card_data)
    provenance = dict(card_data.get(PROVENANCE_KEY) or {})
    provenance[config_name] = {**card.provenance, "skipped_files": len(card.skipped_files),
                               "ignored_folders": len(card.ignored_folders)}
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
    rendered.save(folder / "README.md")


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
        "provenance": {key: value for key, value in provenance.items()
                       if key not in ("skipped_files", "ignored_folders")},
        "skipped_files": provenance.get("skipped_files", 0),
        "ignored_folders": provenance.get("ignored_folders", 0),
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
        skipped_files=[_under_data_dir(entry, config.data_dir) for entry in builder.skipped_files],
        ignored_folders=[_under_data_dir(entry, config.data_dir) for entry in builder.ignored_folders],
        repo_id=repo_id,
    )


def _under_data_dir(entry: dict, data_dir) -> dict:
    """A report entry with its path relative to the data folder: the card is published, the user's disk is not."""
    if not data_dir:
        return entry
    try:
        return {**entry, "path": os.path.relpath(entry["path"], data_dir)}
    except ValueError:  # another drive on Windows
        return entry


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
    overwrite: bool = False,
) -> Path:
    """Export a prepared builder's splits as config `config_name` (default: the builder's config name);
    `overwrite` as in `export_dataset`."""
    return export_dataset(
        builder.as_dataset(),
        output_dir,
        card=card_for_builder(builder, repo_id),
        config_name=config_name or builder.config.name,
        max_shard_size=max_shard_size,
        overwrite=overwrite,
    )


def push_exported(
    folder: Union[str, Path],
    repo_id: str,
    private: Optional[bool] = None,
    token: Optional[str] = None,
    commit_message: str = "Upload dataset exported by lens_hf",
    timeout: Optional[float] = None,
) -> str:
    """Upload an exported folder as dataset repo `repo_id` (created if needed); returns the commit URL.

    Older shards of the configs being uploaded are deleted in the same commit, so a re-export
    with fewer shards never leaves duplicate rows behind. The folder's export lock is held meanwhile
    (no re-export can swap the folder under the upload); `timeout`: see `lens_hf.hub.hub_timeout`.
    """
    from huggingface_hub.utils import validate_repo_id

    from lens_hf.hub import hub_timeout

    validate_repo_id(repo_id)
    folder = Path(folder)
    readme = folder / "README.md"
    if not readme.exists():
        raise FileNotFoundError(f"{folder} has no README.md; export it with lens_hf.data.export_dataset first")
    with _export_lock(Path(os.path.realpath(folder)), folder), hub_timeout(timeout):
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
