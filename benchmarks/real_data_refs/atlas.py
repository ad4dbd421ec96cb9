"""Cord and grey-matter masks from the atlas drawings of ``spinal_cord_fluorescent``.

Each drawing (``atlas/<id>_<level>_atlas.png``) is an RGBA canvas the size of the section's
image: transparent background, opaque strokes. A thick solid stroke (≈ 5 px) is the cord
outline, a thin solid stroke (≈ 3 px) the grey-matter outline, dashed strokes the laminae
and nuclei. The extraction, step by step:

1. **Binarise the strokes.** A pixel is stroke when it is opaque (alpha > 0) and, for a
   drawing without transparency, when it is darker than mid-grey on the white composite.
2. **Drop the dashes.** Dashes are short separate pieces (≤ ≈ 40 px each); solid strokes are
   long connected curves. 8-connected stroke components smaller than ``min_stroke_px``
   (300 px) are dropped. Dashes touching a solid stroke stay with it; they close nothing.
   Straight canvas-edge rules (a component whose bounding box is ≤ 3 px thick, e.g. the
   two full-height lines of 238_L2) are dropped too.
3. **Cord.** The solid strokes' filled interior (``binary_fill_holes``) is everything inside
   the outer (thick) contour. The contour's own pixels are then peeled by half the thick
   stroke's width (2 px), so the cord edge sits on the centre of the drawn line.
4. **Grey matter.** The interior of the cord minus the solid strokes splits into regions
   (4-connected). The white matter regions lie along the cord outline; grey-matter regions
   are walled by the thin line and touch the outline at most at the tips of the dorsal
   horns, where the drawing lets the two lines meet. A region is grey when less than
   ``max_outline_contact`` (10 %) of its border pixels lie within 4 px of the cord's outer
   edge. The largest such region is the butterfly (others, such as the strip inside a
   ventral median fissure drawn as two solid lines, are dropped); its holes (the central
   canal and solid-drawn nuclei inside the butterfly) are filled, and it is grown by 1 px
   into the thin stroke (half its width) so the grey edge too is on the line's centre.
5. **Canvas.** The drawing's canvas can differ from the image by a few pixels in width; the
   masks are resized (nearest neighbour) to the image's (rows, columns).

``extract_atlas`` returns the masks and some bookkeeping; ``atlas_qc`` draws them on the
image for checking by eye.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

__all__ = ["AtlasMasks", "extract_atlas", "atlas_qc", "dice"]


@dataclass
class AtlasMasks:
    """Masks extracted from one atlas drawing, on the image's canvas."""

    cord: np.ndarray
    grey: np.ndarray
    strokes: np.ndarray
    canvas_shape: tuple[int, int]
    n_grey_regions: int
    notes: list[str] = field(default_factory=list)


def _stroke_mask(path: Path) -> np.ndarray:
    from PIL import Image

    im = Image.open(path)
    if im.mode in ("RGBA", "LA") or "transparency" in im.info:
        rgba = np.asarray(im.convert("RGBA"))
        alpha = rgba[..., 3]
        if alpha.min() < 255:  # a real transparent background
            return alpha > 0
        grey = rgba[..., :3].mean(axis=-1)
    else:
        grey = np.asarray(im.convert("L"), dtype=float)
    return grey < 128


def _resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if mask.shape == tuple(shape):
        return mask
    from PIL import Image

    im = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(im.resize((shape[1], shape[0]), Image.NEAREST)) > 127


def extract_atlas(path: str | Path, shape: tuple[int, int] | None = None, *,
                  min_stroke_px: int = 300, max_outline_contact: float = 0.10
                  ) -> AtlasMasks:
    """Cord and grey-matter masks of one atlas drawing (see the module doc for the method).

    Parameters
    ----------
    path : str or Path
        The drawing (PNG, transparent background, dark or grey strokes).
    shape : (rows, cols), optional
        The image's shape; the masks are resized to it (nearest neighbour).
    """
    path = Path(path)
    lines = _stroke_mask(path)
    canvas = lines.shape
    notes: list[str] = []
    eight = np.ones((3, 3), bool)
    lab, n = ndi.label(lines, eight)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    keep = sizes >= min_stroke_px
    keep[0] = False
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        if sl is None or not keep[i]:
            continue
        h, w = sl[0].stop - sl[0].start, sl[1].stop - sl[1].start
        if min(h, w) <= 3:
            keep[i] = False
            notes.append(f"dropped a straight rule {h}x{w} px")
    solid = keep[lab]
    filled = ndi.binary_fill_holes(solid)
    # the outer contour: keep only the largest filled piece (the cord)
    pieces, n_pieces = ndi.label(filled)
    if n_pieces > 1:
        big = np.argmax(np.bincount(pieces.ravel())[1:]) + 1
        filled = pieces == big
        notes.append(f"{n_pieces - 1} filled piece(s) beside the cord dropped")
    cord = ndi.binary_erosion(filled, iterations=2)
    # regions between solid strokes inside the cord
    inner = filled & ~solid
    regions, _ = ndi.label(inner)  # 4-connected: a diagonal gap in a stroke is a wall
    outline_band = filled & ~ndi.binary_erosion(filled, iterations=4 + 5)
    grey = np.zeros_like(filled)
    n_grey = 0
    for i, sl in enumerate(ndi.find_objects(regions), start=1):
        if sl is None:
            continue
        pad = tuple(slice(max(0, s.start - 2), s.stop + 2) for s in sl)
        m = regions[pad] == i
        if m.sum() < 50:  # specks between strokes: kept with whatever surrounds them
            continue
        border = ndi.binary_dilation(m, iterations=1) & ~m
        contact = float((border & outline_band[pad]).sum()) / max(1, int(border.sum()))
        if contact < max_outline_contact:
            grey[pad] |= m
            n_grey += 1
    if n_grey > 1:
        # the butterfly is one region; others are slivers walled by two solid strokes (the
        # ventral median fissure drawn as a double line)
        pieces, _ = ndi.label(grey)
        grey = pieces == np.argmax(np.bincount(pieces.ravel())[1:]) + 1
        notes.append(f"{n_grey - 1} small walled region(s) beside the butterfly dropped")
    grey = ndi.binary_fill_holes(grey)
    grey = (ndi.binary_dilation(grey, iterations=1) & filled) | grey
    grey &= cord
    return AtlasMasks(cord=_resize_mask(cord, shape or canvas),
                      grey=_resize_mask(grey, shape or canvas),
                      strokes=_resize_mask(lines, shape or canvas),
                      canvas_shape=canvas, n_grey_regions=n_grey, notes=notes)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient of two boolean masks (NaN when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    s = int(a.sum()) + int(b.sum())
    return float("nan") if s == 0 else 2.0 * float((a & b).sum()) / s


def atlas_qc(rgb: np.ndarray, atlas: AtlasMasks, found: dict[str, np.ndarray] | None = None
             ) -> np.ndarray:
    """The image with the atlas cord (white) and grey matter (yellow) outlines, and the
    assay's tissue (cyan) and grey matter (magenta) outlines when given."""
    out = np.asarray(rgb, dtype=np.uint8)
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=-1)
    out = out.copy()
    # brighten dim fluorescence so the tissue shows
    hi = max(1.0, float(np.percentile(out, 99.5)))
    out = np.clip(out.astype(np.float32) * (200.0 / hi), 0, 255).astype(np.uint8)

    def edge(m: np.ndarray, width: int = 2) -> np.ndarray:
        return m & ~ndi.binary_erosion(m, iterations=width)

    layers = [(atlas.cord, (255, 255, 255)), (atlas.grey, (255, 220, 0))]
    for name, colour in (("tissue", (0, 230, 230)), ("grey_matter", (255, 0, 255))):
        if found is not None and name in found:
            layers.append((found[name], colour))
    for m, colour in layers:
        out[edge(np.asarray(m, bool))] = colour
    return out
