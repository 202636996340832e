"""Instantiate the dataset builders of `dataset_builders/` directly and cache them safely.

datasets >= 4 runs no loading scripts, so `load_builder` imports `dataset_builders/<name>/<name>.py`
itself and passes `hash=`: a digest of the builder's code, of the lens_hf modules it depends on and
of the data folder's listing (names, sizes, modification times, through symlinked folders). An edited
builder, an edited reader or a changed data folder therefore never serves the old cache.
"""
from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import inspect
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Optional

import datasets

from .builder_base import LensGeneratorBuilder

BUILDERS_DIR_ENV = "LENS_HF_BUILDERS_DIR"
_DATA_PACKAGE = Path(__file__).resolve().parent
# The project's resource folders and the packages they install as (setup.cfg `package_dir`): the repository keeps
# them at its top level, a wheel ships them inside lens_hf.
RESOURCE_PACKAGES = {"dataset_builders": "lens_hf.dataset_builders", "model_cards": "lens_hf.model_cards"}


def project_resource(relative: str, what: str) -> Path:
    """A file or folder of the project's resources ("model_cards/model_card.md", "dataset_builders"), found with
    importlib.resources wherever lens-hf is installed (a wheel, or an editable install of the repository)."""
    top, _, rest = relative.partition("/")
    if top not in RESOURCE_PACKAGES:
        raise ValueError(f"{relative!r}: lens-hf resources live in {sorted(RESOURCE_PACKAGES)}")
    path = Path(str(importlib.resources.files(RESOURCE_PACKAGES[top]).joinpath(rest) if rest
                    else importlib.resources.files(RESOURCE_PACKAGES[top])))
    if not path.exists():
        raise FileNotFoundError(f"{what} not found at {path}: the lens-hf installation lacks {relative} "
                                "(reinstall lens-hf)")
    return path


def builders_dir() -> Path:
    """`$LENS_HF_BUILDERS_DIR` if set, else the project's `dataset_builders/`."""
    if os.environ.get(BUILDERS_DIR_ENV):
        path = Path(os.environ[BUILDERS_DIR_ENV])
        if not path.is_dir():
            raise FileNotFoundError(f"{BUILDERS_DIR_ENV}={path} is not a folder of dataset builders")
        return path
    return project_resource("dataset_builders", "the dataset builders folder")


def available_builders() -> list[str]:
    root = builders_dir()
    return sorted(p.name for p in root.iterdir() if (p / f"{p.name}.py").is_file())


def builder_module(name: str) -> ModuleType:
    """Import `dataset_builders/<name>/<name>.py` afresh (so edits are picked up) as `lens_hf_builder_<name>`."""
    path = builders_dir() / name / f"{name}.py"
    if not path.is_file():
        raise ValueError(f"unknown dataset builder {name!r}; available: {available_builders()}")
    module_name = f"lens_hf_builder_{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # pickling the builder (num_proc > 1) looks the module up here
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def builder_class(name: str) -> type[LensGeneratorBuilder]:
    return builder_class_from(builder_module(name))


def _source_files(module: ModuleType) -> list[Path]:
    """The builder's own file, every lens_hf.data module, and the packages it lists in HASH_DEPENDENCIES."""
    files = [Path(module.__file__)] + sorted(_DATA_PACKAGE.glob("*.py"))
    for package in getattr(module, "HASH_DEPENDENCIES", ()):
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise ImportError(f"{module.__file__} lists HASH_DEPENDENCIES {package!r}, which cannot be found")
        origin = Path(spec.origin)
        files += sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
    return files


def _package_relative(path: Path) -> str:
    """`path` named from the top of its package, the same in a checkout and in any installation: a builder's files
    as `dataset_builders/<name>/...` (wherever the folder of builders is), lens_hf's as `lens_hf/...`, any other
    package's from the top of that package."""
    path = Path(path).resolve()
    roots = (("dataset_builders", builders_dir()), ("lens_hf", _DATA_PACKAGE.parent))
    for name, root in roots:
        if path.is_relative_to(root.resolve()):
            return f"{name}/{path.relative_to(root.resolve()).as_posix()}"
    top = path.parent
    while (top.parent / "__init__.py").is_file():
        top = top.parent
    return path.relative_to(top.parent if (top / "__init__.py").is_file() else top).as_posix()


def data_dir_fingerprint(data_dir: str, digest: "hashlib._Hash") -> None:
    """Feed every file's relative path, size and mtime under `data_dir` into `digest`, in sorted order.

    Symlinked folders are followed (a class folder may live elsewhere; edits there must show), each real
    folder once, so a link back up the tree ends the walk. An entry that cannot be followed (a broken
    link, a loop) enters as its link text: the builder reports it, and repairing it changes the key."""
    root = Path(data_dir)
    listed = set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        folder_stat = os.stat(folder)
        if (folder_stat.st_dev, folder_stat.st_ino) in listed:
            subfolders.clear()
            continue
        listed.add((folder_stat.st_dev, folder_stat.st_ino))
        subfolders.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            relative = Path(folder, name).relative_to(root).as_posix()
            try:
                stat = os.stat(path)
                digest.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
            except OSError:
                digest.update(f"{relative}\0-> {os.readlink(path) if os.path.islink(path) else '?'}\n".encode())


def builder_hash(module: ModuleType, data_dir: Optional[str] = None) -> str:
    """A digest of the builder's code, the lens_hf code it depends on (each file named by its path inside its
    package, so two `__init__.py` are told apart) and the data folder's listing."""
    digest = hashlib.sha256()
    for path in _source_files(module):
        digest.update(_package_relative(path).encode() + b"\0" + path.read_bytes())
    if data_dir and os.path.isdir(data_dir):
        data_dir_fingerprint(data_dir, digest)
    return digest.hexdigest()[:16]


def prepare_builder(
    name: str,
    config: Optional[str] = None,
    *,
    data_dir: Optional[str] = None,
    cache_dir: Optional[str] = None,
    download_mode: Optional[str] = None,
    **config_kwargs,
) -> LensGeneratorBuilder:
    """Instantiate builder `name` with config `config` (kwargs override config fields), build or
    reuse its cache, and return it; `builder.as_dataset()` then gives the DatasetDict and
    `builder.skipped_files` what `skip_bad_files=True` left out."""
    module = builder_module(name)
    cls = builder_class_from(module)
    if data_dir is not None:
        data_dir = os.path.abspath(os.path.expanduser(str(data_dir)))
    builder = cls(
        config_name=config,
        dataset_name=name,
        data_dir=data_dir,
        cache_dir=cache_dir,
        hash=builder_hash(module, data_dir),
        **config_kwargs,
    )
    builder.download_and_prepare(download_mode=download_mode)
    return builder


def builder_class_from(module: ModuleType) -> type[LensGeneratorBuilder]:
    classes = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, LensGeneratorBuilder) and obj.__module__ == module.__name__
    ]
    if len(classes) != 1:
        raise TypeError(f"{module.__file__} must define exactly one LensGeneratorBuilder subclass, found {classes}")
    return classes[0]


def load_builder(name: str, config: Optional[str] = None, **kwargs) -> datasets.DatasetDict:
    """Prepare builder `name`/`config` (see `prepare_builder`) and return all its splits.

    >>> ds = load_builder("deeplense", "model_ii", data_dir="~/data")            # doctest: +SKIP
    >>> ds = load_builder("deeplense_sim", "model_ii", n_train=1000, seed=3)    # doctest: +SKIP
    """
    return prepare_builder(name, config, **kwargs).as_dataset()
