"""What every lens_hf dataset builder shares: split options, bad-file handling, the skip report.

Builders in `dataset_builders/<name>/<name>.py` subclass `LensGeneratorBuilder` and declare a
`LensBuilderConfig` subclass; `lens_hf.data.load_builder` instantiates them directly.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Optional

import datasets

from .layouts import SourceFile
from .readers import LensDataError
from .splits import SPLIT_ORDER, check_fractions

logger = logging.getLogger(__name__)

BAD_FILES_REPORT = "bad_files.json"


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
    """Raises a `LensDataError`, or with `skip=True` logs and counts it: never a silently wrong row."""

    def __init__(self, skip: bool):
        self.skip = skip
        self.errors: list[LensDataError] = []

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
        with open(os.path.join(self._output_dir, BAD_FILES_REPORT), "w") as handle:
            json.dump(self.bad_file_log.as_records(), handle, indent=1)

    @property
    def skipped_files(self) -> list[dict]:
        """Files skipped when the cached data was built: [{"path", "problem"}], empty when none."""
        report = os.path.join(self._output_dir, BAD_FILES_REPORT)
        if not os.path.exists(report):
            return self.bad_file_log.as_records()
        with open(report) as handle:
            return json.load(handle)

    def require_data_dir(self, what: str) -> str:
        if not self.config.data_dir:
            raise ValueError(f"the '{self.dataset_name}' builder (config '{self.config.name}') needs data_dir: {what}")
        if not os.path.isdir(self.config.data_dir):
            raise LensDataError(self.config.data_dir, f"data_dir is not a folder; expected {what}")
        return self.config.data_dir

    @staticmethod
    def split_generators_for(splits: dict[str, list[SourceFile]]) -> list[datasets.SplitGenerator]:
        """One SplitGenerator per non-empty split, in train/validation/test order."""
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"sources": splits[split]})
            for split in SPLIT_ORDER
            if splits.get(split)
        ]
