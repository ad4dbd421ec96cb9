"""Automatic spinal cord anatomy: sections, grey/white matter, canal, orientation, horns.

Entry points:

- :func:`find_sections` — every cord cross-section of an image with its regions, orientation
  and quality (a :class:`SlideAnatomy`).
- :func:`auto_regions` — full-resolution masks of named regions, used by every assay's
  ``regions="auto"``.
- :func:`anatomy_overlay` — the QC picture.

The anatomy runs on the image block-averaged to a working resolution (10 µm by default) and
maps its regions back to full resolution; see :mod:`.regions` for names, codes and the
left/right convention, and ``docs/anatomy.md`` for the method.
"""

from .overlay import anatomy_overlay
from .params import AnatomyParams
from .regions import (
    REGION_CODES,
    REGION_NAMES,
    SectionAnatomy,
    region_base_name,
    region_key,
    swap_left_right,
)
from .sections import SlideAnatomy, auto_regions, find_sections

__all__ = [
    "AnatomyParams",
    "REGION_CODES",
    "REGION_NAMES",
    "SectionAnatomy",
    "SlideAnatomy",
    "anatomy_overlay",
    "auto_regions",
    "find_sections",
    "region_base_name",
    "region_key",
    "swap_left_right",
]
