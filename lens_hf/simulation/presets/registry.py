"""The presets by name: PRESETS and get_preset(name, **overrides)."""
from __future__ import annotations

from dataclasses import fields

from .base import SimulationPreset
from .deeplense import ModelIIIPreset, ModelIIPreset, ModelIPreset, PretrainPreset, SRPairsPreset
from .scenes import LensFindingPreset

PRESETS = {
    preset.name: preset
    for preset in (ModelIPreset, ModelIIPreset, ModelIIIPreset, SRPairsPreset, LensFindingPreset, PretrainPreset)
}


def get_preset(name: str, **overrides) -> SimulationPreset:
    """A preset instance by name, with any field overridden (e.g. image_size=64, noise=False)."""
    if name not in PRESETS:
        raise KeyError(f"unknown simulation preset {name!r}; available: {sorted(PRESETS)}")
    preset_class = PRESETS[name]
    known = {f.name for f in fields(preset_class)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"preset {name!r} has no field(s) {unknown}; fields: {sorted(known)}")
    return preset_class(**overrides)
