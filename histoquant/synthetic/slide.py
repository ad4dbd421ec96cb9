"""Phantom slides: elliptical tissue sections holding dark round cells, any size, exact truth.

The phantom is drawn analytically, so any window of it can be rendered at any downsampling
without drawing the rest: a 40,000 × 40,000 pixel pyramidal OME-TIFF is written one tile at a
time (:meth:`PhantomSlide.write_ome_tiff`) in a few hundred MB of memory. Brightfield look:
white slide, pink tissue, purple cells (a Nissl-like stain, but no more than that: it exists to
test counting, tiling and bookkeeping, not a stain model).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["PhantomSection", "PhantomSlide", "phantom_slide", "BACKGROUND_RGB", "TISSUE_RGB",
           "CELL_RGB"]

BACKGROUND_RGB = (244, 244, 246)
TISSUE_RGB = (214, 178, 208)
CELL_RGB = (88, 40, 122)


@dataclass
class PhantomSection:
    """One elliptical section: centre and semi-axes in full-resolution pixels, and its cells."""

    centre_yx: tuple[float, float]
    semi_axes_yx: tuple[float, float]
    cells_yx: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))

    def contains(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Return whether pixel centres (broadcast arrays) lie inside the ellipse.

        Parameters
        ----------
        rows, cols : numpy.ndarray
            Pixel coordinates, broadcast together.

        Returns
        -------
        numpy.ndarray
            Boolean, of the broadcast shape.
        """
        (cy, cx), (ay, ax) = self.centre_yx, self.semi_axes_yx
        return ((rows - cy) / ay) ** 2 + ((cols - cx) / ax) ** 2 <= 1.0

    @property
    def area_px(self) -> float:
        """Area of the ellipse in full-resolution pixels (analytic)."""
        return float(np.pi * self.semi_axes_yx[0] * self.semi_axes_yx[1])


@dataclass
class PhantomSlide:
    """A slide of sections with known cells.

    Attributes
    ----------
    shape : tuple of int
        Height and width in pixels at full resolution.
    pixel_size_um : float
        Full-resolution pixel size.
    sections : list of PhantomSection
        In reading order (section ``i`` is numbered ``i + 1``).
    cell_radius_px : float
        Radius of every cell.
    """

    shape: tuple[int, int]
    pixel_size_um: float
    sections: list[PhantomSection]
    cell_radius_px: float

    @property
    def cells(self) -> pd.DataFrame:
        """Truth: one row per cell with ``section`` (1-based), ``row``, ``col`` in pixels."""
        rows = [(i + 1, float(y), float(x)) for i, s in enumerate(self.sections)
                for y, x in s.cells_yx]
        return pd.DataFrame(rows, columns=["section", "row", "col"])

    def counts(self) -> list[int]:
        """Return the number of cells in each section.

        Returns
        -------
        list of int
            One count per section, in section order.
        """
        return [len(s.cells_yx) for s in self.sections]

    def render(self, r0: int = 0, r1: int | None = None, c0: int = 0, c1: int | None = None,
               step: int = 1) -> np.ndarray:
        """Return RGB uint8 pixels of rows ``r0:r1:step``, cols ``c0:c1:step`` (nearest sampling).

        Parameters
        ----------
        r0, r1 : int
            First and stop row (``r1`` None: the last row).
        c0, c1 : int
            First and stop column (``c1`` None: the last column).
        step : int
            Sampling step in pixels.

        Returns
        -------
        numpy.ndarray
            (Y, X, 3) uint8 pixels.
        """
        r1 = self.shape[0] if r1 is None else r1
        c1 = self.shape[1] if c1 is None else c1
        rows = np.arange(r0, r1, step, dtype=np.float64)
        cols = np.arange(c0, c1, step, dtype=np.float64)
        out = np.empty((len(rows), len(cols), 3), dtype=np.uint8)
        out[:] = BACKGROUND_RGB
        rr, cc = rows[:, None], cols[None, :]
        rad = self.cell_radius_px
        for s in self.sections:
            (cy, cx), (ay, ax) = s.centre_yx, s.semi_axes_yx
            if cy + ay < r0 or cy - ay >= r1 or cx + ax < c0 or cx - ax >= c1:
                continue
            out[s.contains(rr, cc)] = TISSUE_RGB
            cells = s.cells_yx
            if not len(cells):
                continue
            near = ((cells[:, 0] + rad >= r0) & (cells[:, 0] - rad < r1)
                    & (cells[:, 1] + rad >= c0) & (cells[:, 1] - rad < c1))
            for y, x in cells[near]:
                i0 = max(0, int(np.searchsorted(rows, y - rad)))
                i1 = int(np.searchsorted(rows, y + rad, side="right"))
                j0 = max(0, int(np.searchsorted(cols, x - rad)))
                j1 = int(np.searchsorted(cols, x + rad, side="right"))
                if i1 <= i0 or j1 <= j0:
                    continue
                disc = ((rows[i0:i1, None] - y) ** 2 + (cols[None, j0:j1] - x) ** 2) <= rad**2
                out[i0:i1, j0:j1][disc] = CELL_RGB
        return out

    def write_ome_tiff(self, path: str | Path, *, tile: int = 512, levels: int = 1,
                       compression: str | None = "zlib") -> Path:
        """Write the slide as a tiled (pyramidal when ``levels > 1``) OME-TIFF, tile by tile.

        Memory use is one tile, whatever the slide size. Level ``k`` is the slide sampled every
        ``2**k`` pixels.

        Parameters
        ----------
        path : str or pathlib.Path
            The file to write.
        tile : int
            Tile side in pixels.
        levels : int
            Number of pyramid levels.
        compression : str or None
            The TIFF compression (tifffile's name); None for none.

        Returns
        -------
        pathlib.Path
            ``path``.
        """
        import tifffile

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)

        def tiles(step: int) -> Iterator[np.ndarray]:
            h = -(-self.shape[0] // step)
            w = -(-self.shape[1] // step)
            for a in range(0, h, tile):
                for b in range(0, w, tile):
                    block = self.render(a * step, min(self.shape[0], (a + tile) * step),
                                        b * step, min(self.shape[1], (b + tile) * step), step)
                    if block.shape[:2] != (tile, tile):  # edge tiles are padded to full size
                        full = np.empty((tile, tile, 3), np.uint8)
                        full[:] = BACKGROUND_RGB
                        full[:block.shape[0], :block.shape[1]] = block
                        block = full
                    yield block

        px = self.pixel_size_um
        meta = {"axes": "YXS", "PhysicalSizeX": px, "PhysicalSizeXUnit": "µm",
                "PhysicalSizeY": px, "PhysicalSizeYUnit": "µm"}
        tmp = path.with_name(f".{path.name}.part")
        big = self.shape[0] * self.shape[1] * 3 > 2**31
        with tifffile.TiffWriter(tmp, bigtiff=big or levels > 1, ome=True) as tw:
            tw.write(tiles(1), shape=(*self.shape, 3), dtype=np.uint8, tile=(tile, tile),
                     photometric="rgb", compression=compression, metadata=meta,
                     subifds=levels - 1 if levels > 1 else None)
            for k in range(1, levels):
                step = 2**k
                shape = (-(-self.shape[0] // step), -(-self.shape[1] // step), 3)
                tw.write(tiles(step), shape=shape, dtype=np.uint8, tile=(tile, tile),
                         photometric="rgb", compression=compression, subfiletype=1)
        tmp.replace(path)
        return path


def phantom_slide(
    shape: tuple[int, int],
    sections_yx: list[tuple[float, float, float, float]],
    n_cells: list[int],
    *,
    pixel_size_um: float = 2.0,
    cell_radius_um: float = 8.0,
    seed: int = 0,
) -> PhantomSlide:
    """Return a slide with elliptical sections and randomly placed, non-touching cells.

    Parameters
    ----------
    shape : tuple of int
        Slide height and width in pixels.
    sections_yx : list of (cy, cx, ay, ax)
        Centre and semi-axes of each section, in pixels, in reading order.
    n_cells : list of int
        Cells to place in each section.
    pixel_size_um : float
        Pixel size.
    cell_radius_um : float
        Cell radius.
    seed : int
        Random seed.

    Returns
    -------
    PhantomSlide
        Cells lie at least one diameter inside their section's edge and at least 1.5 diameters
        apart (centre to centre), so each is one separate dark disc.
    """
    rng = np.random.default_rng(seed)
    rad = cell_radius_um / pixel_size_um
    sections = []
    for (cy, cx, ay, ax), n in zip(sections_yx, n_cells):
        placed: list[tuple[float, float]] = []
        tries = 0
        while len(placed) < n:
            tries += 1
            if tries > 200 * max(n, 1):
                raise ValueError(f"cannot place {n} cells in a section of semi-axes "
                                 f"{ay}×{ax} px; make it larger or the cells fewer")
            # uniform in the ellipse shrunk by one diameter so cells stay inside the tissue
            t, u = rng.uniform(0, 2 * np.pi), np.sqrt(rng.uniform(0, 1))
            y = cy + (ay - 2 * rad) * u * np.sin(t)
            x = cx + (ax - 2 * rad) * u * np.cos(t)
            if placed:
                d = np.hypot(*(np.asarray(placed) - (y, x)).T)
                if d.min() < 3 * rad:
                    continue
            placed.append((y, x))
        sections.append(PhantomSection((cy, cx), (ay, ax), np.asarray(placed).reshape(-1, 2)))
    return PhantomSlide(tuple(shape), pixel_size_um, sections, rad)
