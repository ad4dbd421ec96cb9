"""Brightfield or fluorescence, from the pixels, whatever the container.

A brightfield image has a light background and a stain that absorbs (signal darker than the
background); a fluorescence image has a dark background and a stain that emits (signal
brighter). The container does not tell: fluorescence composites are often saved as RGB
JPEGs, and a brightfield slide can be a multi-channel TIFF. So the decision is made from a
low-resolution sample of the tissue (non-padding) pixels, on three pieces of evidence:

1. **Background brightness**: the median of the tissue pixels' mean over channels, as a share
   of the data's full range (the dtype's range, or the bit depth the values use: a 12-bit
   camera in a 16-bit file counts to 4095). Brightfield backgrounds sit above ≈ 55 %,
   fluorescence backgrounds below ≈ 35 %.
2. **Which way the signal goes**: bright fluorescence signal is a long tail above a dark
   background (the 99th percentile far further above the median than the 1st is below it);
   absorbing brightfield stain is a tail below a light background.
3. **Colour** (3-channel images): brightfield stains absorb in every RGB channel at once, so
   the channels are strongly correlated over tissue (≥ 0.8 for Nissl, H&E, DAB); an RGB
   fluorescence export holds independent dyes (DAPI, a vessel stain, a tracer), often with one
   dominant channel and near-black others (correlation ≲ 0.5).

Each piece is a score in [-1, 1] (positive: fluorescence), weighted 2 : 1 : 1 (colour only
for 3-channel images); the sign decides, the size is the confidence. An assay refuses an
image only on a detection with confidence ≥ ``REFUSE_CONFIDENCE`` (0.7): a blank image or
pure noise without a tail is no evidence. A user can always override
(``read_image(..., modality=...)``, ``--modality``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Modality", "MODALITIES", "REFUSE_CONFIDENCE", "detect_modality", "check_modality"]

MODALITIES = ("brightfield", "fluorescence")

#: A detected modality this sure (or a declared one) makes an assay refuse the other.
REFUSE_CONFIDENCE = 0.7
#: Largest side of the sample the decision is made on.
_SAMPLE_SIDE = 512


@dataclass(frozen=True)
class Modality:
    """The detected modality of an image.

    Attributes
    ----------
    kind : {"brightfield", "fluorescence"}
    confidence : float
        0.5 (a toss-up) to 1 (every piece of evidence agrees strongly).
    evidence : str
        What was seen, in words, for messages.
    """

    kind: str
    confidence: float
    evidence: str


def check_modality(kind: str | None, source: str = "") -> str | None:
    """Validate a modality given by a user; ``None`` passes (detect).

    Parameters
    ----------
    kind : str or None
        ``"brightfield"`` or ``"fluorescence"``, or an alias (``bf``, ``fl``, ``if``, ...).
    source : str
        Where the value came from, for the message.

    Returns
    -------
    str or None
        The modality's canonical name, or None.

    Raises
    ------
    ParamsError
        When ``kind`` is not a modality.
    """
    if kind is None:
        return None
    k = str(kind).strip().lower()
    aliases = {"bf": "brightfield", "bright-field": "brightfield", "fl": "fluorescence",
               "fluorescent": "fluorescence", "if": "fluorescence"}
    k = aliases.get(k, k)
    if k not in MODALITIES:
        from ..errors import ParamsError

        raise ParamsError(f"{source + ': ' if source else ''}modality must be one of "
                          f"{', '.join(MODALITIES)}, not {kind!r}")
    return k


def _sample(pixels_or_image: Any) -> np.ndarray:
    """(Y, X, C) float sample of at most ``_SAMPLE_SIDE`` px a side (Z max-projected)."""
    from .image import Image

    if isinstance(pixels_or_image, Image):
        img = pixels_or_image
        h, w = img.shape_yx
        s = max(1, int(np.ceil(max(h, w) / _SAMPLE_SIDE)))
        data = img.data
        if not isinstance(data, np.ndarray) and s > 1:
            arr = _windows(data, img.axes, h, w)
        elif img.axes.startswith("Z"):
            arr = np.asarray(data[:, ::s, ::s]).max(axis=0)
        else:
            arr = np.asarray(data[::s, ::s])
        dtype = img.dtype
    else:
        arr = np.asarray(pixels_or_image)
        dtype = arr.dtype
        if arr.ndim not in (2, 3):
            raise ValueError(f"pixels must be (Y, X) or (Y, X, C), not shape {arr.shape}")
        s = max(1, int(np.ceil(max(arr.shape[:2]) / _SAMPLE_SIDE)))
        arr = arr[::s, ::s]
    if arr.ndim == 2:
        arr = arr[..., None]
    return arr, np.dtype(dtype)


def _windows(data: Any, axes: str, h: int, w: int, n: int = 12, side: int = 40) -> np.ndarray:
    """Return a mosaic of ``n × n`` windows of ``side`` px spread over a lazy (on-disk) image.

    A strided read of a chunked array decodes every chunk; ``n²`` small windows decode at
    most ``n²`` chunks, enough pixels (≈ 230,000) for the decision.
    """
    ys = np.linspace(0, max(0, h - side), n).astype(int)
    xs = np.linspace(0, max(0, w - side), n).astype(int)
    rows = []
    for y in ys:
        row = []
        for x in xs:
            if axes.startswith("Z"):
                win = np.asarray(data[:, y:y + side, x:x + side]).max(axis=0)
            else:
                win = np.asarray(data[y:y + side, x:x + side])
            row.append(win)
        rows.append(np.concatenate(row, axis=1))
    return np.concatenate(rows, axis=0)


def _full_range(values: np.ndarray, dtype: np.dtype) -> tuple[float, float]:
    """(low, high) of the data's range: the dtype's, or the bit depth the values use."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        vmax = float(values.max()) if values.size else 0.0
        if dtype.itemsize > 1:
            # a 10/12/14-bit camera in a 16-bit file counts to 2^b - 1
            for b in (8, 10, 12, 14, 16):
                if vmax <= 2 ** b - 1:
                    return float(min(info.min, 0)), float(2 ** b - 1)
        return float(min(info.min, 0)), float(info.max)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    hi = float(np.percentile(finite, 99.9))
    lo = min(0.0, float(finite.min()))
    if hi <= 1.0 + 1e-6 and lo >= 0:
        return 0.0, 1.0  # float images scaled to [0, 1]
    return float("nan"), float("nan")  # float data of unknown range: brightness says nothing


def detect_modality(pixels_or_image: Any, padding: np.ndarray | None = None) -> Modality:
    """Decide whether an image is brightfield or fluorescence from its pixels.

    Parameters
    ----------
    pixels_or_image : Image or numpy.ndarray
        An :class:`~histoquant.io.image.Image`, or (Y, X) / (Y, X, C) pixels.
    padding : numpy.ndarray of bool, optional
        The padding of ``pixels`` (same Y, X shape) when the caller has found it already;
        found here otherwise.

    Returns
    -------
    Modality
        ``kind``, ``confidence`` and ``evidence`` (the figures behind the decision).
    """
    from ..segment.padding import find_padding

    arr, dtype = _sample(pixels_or_image)
    if padding is not None and not hasattr(pixels_or_image, "axes"):
        full = np.asarray(pixels_or_image)
        s = max(1, int(np.ceil(max(full.shape[:2]) / _SAMPLE_SIDE)))
        pad = np.asarray(padding, bool)[::s, ::s]
    else:
        pad = find_padding(arr)
    tissue = ~pad
    if tissue.sum() < 16:
        tissue = np.ones_like(pad)
    vals = arr[tissue].astype(np.float64)  # (N, C)
    lo, hi = _full_range(vals, dtype)
    known_range = np.isfinite(hi)
    if not known_range:
        lo = float(np.min(vals))
        hi = float(np.percentile(vals, 99.9))
    norm = (vals - lo) / max(hi - lo, 1e-12)
    grey = norm.mean(axis=1)
    med = float(np.median(grey))
    p1, p99 = (float(x) for x in np.percentile(grey, [1, 99]))
    if p99 <= p1:
        # one value (a blank or saturated image): nothing to tell; the assays' emptiness
        # checks speak
        return Modality("fluorescence" if med < 0.45 else "brightfield", 0.5,
                        "the tissue pixels hold one value: no evidence either way")
    # 1. background brightness: 0.45 is the boundary, ±0.3 around it saturates the score
    s_bright = float(np.clip((0.45 - med) / 0.3, -1, 1)) if known_range else 0.0
    # 2. which way the tail goes
    span = max(p99 - p1, 1e-12)
    asym = ((p99 - med) - (med - p1)) / span
    s_tail = float(np.clip(asym / 0.5, -1, 1))
    scores = [(2.0 if known_range else 0.0, s_bright), (1.0, s_tail)]
    parts = [f"background (median of tissue pixels) at {100 * med:.0f} % of the data range"
             if known_range else "float data of unknown range (brightness not used)",
             f"signal {'brighter' if asym > 0 else 'darker'} than the background "
             f"(tail asymmetry {asym:+.2f})"]
    if norm.shape[1] == 3:
        corr = _mean_correlation(norm)
        s_col = float(np.clip((0.65 - corr) / 0.3, -1, 1))
        scores.append((1.0, s_col))
        parts.append(f"RGB channels {'strongly' if corr >= 0.65 else 'weakly'} correlated "
                     f"({corr:.2f})")
    total = sum(w * s for w, s in scores) / sum(w for w, _ in scores)
    kind = "fluorescence" if total > 0 else "brightfield"
    confidence = float(0.5 + 0.5 * min(1.0, abs(total)))
    if pad.any():
        parts.append(f"{100 * pad.mean():.0f} % padding left out")
    evidence = "; ".join(parts)
    return Modality(kind, confidence, evidence)


def _mean_correlation(norm: np.ndarray) -> float:
    """Mean pairwise correlation of the channels (a constant channel counts as 0)."""
    c = []
    for i in range(3):
        for j in range(i + 1, 3):
            a, b = norm[:, i], norm[:, j]
            if a.std() == 0 or b.std() == 0:
                c.append(0.0)
            else:
                c.append(float(np.corrcoef(a, b)[0, 1]))
    return float(np.mean(c))
