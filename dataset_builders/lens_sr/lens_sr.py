"""Super-resolution pairs on disk (`LR/*.npy` + `HR/*.npy` with matching names) as a
`datasets.GeneratorBasedBuilder`; instantiate through `lens_hf.data.load_builder("lens_sr", data_dir=...)`."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import datasets

from lens_hf.data.builder_base import LensBuilderConfig, LensGeneratorBuilder
from lens_hf.data.features import lens_features
from lens_hf.metrics.references import citations
from lens_hf.data.layouts import assign_splits, find_sr_pairs
from lens_hf.data.readers import read_npy_image

_DESCRIPTION = """\
Paired low/high-resolution strong-lensing images for super-resolution (the DeepLense SR set:
LR 75x75 at 0.05"/px with noise, HR 150x150 at 0.025"/px, values in [0, 1]). Each row holds the
channel-first float32 `lr` and `hr` images of one lens and its file name as `uid`. There is no
official test folder; a seeded hash of the file name decides train / validation / test.
"""

_CITATION = citations("deeplense")

_LICENSE = "Follows the licence of the source data; this builder is MIT."
_HOMEPAGE = "https://github.com/ML4SCI/DeepLense"


@dataclass
class LensSRConfig(LensBuilderConfig):
    """Args:
    lr_size / hr_size: every LR / HR image must be (channels, size, size).
    channels: bands per image.
    """

    lr_size: int = 75
    hr_size: int = 150
    channels: int = 1
    test_fraction: float = 0.1


class LensSR(LensGeneratorBuilder):
    """`LR/` + `HR/` folders -> lr / hr / uid rows."""

    BUILDER_CONFIG_CLASS = LensSRConfig
    BUILDER_CONFIGS = [
        LensSRConfig(
            name="default",
            description="LR/*.npy and HR/*.npy pairs with matching file names.",
            version=datasets.Version("1.0.0"),
        )
    ]

    def _info(self) -> datasets.DatasetInfo:
        config = self.config
        config.validate()
        features = lens_features(
            {
                "lr": (config.channels, config.lr_size, config.lr_size),
                "hr": (config.channels, config.hr_size, config.hr_size),
            }
        )
        return datasets.DatasetInfo(
            description=_DESCRIPTION, features=features, citation=_CITATION, license=_LICENSE, homepage=_HOMEPAGE
        )

    def _split_generators(self, dl_manager):
        config = self.config
        data_dir = Path(self.require_data_dir("the folder holding LR/*.npy and HR/*.npy"))
        pairs = find_sr_pairs(data_dir, on_bad_file=self.bad_file_log)
        splits = assign_splits(pairs, config.seed, config.validation_fraction, config.test_fraction)
        return self.split_generators_for(splits)

    def generate_rows(self, sources):
        config = self.config
        lr_shape = (config.channels, config.lr_size, config.lr_size)
        hr_shape = (config.channels, config.hr_size, config.hr_size)
        for source in sources:
            lr = self.bad_file_log.read(read_npy_image, source.path, lr_shape, allow_mass_pair=False)
            hr = self.bad_file_log.read(read_npy_image, source.partner, hr_shape, allow_mass_pair=False)
            if lr is None or hr is None:
                continue
            yield source.key, {"lr": lr.image, "hr": hr.image, "uid": source.key}
