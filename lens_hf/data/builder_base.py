"""What every lens_hf dataset builder shares: split options, bad-file handling, the skip report.

Builders in `dataset_builders/<name>/<name>.py` subclass `LensGeneratorBuilder` and declare a
`LensBuilderConfig` subclass; `lens_hf.data.load_builder` instantiates them directly.
"""
from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterator, Optional

import datasets

from .layouts import SourceFile, log_ignored_folders
from .readers import LensDataError, symlink_problem
from .splits import SPLIT_ORDER, check_fractions

logger = logging.getLogger(__name__)

BAD_FILES_REPORT = "bad_files.json"
IGNORED_FOLDERS_REPORT = "ignored_folders.json"


@dataclass
class LensBuilderConfig(datasets.BuilderConfig):
    """Options every lens_hf builder understands (all settable as `load_builder` kwargs).

    Args:
        seed: seeds the hash that sends each file to train or validation (and the simulator).
        validation_fraction: share of the non-test files that go to validation.
        test_fraction: share that goes to test where the data has no official test folder.
        skip_bad_files: skip (and count) unreadable or invalid files instead of raising.
    """

    seed: int = 0
    validation_fraction: float = 0.1
    test_fraction: float = 0.0
    skip_bad_files: bool = False

    # Fields a builder does not use: setting them is an error, and export cards leave them out.
    UNUSED_FIELDS: ClassVar[tuple] = ()

    def validate(self) -> None:
        """Called from `_info`, after load_builder's kwargs were applied to the config."""
        for name in self.UNUSED_FIELDS:
            default = type(self).__dataclass_fields__[name].default
            if getattr(self, name) != default:
                raise ValueError(f"{name} has no effect on config {self.name!r} ({type(self).__name__}); leave it at {default!r}")
        check_fractions(self.validation_fraction, self.test_fraction)


class BadFileLog:
    """Raises a `LensDataError`, or with `skip=True` logs and counts it: never a silently wrong row.
    Also records the subfolders a layout did not read (`ignore_folders`), which are never an error."""

    def __init__(self, skip: bool):
        self.skip = skip
        self.errors: list[LensDataError] = []
        self.ignored_folders: list[dict] = []

    def __call__(self, error: LensDataError) -> None:
        if not self.skip:
            raise error
        logger.warning("skipping bad file %s", error)
        self.errors.append(error)

    def read(self, reader: Callable[..., Any], *args, **kwargs) -> Optional[Any]:
        """`reader(*args, **kwargs)`, or None when it raised a LensDataError that is being skipped."""
        try:
            return reader(*args, **kwargs)
        except LensDataError as error:
            self(error)
            return None

    def ignore_folders(self, root, names: list, reason: str) -> None:
        """A layout's `on_ignored_folders`: warn, and keep them for the build report."""
        log_ignored_folders(root, names, reason)
        self.ignored_folders += [{"path": os.path.join(str(root), name), "reason": reason} for name in names]

    def as_records(self) -> list[dict]:
        return [{"path": error.path, "problem": error.problem} for error in self.errors]


class LensGeneratorBuilder(datasets.GeneratorBasedBuilder):
    """GeneratorBasedBuilder plus the bad-file log, written beside the cached Arrow files so a
    cache hit still reports what was skipped when the data was built."""

    BUILDER_CONFIG_CLASS = LensBuilderConfig

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.bad_file_log = BadFileLog(skip=self.config.skip_bad_files)

    def _download_and_prepare(self, dl_manager, verification_mode, **prepare_split_kwargs):
        self.bad_file_log = BadFileLog(skip=self.config.skip_bad_files)
        try:
            super()._download_and_prepare(dl_manager, verification_mode, **prepare_split_kwargs)
        except datasets.exceptions.DatasetGenerationError as error:
            # datasets wraps whatever _generate_examples raises; the user needs the file and the problem
            if isinstance(error.__cause__, LensDataError):
                raise error.__cause__ from None
            raise
        for name, records in ((BAD_FILES_REPORT, self.bad_file_log.as_records()),
                              (IGNORED_FOLDERS_REPORT, self.bad_file_log.ignored_folders)):
            with open(os.path.join(self._output_dir, name), "w") as handle:
                json.dump(records, handle, indent=1)

    def _build_report(self, name: str, records: list) -> list[dict]:
        report = os.path.join(self._output_dir, name)
        if not os.path.exists(report):
            return records
        with open(report) as handle:
            return json.load(handle)

    @property
    def skipped_files(self) -> list[dict]:
        """Files skipped when the cached data was built: [{"path", "problem"}], empty when none."""
        return self._build_report(BAD_FILES_REPORT, self.bad_file_log.as_records())

    @property
    def ignored_folders(self) -> list[dict]:
        """Subfolders the layout did not read when the cached data was built: [{"path", "reason"}]."""
        return self._build_report(IGNORED_FOLDERS_REPORT, self.bad_file_log.ignored_folders)

    def require_data_dir(self, what: str) -> str:
        if not self.config.data_dir:
            raise ValueError(f"the '{self.dataset_name}' builder (config '{self.config.name}') needs data_dir: {what}")
        if not os.path.isdir(self.config.data_dir):
            problem = symlink_problem(self.config.data_dir) or "data_dir is not a folder"
            raise LensDataError(self.config.data_dir, f"{problem}; expected {what}")
        return self.config.data_dir

    def split_generators_for(self, splits: dict[str, list[SourceFile]]) -> list[datasets.SplitGenerator]:
        """One SplitGenerator per non-empty split, in train/validation/test order (rows come from
        `generate_rows`); no split at all, because every file was bad and skipped, is an error."""
        if not any(splits.values()):
            raise LensDataError(self.config.data_dir, "no usable files left: every file found was bad and skipped")
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"sources": splits[split], "split": split})
            for split in SPLIT_ORDER
            if splits.get(split)
        ]

    def generate_rows(self, sources: list[SourceFile]) -> Iterator[tuple[str, dict]]:
        """(source.key, row) for each source that reads correctly; bad ones go to `self.bad_file_log`."""
        raise NotImplementedError

    def _generate_examples(self, sources: list[SourceFile], split: str):
        """`generate_rows`, refusing a split, or a class of it, that skipped bad files left without a row
        (a model trained or scored on it would silently miss that class)."""
        labels = {source.key: source.label for source in sources}
        kept = Counter()
        for key, row in self.generate_rows(sources):
            kept[labels.get(key)] += 1
            yield key, row
        if not kept:
            folder = os.path.commonpath([str(source.path.parent) for source in sources])
            raise LensDataError(
                folder, f"all {len(sources)} file(s) of split '{split}' were bad and skipped; the split would be empty"
            )
        for label, count in sorted(Counter(labels.values()).items(), key=lambda item: str(item[0])):
            if label is not None and not kept[label]:
                folder = os.path.commonpath([str(s.path.parent) for s in sources if s.label == label])
                raise LensDataError(
                    folder,
                    f"all {count} file(s) of class '{label}' in split '{split}' were bad and skipped; "
                    "the split would have no example of the class",
                )
