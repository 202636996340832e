"""DeepLense data already on disk: DeepLenseSim Model I/II/III, the common test set and the
64x64 foundation-model set, as a `datasets.GeneratorBasedBuilder`.

Instantiate through `lens_hf.data.load_builder("deeplense", "model_i", data_dir=...)`; datasets
>= 4 no longer runs loading scripts, so this file is never passed to `load_dataset`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import datasets

from lens_hf.data.builder_base import LensBuilderConfig, LensGeneratorBuilder
from lens_hf.data.features import lens_features
from lens_hf.metrics.references import citations
from lens_hf.data.layouts import (
    assign_splits,
    class_folder_files,
    find_common_test_folders,
    find_model_folders,
)
from lens_hf.data.readers import LensDataError, read_npy_image

_DESCRIPTION = """\
Strong-lensing images from the DeepLense project read from the folders users already have:
DeepLenseSim Model I (150x150, 0.05"/px), Model II (64x64 Euclid-like, 0.101"/px) and Model III
(64x64 HST-like, 0.08"/px) with classes axion / cdm / no_sub (axion files carry the axion mass),
the common test set (no / sphere / vort, 150x150) and the 64x64 foundation-model set. Images are
channel-first float32 with the raw values of the files; splits are a seeded hash of the file path,
and `Model_X_test/` (or the common test set's `val/`) is the test split.
"""

_CITATION = citations("deeplense")

_LICENSE = "Follows the licence of the source data (the DeepLense data releases); this builder is MIT."
_HOMEPAGE = "https://github.com/ML4SCI/DeepLense"

SUBSTRUCTURE_CLASSES = ("axion", "cdm", "no_sub")
COMMON_TEST_CLASSES = ("no", "sphere", "vort")
MODEL_LAYOUT, COMMON_TEST_LAYOUT, FOUNDATION_LAYOUT = "model", "common_test", "foundation"


@dataclass
class DeepLenseConfig(LensBuilderConfig):
    """Args:
    layout: "model" (Model_X/ + Model_X_test/), "common_test" (dataset/{train,val}/) or
        "foundation" (class folders only).
    folder_name: the Model_X folder of the "model" layout.
    class_names: class folders, in label order.
    image_size: every image must be (1, image_size, image_size) after channel-first conversion.
    pixel_scale_arcsec: the simulation's pixel scale, stored per row (NaN where unknown).
    regression: axion images only, with `log10_m_axion` as the target and no label.
    """

    layout: str = MODEL_LAYOUT
    folder_name: str = "Model_I"
    class_names: tuple = SUBSTRUCTURE_CLASSES
    image_size: int = 150
    pixel_scale_arcsec: float = math.nan
    regression: bool = False

    def validate(self) -> None:
        super().validate()
        if self.layout not in (MODEL_LAYOUT, COMMON_TEST_LAYOUT, FOUNDATION_LAYOUT):
            raise ValueError(f"layout must be model, common_test or foundation, got {self.layout!r}")
        if self.regression and (self.layout != MODEL_LAYOUT or "axion" not in self.class_names):
            raise ValueError("regression configs read the axion folder of a Model_X layout")


def _model_configs(number: str, folder: str, size: int, pixel_scale: float) -> list[DeepLenseConfig]:
    common = dict(folder_name=folder, image_size=size, pixel_scale_arcsec=pixel_scale, version=datasets.Version("1.0.0"))
    return [
        DeepLenseConfig(
            name=f"model_{number}",
            description=f"DeepLenseSim {folder}: axion / cdm / no_sub classification ({size}x{size}).",
            **common,
        ),
        DeepLenseConfig(
            name=f"regression_model_{number}",
            description=f"DeepLenseSim {folder} axion images with log10 of the axion mass in eV as the target.",
            regression=True,
            class_names=("axion",),
            **common,
        ),
    ]


class DeepLense(LensGeneratorBuilder):
    """Real DeepLense folders -> image / label / log10_m_axion / pixel_scale_arcsec / uid rows."""

    BUILDER_CONFIG_CLASS = DeepLenseConfig
    BUILDER_CONFIGS = [
        *_model_configs("i", "Model_I", 150, 0.05),
        *_model_configs("ii", "Model_II", 64, 0.101),
        *_model_configs("iii", "Model_III", 64, 0.08),
        DeepLenseConfig(
            name="common_test",
            description="The DeepLense common test set: no / sphere / vort substructure, 150x150, min-max normalised.",
            layout=COMMON_TEST_LAYOUT,
            class_names=COMMON_TEST_CLASSES,
            image_size=150,
            version=datasets.Version("1.0.0"),
        ),
        DeepLenseConfig(
            name="foundation",
            description="The 64x64 foundation-model set: axion / cdm / no_sub, no official test folder.",
            layout=FOUNDATION_LAYOUT,
            image_size=64,
            test_fraction=0.1,
            version=datasets.Version("1.0.0"),
        ),
    ]

    def _info(self) -> datasets.DatasetInfo:
        config = self.config
        config.validate()
        metadata = ("uid",) if config.layout != MODEL_LAYOUT else ("log10_m_axion", "pixel_scale_arcsec", "uid")
        features = lens_features(
            {"image": (1, config.image_size, config.image_size)},
            class_names=None if config.regression else config.class_names,
            metadata=metadata,
        )
        return datasets.DatasetInfo(
            description=_DESCRIPTION, features=features, citation=_CITATION, license=_LICENSE, homepage=_HOMEPAGE
        )

    def _split_generators(self, dl_manager):
        config = self.config
        data_dir = Path(self.require_data_dir(_DATA_DIR_HINTS[config.layout]))
        log = self.bad_file_log
        # a Model_X folder always holds all three classes; a config reading fewer leaves the others out on purpose
        not_read = SUBSTRUCTURE_CLASSES if config.layout == MODEL_LAYOUT else ()

        def files(root: Path, key_root: Path) -> list:
            return class_folder_files(root, config.class_names, key_root=key_root, on_bad_file=log,
                                      not_read=not_read, on_ignored_folders=log.ignore_folders)

        official_test = []
        if config.layout == MODEL_LAYOUT:
            train_root, test_root = find_model_folders(data_dir, config.folder_name)
            sources = files(train_root, train_root.parent)
            if test_root is not None:
                official_test = files(test_root, test_root.parent)
        elif config.layout == COMMON_TEST_LAYOUT:
            train_root, val_root = find_common_test_folders(data_dir)
            key_root = train_root.parent.parent
            sources = files(train_root, key_root)
            official_test = files(val_root, key_root)
        else:
            sources = files(data_dir, data_dir)
        splits = assign_splits(sources, config.seed, config.validation_fraction, config.test_fraction, official_test)
        return self.split_generators_for(splits)

    def generate_rows(self, sources):
        config = self.config
        expected_shape = (1, config.image_size, config.image_size)
        for source in sources:
            loaded = self.bad_file_log.read(
                read_npy_image, source.path, expected_shape, allow_mass_pair=source.label == "axion"
            )
            if loaded is None:
                continue
            if config.regression and loaded.mass_ev is None:
                self.bad_file_log(LensDataError(source.path, _MISSING_MASS))
                continue
            row = {"image": loaded.image, "uid": source.key}
            if not config.regression:
                row["label"] = source.label
            if config.layout == MODEL_LAYOUT:
                row["log10_m_axion"] = loaded.log10_mass
                row["pixel_scale_arcsec"] = config.pixel_scale_arcsec
            yield source.key, row


_MISSING_MASS = "regression needs the axion mass: expected a pickled [image, mass_eV] pair, got a plain array"
_DATA_DIR_HINTS = {
    MODEL_LAYOUT: "the folder holding Model_X/{axion,cdm,no_sub}/*.npy (and Model_X_test/)",
    COMMON_TEST_LAYOUT: "the folder holding dataset/{train,val}/{no,sphere,vort}/*.npy",
    FOUNDATION_LAYOUT: "the folder holding {axion,cdm,no_sub}/*.npy",
}
