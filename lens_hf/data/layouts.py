"""Finding the files of each real on-disk layout, in sorted order.

Folder-level problems (a missing or empty class folder) always raise; per-file problems (an
LR image without its HR partner, a catalogue row without its FITS file, two FITS files of one
ID, a broken symlink) go to `on_bad_file`, which raises or counts them, so `--skip_bad_files`
treats them like unreadable files. Subfolders a layout does not read are reported (a warning),
never silently dropped.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from .readers import LensDataError, PathLike, read_bologna_catalog, symlink_problem
from .splits import TEST, assign_split, check_fractions

logger = logging.getLogger(__name__)

BadFileHandler = Callable[[LensDataError], None]
# Told about subfolders a layout does not read: (folder, their names, why).
FolderNote = Callable[[Path, list, str], None]


def raise_bad_file(error: LensDataError) -> None:
    raise error


@dataclass(frozen=True)
class SourceFile:
    """One example's file(s). `key` (the path relative to the data folder) is its uid and split key."""

    key: str
    path: Path
    label: Optional[str] = None
    partner: Optional[Path] = None  # the HR file of an SR pair
    extra: tuple = ()  # per-example values from a catalogue, as (name, value) pairs


def _relative_key(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        problem = symlink_problem(path) or ("not a folder but a file" if path.exists() else "folder not found")
        raise LensDataError(path, f"{problem}; expected {what}")
    return path


def list_files(folder: Path, suffixes: Sequence[str], on_bad_file: BadFileHandler = raise_bad_file) -> list[Path]:
    """Files with one of `suffixes` directly in `folder`, sorted by name; hidden files are ignored. An entry
    with such a name that leads nowhere (a broken symlink, a symlink loop) is a bad file."""
    suffixes = tuple(s.lower() for s in suffixes)
    try:
        entries = sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.name.lower().endswith(suffixes))
    except OSError as error:
        raise LensDataError(folder, f"cannot list the folder: {error.strerror}") from None
    files = []
    for path in entries:
        problem = None if path.is_file() else symlink_problem(path)
        if problem:
            on_bad_file(LensDataError(path, problem))
        elif path.is_file():
            files.append(path)
    return files


def log_ignored_folders(root: Path, names: list[str], reason: str) -> None:
    logger.warning("%s: ignoring folder(s) %s: %s", root, ", ".join(names), reason)


def warn_unread_folders(
    root: Path, read: Sequence[str], not_read: Sequence[str] = (), on_ignored_folders: FolderNote = log_ignored_folders
) -> None:
    """Report the visible subfolders of `root` that are neither read nor known to be left out on purpose
    (`not_read`): a class folder with a typo, or an extra class, must not vanish without a word."""
    try:
        unread = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                        and p.name not in read and p.name not in not_read)
    except OSError as error:
        raise LensDataError(root, f"cannot list the folder: {error.strerror}") from None
    if unread:
        on_ignored_folders(root, unread, f"not among the folders this config reads {list(read)}")


def class_folder_files(
    root: Path,
    class_names: Sequence[str],
    key_root: Path,
    suffixes=(".npy",),
    on_bad_file: BadFileHandler = raise_bad_file,
    not_read: Sequence[str] = (),
    on_ignored_folders: FolderNote = log_ignored_folders,
) -> list[SourceFile]:
    """`root/<class>/*.npy` for every class; each class folder must exist and hold usable files. Other
    subfolders of `root` (except the `not_read` ones) are reported to `on_ignored_folders`."""
    warn_unread_folders(root, class_names, not_read, on_ignored_folders)
    sources = []
    for class_name in class_names:
        folder = require_dir(root / class_name, f"a class folder '{class_name}' of {list(class_names)} in {root}")
        sources += [
            SourceFile(key=_relative_key(f, key_root), path=f, label=class_name)
            for f in _class_files(folder, suffixes, on_bad_file)
        ]
    return sources


def _class_files(folder: Path, suffixes: Sequence[str], on_bad_file: BadFileHandler) -> list[Path]:
    """`list_files`, refusing a class folder with no usable file (none at all, or only bad ones that were skipped)."""
    bad = []
    files = list_files(folder, suffixes, on_bad_file=lambda error: (bad.append(error), on_bad_file(error)))
    if not files and bad:
        raise LensDataError(folder, f"class folder has no usable {'/'.join(suffixes)} files: all {len(bad)} were bad and skipped")
    if not files:
        raise LensDataError(folder, f"class folder is empty: no {'/'.join(suffixes)} files")
    return files


def assign_splits(
    sources: Iterable[SourceFile],
    seed: int,
    validation_fraction: float,
    test_fraction: float = 0.0,
    official_test: Iterable[SourceFile] = (),
) -> dict[str, list[SourceFile]]:
    """Seeded-hash train/validation(/test) for `sources`; `official_test` is the test split as given.

    `test_fraction` must be 0 when an official test set exists: the two would mix.
    """
    check_fractions(validation_fraction, test_fraction)
    official_test = sorted(official_test, key=lambda s: s.key)
    if official_test and test_fraction:
        raise ValueError("test_fraction must be 0 when the data has an official test folder")
    splits: dict[str, list[SourceFile]] = {}
    for source in sorted(sources, key=lambda s: s.key):
        splits.setdefault(assign_split(source.key, seed, validation_fraction, test_fraction), []).append(source)
    if official_test:
        splits[TEST] = official_test
    return splits


# --------------------------------------------------------------------------- DeepLense layouts


def find_model_folders(data_dir: PathLike, folder_name: str) -> tuple[Path, Optional[Path]]:
    """`Model_X/` and its optional sibling `Model_X_test/`; `data_dir` may be their parent or `Model_X` itself."""
    data_dir = Path(data_dir)
    train_root = data_dir / folder_name
    if not train_root.is_dir() and data_dir.name == folder_name:
        train_root = data_dir
    require_dir(train_root, f"the DeepLenseSim folder {folder_name}/ with its class folders (or its parent)")
    test_root = train_root.parent / f"{folder_name}_test"
    return train_root, (test_root if test_root.is_dir() else None)


def find_common_test_folders(data_dir: PathLike) -> tuple[Path, Path]:
    """`dataset/{train,val}`; `data_dir` may be the folder holding `dataset/` or `dataset/` itself."""
    data_dir = Path(data_dir)
    root = data_dir / "dataset" if (data_dir / "dataset").is_dir() else data_dir
    train = require_dir(root / "train", "dataset/train/{no,sphere,vort}/*.npy (the common test set layout)")
    val = require_dir(root / "val", "dataset/val/{no,sphere,vort}/*.npy (the common test set layout)")
    return train, val


def find_sr_pairs(data_dir: PathLike, on_bad_file: BadFileHandler = raise_bad_file) -> list[SourceFile]:
    """`LR/*.npy` with the `HR/*.npy` of the same name; an unpartnered file is a bad file."""
    data_dir = Path(data_dir)
    lr_dir = require_dir(data_dir / "LR", "LR/*.npy low-resolution images next to HR/")
    hr_dir = require_dir(data_dir / "HR", "HR/*.npy high-resolution images next to LR/")
    lr_files = {p.name: p for p in list_files(lr_dir, (".npy",), on_bad_file)}
    hr_files = {p.name: p for p in list_files(hr_dir, (".npy",), on_bad_file)}
    if not lr_files:
        raise LensDataError(lr_dir, "folder is empty: no .npy files")
    for name in sorted(set(hr_files) - set(lr_files)):
        on_bad_file(LensDataError(hr_files[name], f"no low-resolution partner {lr_dir / name}"))
    pairs = []
    for name in sorted(lr_files):
        if name not in hr_files:
            on_bad_file(LensDataError(lr_files[name], f"no high-resolution partner {hr_dir / name}"))
            continue
        pairs.append(SourceFile(key=name, path=lr_files[name], partner=hr_files[name]))
    return pairs


def find_lens_finding_npy(
    data_dir: PathLike, on_bad_file: BadFileHandler = raise_bad_file, on_ignored_folders: FolderNote = log_ignored_folders
) -> tuple[list[SourceFile], list[SourceFile]]:
    """`{train,test}_{lenses,nonlenses}/*.npy` -> (train sources, test sources), labels lens / nonlens."""
    data_dir = Path(data_dir)
    folders = {(part, suffix): f"{part}_{suffix}" for part in ("train", "test") for suffix in ("nonlenses", "lenses")}
    warn_unread_folders(data_dir, list(folders.values()), on_ignored_folders=on_ignored_folders)
    found = {"train": [], "test": []}
    for (part, folder_suffix), name in folders.items():
        label = "lens" if folder_suffix == "lenses" else "nonlens"
        folder = require_dir(data_dir / name, "{train,test}_{lenses,nonlenses}/*.npy (the lens-finding layout)")
        found[part] += [
            SourceFile(key=_relative_key(f, data_dir), path=f, label=label)
            for f in _class_files(folder, (".npy",), on_bad_file)
        ]
    return found["train"], found["test"]


_BOLOGNA_ID = re.compile(r"-(\d+)\.fits?$", re.IGNORECASE)


def find_bologna_sources(
    data_dir: PathLike, bands: Sequence[str], on_bad_file: BadFileHandler = raise_bad_file
) -> list[SourceFile]:
    """Rows of `classifications.csv` with their `Band*/...-<ID>.fits` files (the first band is `path`).

    A row whose FITS file is missing in any band is a bad file, and so are two files of one ID (the row is
    left out); images without a row are unlabelled and left out.
    """
    data_dir = Path(data_dir)
    catalog = read_bologna_catalog(data_dir / "classifications.csv")
    band_files, ambiguous = {}, set()
    for band in bands:
        folder = require_dir(data_dir / band, f"a band folder {band}/ of FITS images named '...-<ID>.fits'")
        by_id = {}
        for path in list_files(folder, (".fits", ".fit"), on_bad_file):
            match = _BOLOGNA_ID.search(path.name)
            if not match:
                continue
            object_id = int(match.group(1))
            if object_id in by_id:  # e.g. x-7.fits and x-007.fits, or x-7.fits and x-7.fit: which is row 7?
                ambiguous.add(object_id)
                on_bad_file(LensDataError(path, f"maps to ID {object_id}, as {by_id[object_id]} does; keep one file per ID"))
            else:
                by_id[object_id] = path
        if not by_id:
            raise LensDataError(folder, "band folder holds no FITS files named '...-<ID>.fits'")
        band_files[band] = by_id
    sources = []
    for row in sorted(catalog, key=lambda r: r.object_id):
        if row.object_id in ambiguous:
            continue  # reported above; neither file is trusted
        missing = [band for band in bands if row.object_id not in band_files[band]]
        if missing:
            on_bad_file(
                LensDataError(
                    data_dir / "classifications.csv",
                    f"row ID {row.object_id} has no FITS file '*-{row.object_id}.fits' in {missing}",
                )
            )
            continue
        paths = [band_files[band][row.object_id] for band in bands]
        sources.append(
            SourceFile(
                key=str(row.object_id),
                path=paths[0],
                label="lens" if row.is_lens else "nonlens",
                extra=(("band_paths", tuple(paths)),) + tuple(sorted(row.metadata.items())),
            )
        )
    return sources
