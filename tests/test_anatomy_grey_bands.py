"""Grey matter in fluorescence: thin bands along the outline and an over-large bright class.

Phantoms with exact truth: a round section 1.6 mm across at 10 µm/px.
"""

from __future__ import annotations

import numpy as np

from histoquant.anatomy.grey_matter import _drop_outer_bands, segment_grey_matter

PX = 10.0


def _disk(shape, centre, radius_px):
    rr, cc = np.indices(shape)
    return (rr - centre[0]) ** 2 + (cc - centre[1]) ** 2 <= radius_px**2


def test_band_along_the_outline_is_dropped_horn_tip_kept():
    shape = (220, 220)
    section = _disk(shape, (110, 110), 80)
    core = _disk(shape, (110, 110), 40)
    # a dorsal "horn": 200 µm wide, from the core to 20 µm under the surface
    horn = np.zeros(shape, bool)
    horn[32:80, 100:121] = True
    # a band 60 µm thick hugging the outline over a quarter of it (bright meninges)
    depth_band = section & ~_disk(shape, (110, 110), 74)
    rr, cc = np.indices(shape)
    band = depth_band & (cc > 140) & (rr < 110)
    grey = core | horn | band
    out = _drop_outer_bands(grey, section, PX)
    assert not (out & band & ~horn).any()
    assert (out & horn).sum() >= 0.9 * horn.sum()
    assert (out & core).sum() == core.sum()


def test_butterfly_alone_keeps_its_surface():
    """Grey matter ≥ 80 % of the section: the horns make the outline, nothing is dropped."""
    shape = (200, 200)
    section = _disk(shape, (100, 100), 60)
    grey = section & ~_disk(shape, (100, 100), 8)
    assert np.array_equal(_drop_outer_bands(grey, section, PX), grey)


def test_whole_cord_with_bright_white_matter_is_split_inside_the_section():
    """White matter from 0.3 of grey's level at the surface to 0.8 beside the grey matter
    (median ≈ 0.55, as fluorescent Nissl 290_L6), slide at 0 around: the ring of slide must
    not pull the split into the white matter (the true grey share is 36 %)."""
    shape = (260, 260)
    section = _disk(shape, (130, 130), 100)
    grey = _disk(shape, (130, 130), 60)
    rng = np.random.default_rng(1)
    rr, cc = np.indices(shape)
    r = np.hypot(rr - 130, cc - 130)
    white = 24.0 - (r - 60.0) / 40.0 * 15.0           # 24 at the grey edge, 9 at the surface
    signal = np.where(grey, 30.0, np.where(section, white, 0.0))
    signal = (signal + rng.normal(0, 1.5, shape)).astype(np.float32)
    found = segment_grey_matter(signal, section, PX, brightfield=False).mask
    dice = 2 * (found & grey).sum() / (found.sum() + grey.sum())
    assert dice > 0.9          # 0.71 when the ring sets the split
