"""Round cells on a plain background: a generic instance-segmentation phantom.

Non-overlapping discs of random diameter, blurred a little and with noise, either bright on
dark (fluorescence, single channel) or violet on white (brightfield RGB, like a Nissl stain).
The truth is the label image of the discs. It serves engine-level tests and benchmarks
(tiling, stitching, speed per megapixel), not the biology of any assay.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..io.image import Image

__all__ = ["make_round_cells"]


def make_round_cells(
    shape: tuple[int, int] = (512, 512),
    *,
    pixel_size_um: float = 0.5,
    diameter_um: tuple[float, float] = (15.0, 30.0),
    n_cells: int = 40,
    rgb: bool = False,
    noise: float = 0.03,
    seed: int = 0,
) -> tuple[Image, np.ndarray]:
    """Make a phantom of round cells with its exact label image.

    Parameters
    ----------
    shape : (int, int)
        Image height and width in pixels.
    pixel_size_um : float
        Pixel edge in µm.
    diameter_um : (float, float)
        Range of cell diameters in µm (uniform).
    n_cells : int
        How many cells to try to place; fewer are placed when the image is too crowded
        (cells never touch: at least 2 px of background between them).
    rgb : bool
        False: one channel, bright cells on a dark background (float32 in [0, 1]).
        True: brightfield RGB uint8, violet cells on a white background.
    noise : float
        Standard deviation of the Gaussian noise, as a fraction of the full range.
    seed : int
        Random seed.

    Returns
    -------
    image : Image
        ``YX`` float32 or ``YXC`` uint8 RGB, with ``pixel_size_um`` set.
    labels : ndarray of int32
        The cells, 1..N, 0 = background.
    """
    rng = np.random.default_rng(seed)
    h, w = (int(s) for s in shape)
    labels = np.zeros((h, w), np.int32)
    yy, xx = np.mgrid[0:h, 0:w]
    placed: list[tuple[float, float, float]] = []
    for _ in range(n_cells * 20):
        if len(placed) == n_cells:
            break
        r = rng.uniform(*diameter_um) / pixel_size_um / 2.0
        cy, cx = rng.uniform(r, h - r), rng.uniform(r, w - r)
        if any(np.hypot(cy - py, cx - px) < r + pr + 2 for py, px, pr in placed):
            continue
        placed.append((cy, cx, r))
        y0, y1 = int(max(cy - r - 1, 0)), int(min(cy + r + 2, h))
        x0, x1 = int(max(cx - r - 1, 0)), int(min(cx + r + 2, w))
        disc = (yy[y0:y1, x0:x1] - cy) ** 2 + (xx[y0:y1, x0:x1] - cx) ** 2 <= r * r
        labels[y0:y1, x0:x1][disc] = len(placed)
    # soft edges, as an optical system gives, then noise
    signal = ndi.gaussian_filter((labels > 0).astype(np.float32), 0.7)
    signal *= rng.uniform(0.6, 1.0, len(placed) + 1)[ndi.grey_dilation(labels, size=3)]
    signal += rng.normal(0.0, noise, signal.shape).astype(np.float32)
    if not rgb:
        data = np.clip(0.1 + 0.8 * signal, 0.0, 1.0).astype(np.float32)
        return Image(data, "YX", pixel_size_um=pixel_size_um), labels
    # violet stain absorbs red and green more than blue
    absorbance = np.clip(signal, 0.0, None)[..., None] * np.array([0.9, 1.3, 0.4], np.float32)
    data = np.clip(255.0 * np.exp(-absorbance) * 0.97, 0, 255).astype(np.uint8)
    return Image(data, "YXC", pixel_size_um=pixel_size_um, rgb=True), labels
