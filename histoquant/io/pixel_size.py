"""Pixel size from file metadata, with units."""

from __future__ import annotations

import logging

__all__ = ["length_to_um", "resolution_to_um"]

log = logging.getLogger(__name__)

_UNIT_TO_UM = {
    "pm": 1e-6,
    "nm": 1e-3,
    "um": 1.0,
    "µm": 1.0,
    "μm": 1.0,  # GREEK SMALL LETTER MU, as some writers use instead of MICRO SIGN
    "micron": 1.0,
    "microns": 1.0,
    "micrometer": 1.0,
    "micrometre": 1.0,
    "mm": 1e3,
    "millimeter": 1e3,
    "cm": 1e4,
    "centimeter": 1e4,
    "m": 1e6,
    "meter": 1e6,
    "in": 25400.0,
    "inch": 25400.0,
}

# A resolution given per inch at or below this many dots is a screen or print default
# (72, 96, 150, 300, 600 dpi), not a microscope calibration: 1200 dpi is 21 µm per pixel,
# coarser than any section scan histoquant is meant for.
MAX_UNCALIBRATED_DPI = 1200.0


def _normalise_unit(unit: str) -> str:
    u = str(unit).strip()
    # ImageJ writes the micro sign as a literal "\u00B5" escape in its metadata.
    u = u.replace("\\u00B5", "µ").replace("\\u00b5", "µ")
    return u.lower() if u.lower() in _UNIT_TO_UM else u


def length_to_um(value: float, unit: str | None) -> float | None:
    """Convert a length in ``unit`` to µm; ``None`` when the unit is unknown or a pixel.

    Parameters
    ----------
    value : float
        The length.
    unit : str or None
        Its unit as a file writes it (``"nm"``, ``"µm"``, ``"micron"``, ``"mm"``, ...).

    Returns
    -------
    float or None
        The length in µm.
    """
    if unit is None or unit == "":
        unit = "µm"
    u = _normalise_unit(unit)
    factor = _UNIT_TO_UM.get(u) or _UNIT_TO_UM.get(u.lower())
    if factor is None:
        log.info("unknown length unit %r: pixel size treated as unknown", unit)
        return None
    return float(value) * factor


def resolution_to_um(pixels_per_unit: float, unit: str | None) -> float | None:
    """Convert a resolution (pixels per ``unit``) to µm per pixel.

    Parameters
    ----------
    pixels_per_unit : float
        The resolution (e.g. a TIFF's XResolution).
    unit : str or None
        The unit it is given per (``"cm"``, ``"inch"``, ...).

    Returns
    -------
    float or None
        µm per pixel; ``None`` when the resolution is missing, zero, in an unknown unit, or
        a typical screen/print default given per inch (see ``MAX_UNCALIBRATED_DPI``).
    """
    if not pixels_per_unit or pixels_per_unit <= 0 or unit is None:
        return None
    u = _normalise_unit(unit)
    if u in ("in", "inch") and pixels_per_unit <= MAX_UNCALIBRATED_DPI:
        log.info("%g dpi is a display default, not a calibration: pixel size unknown",
                 pixels_per_unit)
        return None
    size = length_to_um(1.0 / pixels_per_unit, u)
    return size
