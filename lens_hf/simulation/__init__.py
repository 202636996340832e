"""Batched torch lensing simulator reproducing DeepLenseSim (see docs/simulation.md).

    from lens_hf.simulation import get_preset, simulate, render, SimulatedLensDataset, PRESETS
    preset = get_preset("model_ii", image_size=64)
    result = simulate(preset, n=1000, seed=0)      # result.images (N, C, H, W), result.metadata
    again = render(preset, result.metadata)        # the same images from their parameters
"""
from .dataset import SimulatedLensDataset
from .engine import SimulationResult, render, simulate, validate_metadata
from .presets import (
    EUCLID_VIS,
    HST_WFC3_F160W,
    INSTRUMENTS,
    LENS_FINDING_CLASSES,
    PRESETS,
    SUBSTRUCTURE_CLASSES,
    DeepLenseSimPreset,
    Instrument,
    LensFindingPreset,
    ModelIIIPreset,
    ModelIIPreset,
    ModelIPreset,
    PresetError,
    PretrainPreset,
    SimulationPreset,
    SRPairsPreset,
    get_preset,
)

__all__ = [
    "EUCLID_VIS", "HST_WFC3_F160W", "INSTRUMENTS", "LENS_FINDING_CLASSES", "PRESETS", "SUBSTRUCTURE_CLASSES",
    "DeepLenseSimPreset", "Instrument", "LensFindingPreset", "ModelIIIPreset", "ModelIIPreset", "ModelIPreset",
    "PresetError", "PretrainPreset", "SimulationPreset", "SRPairsPreset", "SimulatedLensDataset",
    "SimulationResult", "get_preset", "render", "simulate", "validate_metadata",
]
