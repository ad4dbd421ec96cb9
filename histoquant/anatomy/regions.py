"""Named regions of found sections: masks at any window of the full image, and polygons.

The anatomy's truth is one small label map per section at the working resolution. A
full-resolution mask is that map repeated ``factor`` times along each axis (nearest
neighbour), made only for the window asked for, so a 20k × 20k section never needs a
full-size array unless the caller asks for one. Polygons are the outlines of the same maps
scaled to full-resolution pixel coordinates (pixel centres on integers, like
:mod:`histoquant.rois`).

Region names and codes
----------------------
=====================  ====  ===============================================================
name                   code  what
=====================  ====  ===============================================================
white_matter           1     tissue that is neither grey matter nor the canal
ventral_horn_left      2     grey matter ventral to the line through the canal perpendicular
                             to the dorsal–ventral axis, on the animal's left of the midline
ventral_horn_right     3     … on the animal's right
dorsal_horn_left       4     grey matter dorsal to that line, animal's left
dorsal_horn_right      5     … animal's right
central_canal          6     canal lumen (or a 35 µm-radius disc where it was only estimated)
grey_matter            2–5   the whole butterfly (without the canal)
tissue                 1–6   the section, canal included; meninges, roots, debris excluded
=====================  ====  ===============================================================

The four horns split the grey matter exactly: every grey pixel is in one of them.

Left and right are the animal's. Convention (``mirrored=False``): the image shows the
section's rostral face, as seen looking from the head toward the tail, so with dorsal up
the animal's left is on the image's right. A section mounted face-down shows its caudal
face: give ``mirrored=True`` and the sides swap.

With several sections in one image, each region name is prefixed with its section number:
``s1_ventral_horn_left``, ``s2_ventral_horn_left``, … (sections numbered top-to-bottom,
left-to-right); a single section keeps the plain names. :func:`region_base_name` undoes the
prefix, and :func:`swap_left_right` renames regions when the mirrored setting was wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..rois import Polygon, Region, mask_to_polygons

__all__ = ["REGION_CODES", "REGION_NAMES", "SectionAnatomy", "region_base_name", "region_key",
           "swap_left_right", "Window"]

REGION_CODES: dict[str, tuple[int, ...]] = {
    "tissue": (1, 2, 3, 4, 5, 6),
    "grey_matter": (2, 3, 4, 5),
    "white_matter": (1,),
    "central_canal": (6,),
    "ventral_horn_left": (2,),
    "ventral_horn_right": (3,),
    "dorsal_horn_left": (4,),
    "dorsal_horn_right": (5,),
}
REGION_NAMES = tuple(REGION_CODES)

Window = tuple[tuple[int, int], tuple[int, int]]
"""((row_start, row_stop), (col_start, col_stop)) in full-resolution pixels."""


def region_key(name: str, section: int, n_sections: int) -> str:
    """Return the name of a region in tables: plain for a lone section, ``s<k>_<name>`` otherwise.

    Parameters
    ----------
    name : str
        The region's name.
    section : int
        The section's number (1-based).
    n_sections : int
        How many sections the image holds.

    Returns
    -------
    str
        The table name.
    """
    return name if n_sections == 1 else f"s{section}_{name}"


#: The section prefix :func:`region_key` puts before a region's name.
_SECTION_PREFIX = re.compile(r"^s\d+_")


def region_base_name(region: Region | str) -> str:
    """Return the anatomy's name of a region, without the section prefix.

    ``s2_ventral_horn_left`` → ``ventral_horn_left``: the inverse of :func:`region_key`, so that
    a region of any section can be matched against :data:`REGION_NAMES`.

    Parameters
    ----------
    region : Region or str
        A region (as :meth:`SectionAnatomy.regions` makes them, or read from a region file), or
        a region's name.

    Returns
    -------
    str
        The ``region`` property when the region has one (the anatomy sets it, and it survives a
        user's renaming of the shape), else the name with a leading ``s<k>_`` removed.
    """
    if isinstance(region, Region):
        name = (region.properties or {}).get("region")
        if name:
            return str(name)
        region = region.name
    return _SECTION_PREFIX.sub("", region)


def swap_left_right(names: Iterable[str]) -> list[str]:
    """Exchange the ``_left`` and ``_right`` endings of region names.

    The fix for a section whose ``mirrored`` setting was wrong (mounted face-down, or not):
    the animal's left and right are then each other's, while every other region is unchanged.
    Only the ending is read, so section prefixes and user-made names (``vh_left``) swap too.

    Parameters
    ----------
    names : iterable of str
        Region names, e.g. ``["grey_matter", "s1_ventral_horn_left"]``.

    Returns
    -------
    list of str
        The names in the same order, ``*_left`` renamed ``*_right`` and ``*_right`` renamed
        ``*_left``; other names as given. Swapping twice gives the names back.
    """
    out = []
    for name in names:
        if name.endswith("_left"):
            out.append(name[: -len("_left")] + "_right")
        elif name.endswith("_right"):
            out.append(name[: -len("_right")] + "_left")
        else:
            out.append(name)
    return out


@dataclass
class SectionAnatomy:
    """Anatomy of one cord cross-section.

    Attributes
    ----------
    index : int
        Section number (1-based, top-to-bottom, left-to-right).
    codes : ndarray of uint8
        Working-resolution label map of the section's bounding box (codes in the module doc).
    offset : tuple of int
        Working-grid (row, col) of ``codes[0, 0]``.
    factor : int
        Full-resolution pixels per working pixel.
    full_shape : tuple of int
        Full-resolution image (height, width).
    canal_rc : tuple of float
        Canal centre in full-resolution pixels (row, col).
    canal_found : bool
        A lumen was seen (else the position is the grey commissure's centre).
    ventral : tuple of float
        Unit vector (row, col) pointing ventral.
    angle_deg : float
        Section rotation: 0 = ventral down, positive = turned counter-clockwise on screen.
    orientation_confidence : float
        0.5 (undecided) to 1 (certain, or given by the user).
    orientation_source : str
        ``"auto"``, ``"hint"`` (side given, axis refined) or ``"user"`` (angle given).
    mirrored : bool
        Mounted face-down (left and right swapped).
    quality : float
        Quality score in [0, 1] (see :mod:`.quality`).
    flags : list of str
        Problems found (empty when none).
    metrics : dict
        Areas, fractions, symmetry and cue values for the summary table.
    """

    index: int
    codes: np.ndarray
    offset: tuple[int, int]
    factor: int
    full_shape: tuple[int, int]
    canal_rc: tuple[float, float]
    canal_found: bool
    ventral: tuple[float, float]
    angle_deg: float
    orientation_confidence: float
    orientation_source: str
    mirrored: bool
    quality: float = 0.0
    flags: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """``"ok"``, or ``"flagged"`` when any flag is set."""
        return "flagged" if self.flags else "ok"

    @property
    def ventral_direction(self) -> str:
        """Nearest of down/right/up/left to where the ventral side points on screen."""
        a = (self.angle_deg + 45.0) % 360.0
        # % 4: a float modulo of a tiny negative number rounds up to 360.0 itself
        return ("down", "right", "up", "left")[int(a // 90.0) % 4]

    def working_mask(self, name: str) -> np.ndarray:
        """Return the mask of a region on the section's working-resolution bounding box.

        Parameters
        ----------
        name : str
            A region name, or a name that groups several (e.g. ``"grey_matter"``).

        Returns
        -------
        numpy.ndarray
            Boolean mask of the shape of :attr:`codes`.
        """
        return np.isin(self.codes, _codes(name))

    def mask(self, name: str, window: Window | None = None) -> np.ndarray:
        """Return the full-resolution boolean mask of a region, for the whole image or a window.

        Parameters
        ----------
        name : str
            A region name, or a name that groups several (e.g. ``"grey_matter"``).
        window : Window, optional
            ``((row_start, row_stop), (col_start, col_stop))``; the whole image when not given.

        Returns
        -------
        numpy.ndarray
            Boolean mask of the image (or window).
        """
        return _upsample(self.working_mask(name), self.offset, self.factor, self.full_shape,
                         window)

    def label_window(self, window: Window | None = None) -> np.ndarray:
        """Return full-resolution region codes (0 outside the section) for the image or a window.

        Parameters
        ----------
        window : Window, optional
            ``((row_start, row_stop), (col_start, col_stop))``; the whole image when not given.

        Returns
        -------
        numpy.ndarray
            Region codes (see :data:`REGION_CODES`) of the image (or window).
        """
        return _upsample(self.codes, self.offset, self.factor, self.full_shape, window)

    def regions(self, names: tuple[str, ...] = REGION_NAMES, n_sections: int = 1
                ) -> list[Region]:
        """Return the section's regions as polygons in full-resolution pixel coordinates.

        Parameters
        ----------
        names : tuple of str
            The region names to include (a region without pixels is left out).
        n_sections : int
            How many sections the image holds, for the regions' names (:func:`region_key`).

        Returns
        -------
        list of Region
            One region per name present.
        """
        out = []
        f = self.factor
        off = np.asarray(self.offset, dtype=float)
        for name in names:
            m = self.working_mask(name)
            if not m.any():
                continue
            polys = [Polygon((p.exterior + off) * f + (f - 1) / 2.0,
                             [(h + off) * f + (f - 1) / 2.0 for h in p.holes])
                     for p in mask_to_polygons(m)]
            out.append(Region(region_key(name, self.index, n_sections), polys,
                              properties={"section": self.index, "region": name,
                                          "quality": round(self.quality, 3),
                                          "flags": ";".join(self.flags)}))
        return out


def _codes(name: str) -> tuple[int, ...]:
    from ..errors import RegionError

    if name not in REGION_CODES:
        raise RegionError(f"unknown anatomy region {name!r}; the anatomy finds "
                          f"{', '.join(REGION_NAMES)}")
    return REGION_CODES[name]


def _upsample(work: np.ndarray, offset: tuple[int, int], factor: int,
              full_shape: tuple[int, int], window: Window | None) -> np.ndarray:
    (r0, r1), (c0, c1) = window if window is not None else ((0, full_shape[0]),
                                                           (0, full_shape[1]))
    r0, c0 = max(0, int(r0)), max(0, int(c0))
    r1, c1 = min(full_shape[0], int(r1)), min(full_shape[1], int(c1))
    out = np.zeros((max(0, r1 - r0), max(0, c1 - c0)), dtype=work.dtype)
    if not out.size:
        return out
    # only the working rows/cols the section's box covers
    wr = np.arange(r0, r1) // factor - offset[0]
    wc = np.arange(c0, c1) // factor - offset[1]
    rsel = np.nonzero((wr >= 0) & (wr < work.shape[0]))[0]
    csel = np.nonzero((wc >= 0) & (wc < work.shape[1]))[0]
    if len(rsel) and len(csel):
        out[rsel[0]: rsel[-1] + 1, csel[0]: csel[-1] + 1] = work[np.ix_(wr[rsel], wc[csel])]
    return out
