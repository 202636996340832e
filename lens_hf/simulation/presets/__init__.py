"""Simulation presets: dataclasses whose defaults reproduce the published data sets.

A preset holds every setting of a data set; get_preset(name, field=value, ...) returns one with
any field overridden. Per-image random parameters are drawn by preset.sample_parameters()
from counter-based random numbers keyed by (seed, image index) and returned as the metadata
dict that engine.render() turns into images.

base: what every preset shares; instruments: the instruments' values; deeplense: the
DeepLenseSim family (model_i/ii/iii, sr_pairs, pretrain); scenes: lens_finding; registry:
presets by name.
"""
from .base import COUNT_UNITS, NOISE_MODELS, NORMALIZATIONS, VORTEX_MODELS, PresetError, SimulationPreset
from .deeplense import (
    SUBSTRUCTURE_CLASSES,
    SUBSTRUCTURE_TYPES,
    DeepLenseSimPreset,
    ModelIIIPreset,
    ModelIIPreset,
    ModelIPreset,
    PretrainPreset,
    SRPairsPreset,
)
from .instruments import EUCLID_VIS, HST_WFC3_F160W, INSTRUMENTS, Instrument, observed_with
from .registry import PRESETS, get_preset
from .scenes import LENS_FINDING_CLASSES, LensFindingPreset

__all__ = [
    "COUNT_UNITS", "EUCLID_VIS", "HST_WFC3_F160W", "INSTRUMENTS", "LENS_FINDING_CLASSES", "NOISE_MODELS",
    "NORMALIZATIONS", "PRESETS", "SUBSTRUCTURE_CLASSES", "SUBSTRUCTURE_TYPES", "VORTEX_MODELS",
    "DeepLenseSimPreset", "Instrument", "LensFindingPreset", "ModelIIIPreset", "ModelIIPreset", "ModelIPreset",
    "PresetError", "PretrainPreset", "SimulationPreset", "SRPairsPreset", "get_preset", "observed_with",
]
