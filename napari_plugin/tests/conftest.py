"""Fixtures for the plugin tests: small test images, captured notifications, a viewer helper.

GUI tests use napari's ``make_napari_viewer`` fixture and need a display: run them under
``xvfb-run -a``. Tests that need no viewer run anywhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from histoquant.io import Image, write_ome_tiff

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def notes(monkeypatch):
    """Every notification the plugin shows, as (level, message), instead of napari's popups."""
    from histoquant_napari import _notify

    seen: list[tuple[str, str]] = []
    monkeypatch.setattr(_notify, "error", lambda m: seen.append(("error", m)))
    monkeypatch.setattr(_notify, "warning", lambda m: seen.append(("warning", m)))
    monkeypatch.setattr(_notify, "info", lambda m: seen.append(("info", m)))
    return seen


@pytest.fixture
def rgb_file(tmp_path) -> Path:
    """A 160×200 brightfield-like RGB OME-TIFF at 0.5 µm/px with a few dark disks."""
    from skimage.draw import disk

    rgb = np.full((160, 200, 3), 235, np.uint8)
    for r, c, rad in ((40, 50, 10), (110, 60, 12), (80, 150, 9), (130, 160, 8)):
        rr, cc = disk((r, c), rad, shape=rgb.shape[:2])
        rgb[rr, cc] = (120, 60, 150)
    path = tmp_path / "nissl_small.ome.tif"
    write_ome_tiff(Image(rgb, axes="YXC", pixel_size_um=0.5, rgb=True), path)
    return path


@pytest.fixture
def fluo_file(tmp_path) -> Path:
    """A 2-channel (DAPI, GFP) uint16 OME-TIFF at 0.65 µm/px, 120×140 pixels."""
    rng = np.random.default_rng(0)
    data = rng.integers(90, 110, (120, 140, 2)).astype(np.uint16)
    data[30:50, 40:60, 1] += 1000
    data[70:90, 90:110, 0] += 800
    path = tmp_path / "gfp_small.ome.tif"
    write_ome_tiff(Image(data, axes="YXC", pixel_size_um=0.65,
                         channel_names=("DAPI", "GFP")), path)
    return path
