"""Lens finding (lens vs non-lens) from the two layouts found in DeepLense work, as a
`datasets.GeneratorBasedBuilder`; instantiate through
`lens_hf.data.load_builder("lens_finding", "npy" | "bologna", data_dir=...)`.

- `npy`: `{train,test}_{lenses,nonlenses}/*.npy`, 3-band 64x64 cut-outs.
- `bologna`: the Bologna lens-finding challenge, `Band1/imageEUC_VIS-<ID>.fits` (101x101) with
  `classifications.csv`; FITS goes through astropy (BSCALE/BZERO applied, rows not flipped) and
  the catalogue's columns are kept.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np

from lens_hf.data.builder_base import LensBuilderConfig, LensGeneratorBuilder
from lens_hf.data.features import lens_features
from lens_hf.metrics.references import citations
from lens_hf.data.layouts import assign_splits, find_bologna_sources, find_lens_finding_npy
from lens_hf.data.readers import BOLOGNA_METADATA_COLUMNS, read_fits_image, read_npy_image

_DESCRIPTION = """\
Strong-lens finding: cut-outs labelled lens / nonlens. The `npy` config reads the
{train,test}_{lenses,nonlenses} folders of 3-band 64x64 images; the `bologna` config reads the
Bologna Lens Factory challenge (Euclid-like VIS 101x101 FITS) with its classifications.csv, keeping
Einstein_area, numb_pix_lensed_image and flux_lensed_image_in_sigma as columns. Images are
channel-first float32; `uid` is the file path (npy) or the catalogue ID (bologna).
"""

_CITATION = citations("lens_finding_challenge")

_LICENSE = "Follows the licence of the source data (Bologna Lens Factory challenge, DeepLense); this builder is MIT."
_HOMEPAGE = "http://metcalf1.difa.unibo.it/blf-portal/gg_challenge.html"

CLASS_NAMES = ("nonlens", "lens")
NPY_LAYOUT, BOLOGNA_LAYOUT = "npy", "bologna"


def bologna_column(name: str) -> str:
    """Catalogue column -> dataset column (lower case, as the other metadata columns)."""
    return name.lower()


@dataclass
class LensFindingConfig(LensBuilderConfig):
    """Args:
    layout: "npy" or "bologna".
    image_size: every image must be (channels, image_size, image_size).
    channels: bands of an npy image (bologna: one per entry of `bands`).
    bands: bologna band folders stacked as channels, in this order.
    """

    layout: str = NPY_LAYOUT
    image_size: int = 64
    channels: int = 3
    bands: tuple = ("Band1",)

    def validate(self) -> None:
        super().validate()
        if self.layout not in (NPY_LAYOUT, BOLOGNA_LAYOUT):
            raise ValueError(f"layout must be npy or bologna, got {self.layout!r}")
        if self.layout == BOLOGNA_LAYOUT and not self.bands:
            raise ValueError("the bologna layout needs at least one band folder in `bands`")

    @property
    def image_shape(self) -> tuple:
        channels = len(self.bands) if self.layout == BOLOGNA_LAYOUT else self.channels
        return (channels, self.image_size, self.image_size)


class LensFinding(LensGeneratorBuilder):
    """Lens / non-lens folders or the Bologna challenge -> image / label / uid (+ catalogue) rows."""

    BUILDER_CONFIG_CLASS = LensFindingConfig
    BUILDER_CONFIGS = [
        LensFindingConfig(
            name=NPY_LAYOUT,
            description="{train,test}_{lenses,nonlenses}/*.npy, 3x64x64; the test_* folders are the test split.",
            version=datasets.Version("1.0.0"),
        ),
        LensFindingConfig(
            name=BOLOGNA_LAYOUT,
            description="Bologna challenge: Band1/imageEUC_VIS-<ID>.fits (101x101) + classifications.csv.",
            layout=BOLOGNA_LAYOUT,
            image_size=101,
            test_fraction=0.1,
            version=datasets.Version("1.0.0"),
        ),
    ]

    def _info(self) -> datasets.DatasetInfo:
        config = self.config
        config.validate()
        extra = [bologna_column(name) for name in BOLOGNA_METADATA_COLUMNS] if config.layout == BOLOGNA_LAYOUT else []
        features = lens_features(
            {"image": config.image_shape}, class_names=CLASS_NAMES, metadata=("uid",), extra_float_columns=extra
        )
        return datasets.DatasetInfo(
            description=_DESCRIPTION, features=features, citation=_CITATION, license=_LICENSE, homepage=_HOMEPAGE
        )

    def _split_generators(self, dl_manager):
        config = self.config
        if config.layout == NPY_LAYOUT:
            data_dir = Path(self.require_data_dir("the folder holding {train,test}_{lenses,nonlenses}/*.npy"))
            train, test = find_lens_finding_npy(
                data_dir, on_bad_file=self.bad_file_log, on_ignored_folders=self.bad_file_log.ignore_folders
            )
            splits = assign_splits(train, config.seed, config.validation_fraction, config.test_fraction, test)
        else:
            data_dir = Path(self.require_data_dir("the folder holding classifications.csv and Band1/*.fits"))
            sources = find_bologna_sources(data_dir, config.bands, on_bad_file=self.bad_file_log)
            splits = assign_splits(sources, config.seed, config.validation_fraction, config.test_fraction)
        return self.split_generators_for(splits)

    def generate_rows(self, sources):
        for source in sources:
            row = self._read_npy(source) if self.config.layout == NPY_LAYOUT else self._read_bologna(source)
            if row is not None:
                yield source.key, row

    def _read_npy(self, source):
        loaded = self.bad_file_log.read(read_npy_image, source.path, self.config.image_shape, allow_mass_pair=False)
        if loaded is None:
            return None
        return {"image": loaded.image, "label": source.label, "uid": source.key}

    def _read_bologna(self, source):
        extra = dict(source.extra)
        size = self.config.image_size
        bands = [self.bad_file_log.read(read_fits_image, path, (1, size, size)) for path in extra.pop("band_paths")]
        if any(band is None for band in bands):
            return None
        row = {"image": np.concatenate(bands, axis=0), "label": source.label, "uid": source.key}
        row.update({bologna_column(name): value for name, value in extra.items()})
        return row
