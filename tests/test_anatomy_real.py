"""Anatomy on real sections (skipped when ../shared/data is absent).

- ``spinal_cord_nissl/whole_section.jpg``: a rat brightfield Nissl section with meninges and
  roots, dorsal up.
- ``spinal_cord_fluorescent``: 5 mouse lumbar sections x 4 stains (fluorescent Nissl, NeuN,
  ChAT, TH), RGB JPEG exports of fluorescence on grey, black or white padding, dorsal up;
  atlas drawings of 4 of them give the cord and grey-matter outlines. The anatomy gets no
  pixel size, no channel and no species: the defaults must serve both rat and mouse.
"""

from __future__ import annotations

import numpy as np
import pytest

from histoquant import read_image
from histoquant.anatomy import anatomy_overlay, find_sections

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def section(shared_data):
    path = shared_data / "spinal_cord_nissl" / "whole_section.jpg"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return read_image(path)


@pytest.mark.parametrize("pixel_size_um", [None, 6.7])
def test_whole_section(section, pixel_size_um):
    image = section.with_pixel_size(pixel_size_um)
    slide = find_sections(image)
    assert slide.status == "ok"
    assert len(slide.sections) == 1
    s = slide.sections[0]
    # dorsal horns point up in this slide: ventral is down, with confidence
    assert s.ventral_direction == "down"
    assert abs(s.angle_deg) < 10
    # decided without the orientation_uncertain flag (the grey-area cue disagrees here, so
    # the agreement-weighted confidence is not near 1)
    assert s.orientation_confidence >= 0.7
    # the canal is the small ring at about (row 505, col 538)
    assert s.canal_found
    assert np.hypot(s.canal_rc[0] - 505, s.canal_rc[1] - 538) < 10
    tissue = s.mask("tissue")
    # the cord is ≈ 560 px wide; meninges (outer rings) and roots (fascicles beside the
    # cord: small fascicles pressed on it at upper left and right, larger roots at the
    # left) are excluded, though stained like tissue
    cols = np.nonzero(tissue.any(axis=0))[0]
    assert 520 <= cols[-1] - cols[0] <= 600
    for r, c in ((340, 300), (368, 272), (455, 205), (572, 228), (380, 820), (735, 540)):
        assert not tissue[r, c], (r, c)
    assert tissue[505, 400] and tissue[300, 540]
    # grey matter: the dark butterfly; ventral horns lie below the canal
    frac = s.metrics["grey_matter_fraction"]
    assert 0.12 <= frac <= 0.30, frac
    # the horns are split at working resolution: the line through the canal is exact to
    # within one working pixel (``slide.factor`` image pixels)
    tol = 1 + slide.factor
    for name in ("ventral_horn_left", "ventral_horn_right"):
        rows = np.nonzero(s.mask(name).any(axis=1))[0]
        assert rows.min() >= s.canal_rc[0] - tol and rows.max() > s.canal_rc[0] + 100
    for name in ("dorsal_horn_left", "dorsal_horn_right"):
        rows = np.nonzero(s.mask(name).any(axis=1))[0]
        assert rows.max() <= s.canal_rc[0] + tol and rows.min() < s.canal_rc[0] - 150
    # animal's left is on the image's right (section seen from its rostral face)
    assert np.nonzero(s.mask("ventral_horn_left"))[1].mean() > s.canal_rc[1]
    if pixel_size_um is None:
        assert np.isnan(s.metrics["grey_matter_area_mm2"])
        # the cord (≈ 570 px) taken as the 'auto' prior's 2.7 mm: 7.0 µm/px for a 4 mm rat
        # cord scaled by 2.7 / 4
        assert slide.assumed_pixel_size_um == pytest.approx(7.0 * 2700 / 4000, rel=0.15)
    else:
        assert 6.0 < s.metrics["tissue_area_mm2"] < 16.0


def test_qc_overlay(section, tmp_path):
    slide = find_sections(section)
    qc = anatomy_overlay(section, slide)
    assert qc.dtype == np.uint8 and qc.ndim == 3 and qc.shape[0] > section.shape_yx[0]


# ---------------------------------------------------------------- mouse, fluorescence RGB

MOUSE_IDS = ("214_L1", "238_L2", "263_L4", "280_L5", "290_L6")
STAINS = {"nissl": "nissl", "neun": "NeuN", "chat": "ChAT", "th": "TH"}
# The targets that the anatomy does not reach yet, by (stain, section) (measured,
# see docs/anatomy.md "Real images"): kept as strict expected failures, so the gap stays
# visible and a fix shows up as an XPASS to be moved out of the list.
# Ventral side (no pixel size given, as in these tests): 214_L1 Nissl, whose white matter is
# clipped to the slide's 0, so the section found is the butterfly alone and the outline cues
# (surface reach, fissure) say little: "up" at low confidence, flagged.
VENTRAL_GAP = {("nissl", "214_L1")}
# Grey-matter Dice < 0.85 (no pixel size given, as in these tests): 290_L6 ChAT's ventral
# white matter (fibres, roots) is as bright as its dorsal grey (0.57). (290_L6 Nissl, whose
# white matter is 0.6 of grey's level and whose section takes in bright meninges, passes
# since the re-split of an over-large bright class and the outline-band test.)
GREY_GAP = {("chat", "290_L6")}


@pytest.fixture(scope="module")
def mouse_results(shared_data):
    """find_sections on every mouse image, defaults only: {(stain, id): (image, slide)}."""
    folder = shared_data / "spinal_cord_fluorescent"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    out = {}
    for stain, suffix in STAINS.items():
        for sid in MOUSE_IDS:
            path = folder / stain / f"{sid}_{suffix}.jpg"
            if path.exists():
                image = read_image(path)
                out[stain, sid] = (image, find_sections(image))
    return out


def _mark(stain, sid, gap, reason):
    marks = [pytest.mark.xfail(reason=reason, strict=True)] if (stain, sid) in gap else []
    return pytest.param(stain, sid, marks=marks, id=f"{stain}-{sid}")


ALL = [pytest.param(st, sid, id=f"{st}-{sid}") for st in STAINS for sid in MOUSE_IDS]


@pytest.mark.parametrize("stain, sid", ALL)
def test_mouse_one_whole_section(mouse_results, stain, sid):
    """Exactly one section, not split at the midline, not the padding or the tile."""
    image, slide = mouse_results[stain, sid]
    assert slide.status == "ok"
    assert len(slide.sections) == 1
    s = slide.sections[0]
    tissue = s.mask("tissue")
    # the section spans both sides of the midline: at least a third of the image's width,
    # never the whole canvas (a padded export: the cord is well inside it)
    cols = np.nonzero(tissue.any(axis=0))[0]
    assert cols[-1] - cols[0] > image.shape_yx[1] / 3
    assert tissue.mean() < 0.6
    # fluorescence: the stained colour plane was chosen, and recorded
    assert "plane" in slide.working.channel
    # no pixel size and no species given: the working scale came from the section itself,
    # within 1.75x of the truth (2.02 or 2.30 µm/px from the scale bars): the 'auto' prior
    # is within 1.5x of a mouse cord, and the section's width is measured roughly
    truth = 2.30 if image.shape_yx[0] == 750 else 2.02
    assert truth / 1.75 < slide.assumed_pixel_size_um < truth * 1.75


@pytest.mark.parametrize("stain, sid", [
    _mark(st, sid, VENTRAL_GAP, "shape cues disagree on a butterfly-only outline")
    for st in STAINS for sid in MOUSE_IDS])
def test_mouse_ventral_down(mouse_results, stain, sid):
    """Ventral is down in every one of these sections."""
    _, slide = mouse_results[stain, sid]
    s = slide.sections[0]
    assert s.ventral_direction == "down"
    assert abs(s.angle_deg) < 15


@pytest.mark.parametrize("stain, sid", ALL)
def test_mouse_confidence_is_honest(mouse_results, stain, sid):
    """A wrong ventral side is never reported with a high confidence."""
    _, slide = mouse_results[stain, sid]
    s = slide.sections[0]
    if s.ventral_direction != "down":
        assert s.orientation_confidence < 0.7
        assert "orientation_uncertain" in s.flags


@pytest.mark.parametrize("stain, sid", [
    _mark(st, sid, GREY_GAP, "grey matter not recovered to Dice 0.85 yet")
    for st in STAINS for sid in MOUSE_IDS if sid != "263_L4"])
def test_mouse_grey_matter_against_atlas(mouse_results, shared_data, atlas_refs, stain,
                                          sid):
    """Grey-matter Dice ≥ 0.85 against the atlas drawing of the same section."""
    atlas = atlas_refs
    image, slide = mouse_results[stain, sid]
    drawn = atlas.extract_atlas(shared_data / "spinal_cord_fluorescent" / "atlas"
                                / f"{sid}_atlas.png", image.shape_yx)
    s = slide.sections[0]
    grey = s.mask("grey_matter") | s.mask("central_canal")
    assert atlas.dice(drawn.cord, s.mask("tissue")) >= 0.5
    assert atlas.dice(drawn.grey, grey) >= 0.85


def test_species_prior_sets_the_assumed_scale(section):
    """species='rat' assumes a 4 mm cord, 'mouse' 1.8 mm: the assumed pixel size follows."""
    rat = find_sections(section, {"species": "rat"})
    mouse = find_sections(section, {"species": "mouse"})
    assert rat.assumed_pixel_size_um == pytest.approx(7.0, rel=0.15)
    assert mouse.assumed_pixel_size_um < rat.assumed_pixel_size_um * 0.6
    assert len(rat.sections) == 1 and rat.sections[0].ventral_direction == "down"
