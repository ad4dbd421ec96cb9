"""QC overlay of the anatomy: outlines of every region, the canal, the ventral arrow."""

from __future__ import annotations

import numpy as np

from ..io.image import Image
from ..qc import add_caption, draw_outlines
from .sections import SlideAnatomy, read_display

__all__ = ["anatomy_overlay", "REGION_COLOURS"]

# Okabe–Ito colours per region code (1 white matter ... 6 canal).
REGION_COLOURS = {
    1: (86, 180, 233),    # white matter: sky blue
    2: (213, 94, 0),      # ventral horn left: vermillion
    3: (230, 159, 0),     # ventral horn right: orange
    4: (0, 158, 115),     # dorsal horn left: bluish green
    5: (0, 114, 178),     # dorsal horn right: blue
    6: (204, 121, 167),   # canal: reddish purple
}


def _codes_on_grid(slide: SlideAnatomy, shape: tuple[int, int], f: int) -> np.ndarray:
    """Region code of each display pixel (sampled at its centre)."""
    out = np.zeros(shape, np.uint8)
    rows = (np.arange(shape[0]) * f + (f - 1) // 2) // slide.factor
    cols = (np.arange(shape[1]) * f + (f - 1) // 2) // slide.factor
    for s in slide.sections:
        wr = rows - s.offset[0]
        wc = cols - s.offset[1]
        rsel = np.nonzero((wr >= 0) & (wr < s.codes.shape[0]))[0]
        csel = np.nonzero((wc >= 0) & (wc < s.codes.shape[1]))[0]
        if not len(rsel) or not len(csel):
            continue
        sub = s.codes[np.ix_(wr[rsel], wc[csel])]
        view = out[rsel[0]: rsel[-1] + 1, csel[0]: csel[-1] + 1]
        view[sub > 0] = sub[sub > 0]
    return out


def anatomy_overlay(image: Image, slide: SlideAnatomy, max_size_px: int = 1600) -> np.ndarray:
    """Return the RGB uint8 QC image: region outlines, canal, ventral arrow, caption per section.

    Outlines: white matter/tissue sky blue, ventral horns vermillion (left) and orange
    (right), dorsal horns bluish green (left) and blue (right), canal reddish purple; the
    arrow runs from the canal toward ventral. Flagged sections are named in red.

    Parameters
    ----------
    image : Image
        The image the anatomy was found on.
    slide : SlideAnatomy
        Its sections and regions (:func:`find_sections`).
    max_size_px : int
        Longest side of the picture in pixels.

    Returns
    -------
    numpy.ndarray
        (Y, X, 3) uint8 picture.
    """
    from PIL import Image as PILImage
    from PIL import ImageDraw, ImageFont

    rgb, f = read_display(image, max_size_px)
    up = 1
    if max(rgb.shape[:2]) < 700:
        up = max(1, min(4, 900 // max(rgb.shape[:2])))
        rgb = np.repeat(np.repeat(rgb, up, axis=0), up, axis=1)
    scale = f / up  # full-resolution pixels per overlay pixel
    codes = _codes_on_grid(slide, rgb.shape[:2], 1) if scale == 1 else None
    if codes is None:
        # sample at overlay pixel centres in full-resolution coordinates
        h, w = rgb.shape[:2]
        codes = np.zeros((h, w), np.uint8)
        rows = np.floor((np.arange(h) + 0.5) * scale).astype(int) // slide.factor
        cols = np.floor((np.arange(w) + 0.5) * scale).astype(int) // slide.factor
        for s in slide.sections:
            wr, wc = rows - s.offset[0], cols - s.offset[1]
            rsel = np.nonzero((wr >= 0) & (wr < s.codes.shape[0]))[0]
            csel = np.nonzero((wc >= 0) & (wc < s.codes.shape[1]))[0]
            if len(rsel) and len(csel):
                sub = s.codes[np.ix_(wr[rsel], wc[csel])]
                view = codes[rsel[0]: rsel[-1] + 1, csel[0]: csel[-1] + 1]
                view[sub > 0] = sub[sub > 0]
    rgb = np.ascontiguousarray(rgb)
    thick = max(1, round(max(rgb.shape[:2]) / 700))
    draw_outlines(rgb, codes, REGION_COLOURS, thickness_px=thick)
    tissue = (codes > 0).astype(np.uint8)
    draw_outlines(rgb, tissue, (40, 40, 40), thickness_px=thick)
    canvas = PILImage.fromarray(rgb)
    draw = ImageDraw.Draw(canvas)
    size = int(np.clip(max(rgb.shape[:2]) / 40, 12, 40))
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    for s in slide.sections:
        cy, cx = (s.canal_rc[0] + 0.5) / scale - 0.5, (s.canal_rc[1] + 0.5) / scale - 0.5
        length = 0.25 * max(s.codes.shape) * slide.factor / scale
        ey, ex = cy + s.ventral[0] * length, cx + s.ventral[1] * length
        draw.line([(cx, cy), (ex, ey)], fill=(255, 0, 255), width=max(2, thick + 1))
        head = 0.25 * length
        for turn in (150.0, -150.0):
            a = np.deg2rad(turn)
            dy = s.ventral[0] * np.cos(a) - s.ventral[1] * np.sin(a)
            dx = s.ventral[0] * np.sin(a) + s.ventral[1] * np.cos(a)
            draw.line([(ex, ey), (ex + dx * head, ey + dy * head)], fill=(255, 0, 255),
                      width=max(2, thick + 1))
        r = max(3, thick + 2)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=(255, 0, 255), width=2)
        ty = s.offset[0] * slide.factor / scale
        tx = s.offset[1] * slide.factor / scale
        draw.text((tx, ty), f"s{s.index}", fill=(200, 0, 0) if s.flags else (0, 0, 0),
                  font=font)
    out = np.asarray(canvas)
    lines = []
    for s in slide.sections:
        m = s.metrics
        frac = m.get("grey_matter_fraction", float("nan"))
        lines.append(
            f"s{s.index}: quality {s.quality:.2f}, ventral {s.ventral_direction} "
            f"({s.angle_deg:+.0f} deg, {s.orientation_source}, "
            f"conf {s.orientation_confidence:.2f}), grey {100 * frac:.0f} %, "
            f"canal {'seen' if s.canal_found else 'estimated'}")
        if s.flags:
            lines.append(f"    FLAGS: {', '.join(s.flags)}")
    if not slide.sections:
        lines.append(f"no section: {slide.status}")
        lines.extend(f"    {w}" for w in slide.warnings)
    lines.append("VH-L vermillion, VH-R orange, DH-L green, DH-R blue, canal purple")
    lines.append("arrow: canal to ventral; left/right = the animal's"
                 + (" (mirrored)" if any(s.mirrored for s in slide.sections) else ""))
    return add_caption(out, lines)
