"""Instruments as lenstronomy's ObservationConfig describes them, and presets observed through one.

A preset's pixel scale, PSF, zero point, noise and exposure fields carry an instrument's values;
observed_with() sets them from the Instrument, so a preset names its instrument instead of
copying its numbers.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Instrument:
    """One band of an instrument, as lenstronomy's ObservationConfig describes it."""

    name: str
    pixel_scale: float  # arcsec
    psf_fwhm: float  # arcsec (Gaussian seeing)
    zero_point: float  # magnitude of 1 count/s
    read_noise: float  # electrons per exposure
    ccd_gain: float  # electrons per ADU
    sky_brightness: float  # mag / arcsec^2
    exposure_time: float  # seconds per exposure
    num_exposures: int


# lenstronomy <= 1.14.0 (the published Model II); 1.14.1 changed the zero point to 25.72
# (4.875x brighter), the sky to 22.3 and the exposure to 566 s.
EUCLID_VIS = Instrument("Euclid VIS (lenstronomy <= 1.14.0)", 0.101, 0.16, 24.0, 4.2, 3.1, 22.35, 565.0, 4)
HST_WFC3_F160W = Instrument("HST WFC3 F160W", 0.08, 0.08, 25.96, 4.0, 2.5, 22.3, 5400.0, 1)
INSTRUMENTS = {"euclid_vis": EUCLID_VIS, "hst_wfc3_f160w": HST_WFC3_F160W}

# The preset fields an Instrument sets: all of its fields but the name (same names).
INSTRUMENT_FIELDS = tuple(field.name for field in dataclasses.fields(Instrument) if field.name != "name")


def observed_with(instrument: Instrument):
    """Class decorator, applied below @dataclass: the preset's instrument fields default to `instrument`.

    The fields keep the position and type the parent preset gave them; a per-band (tuple) field
    gets the one-band tuple (value,).
    """

    def decorate(preset_class: type) -> type:
        if "__dataclass_fields__" in preset_class.__dict__:
            raise TypeError(f"observed_with() goes below @dataclass on {preset_class.__name__}")
        inherited = {field.name: field for field in dataclasses.fields(preset_class)}
        annotations = dict(preset_class.__dict__.get("__annotations__", {}))
        for name in INSTRUMENT_FIELDS:
            value = getattr(instrument, name)
            annotations[name] = inherited[name].type
            setattr(preset_class, name, (value,) if isinstance(inherited[name].default, tuple) else value)
        preset_class.__annotations__ = annotations
        return preset_class

    return decorate
