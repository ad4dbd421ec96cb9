"""Parameters of the automatic anatomy, shared by :func:`find_sections` and the assay."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ParamsError
from ..params import AssayParams, param

__all__ = ["AnatomyParams", "VENTRAL_WORDS", "parse_ventral"]

# Size priors per species [U for mouse]: lumbar cord width rat 3.8–4.1 mm (Watson et al.
# 2009, The Spinal Cord), mouse ≈ 1.5–2 mm; 'auto' takes the geometric mean so it is within
# 1.5x of either.
_RAT_CORD_WIDTH_UM = 4000.0
_RAT_MIN_SECTION_MM2 = 1.0
_SPECIES_SCALE = {"rat": 1.0, "mouse": 0.45, "auto": 0.675}

# Direction of the ventral side on screen -> angle (counter-clockwise from "down").
VENTRAL_WORDS = {"down": 0.0, "right": 90.0, "up": 180.0, "left": -90.0}


def parse_ventral(value: float | str) -> float | str:
    """Normalise a ventral override: ``"auto"``, or an angle in degrees.

    The angle (0 = ventral down, counter-clockwise positive) is read from a word
    (down/right/up/left) or a number.

    Parameters
    ----------
    value : float or str
        ``"auto"``, a direction word, or an angle.

    Returns
    -------
    float or str
        ``"auto"`` or the angle in degrees.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    if text in VENTRAL_WORDS:
        return VENTRAL_WORDS[text]
    try:
        return float(text)
    except ValueError:
        raise ParamsError(
            f"ventral = {value!r}: give 'auto', one of down/up/left/right (where the ventral "
            "side lies in the image), or an angle in degrees (0 = ventral down, positive = "
            "the section turned counter-clockwise)"
        ) from None


@dataclass(frozen=True)
class AnatomyParams(AssayParams):
    """Parameters of the spinal cord anatomy (sections, grey/white matter, horns)."""

    #: Shown first in the GUI; the rest are folded away (AssayParams.common).
    common = ("species", "ventral", "mirrored", "assumed_cord_width_um", "min_quality")

    working_pixel_size_um: float = param(
        10.0, unit="µm", minimum=2.0, maximum=50.0,
        help="The anatomy runs on the image block-averaged to about this pixel size, so "
             "time and memory do not depend on the scan resolution. At 10 µm a 4 mm cord "
             "(3.8–4.1 mm wide; Watson et al. 2009) is ≈ 400 px across and a dorsal horn "
             "(≈ 0.2–0.3 mm wide) 20–30 px, while single cells (10–30 µm) average out.")
    ventral: float | str = param(
        "auto", unit="",
        help="Where the ventral side is: 'auto' (found from the horn shapes and the ventral "
             "median fissure), down/up/left/right (the D–V axis is then refined within "
             "±45° of it), or an angle in degrees fixing the axis exactly (0 = ventral "
             "down, positive = section turned counter-clockwise on screen).")
    mirrored: bool = param(
        False,
        help="False: the image shows the section's rostral face (as if looking caudally), "
             "so with dorsal up the animal's left is on the image's right. True: the "
             "section was mounted face-down (caudal face seen), so the animal's left is on "
             "the image's left.")
    grey_matter_contrast: str = param(
        "auto", choices=("auto", "higher", "lower"),
        help="Whether grey matter has a higher or lower signal than white matter. 'auto': "
             "higher optical density in brightfield (Nissl stains neurons), and for "
             "fluorescence the class that does not form the section's outer rim is grey, "
             "unless the rim is bright with little dim tissue inside (a butterfly found "
             "without its faint white matter: grey is then the bright class).")
    species: str = param(
        "auto", choices=("auto", "rat", "mouse"),
        help="Sets the size priors: the cord width assumed when the pixel size is unknown, "
             "and the sizes that tell a section from roots and debris. Lumbar cords are "
             "≈ 3.8–4.1 mm wide in rat (Watson et al. 2009) and ≈ 1.5–2 mm in mouse [U]. 'auto' "
             "sits between them (2.7 mm, within 1.5× of either), so one default serves both.")
    min_section_area_mm2: float | None = param(
        None, unit="mm²", minimum=0.0,
        help="Smallest tissue piece reported as a section; None: 1 mm² for rat, scaled by "
             "the species' cord size squared otherwise (0.2 mm² mouse, 0.46 mm² auto). A "
             "whole rat lumbar section is 8.5–10.6 mm² (Watson et al. 2009); the floor keeps "
             "fragments (reported and flagged) and drops roots, meninges and debris [U].")
    assumed_cord_width_um: float | None = param(
        None, unit="µm", minimum=500.0,
        help="Only when the pixel size is unknown: the largest section is assumed to be "
             "this wide to choose the working resolution; None: from ``species`` (rat "
             "4000, mouse 1800, auto 2700 µm). Areas are then not reported (NaN).")
    grey_fraction_range_pct: tuple[float, float] = param(
        (33.0, 55.0), unit="%",
        help="Plausible grey-matter share of the section; outside it the quality score "
             "drops and the section is flagged. The rat lumbar cord is 40 % (L2) to 47 % (L4) "
             "grey (Watson et al. 2009), widened for other levels and segmentation error [U].")
    min_quality: float = param(
        0.6, minimum=0.0, maximum=1.0,
        help="Sections scoring below this are flagged 'low_quality' in the summary so they "
             "are checked rather than silently used [U].")
    min_orientation_confidence: float = param(
        0.7, minimum=0.5, maximum=1.0,
        help="Below this confidence the dorsal/ventral decision is flagged "
             "'orientation_uncertain' (0.5 = a coin toss) [U].")
    qc_max_size_px: int = param(
        1600, unit="px", minimum=200,
        help="Longest side of the QC overlay in pixels: readable on screen, small on disk.")

    def __post_init__(self) -> None:
        """Validate the fields and normalise ``ventral`` and the grey-fraction range."""
        super().__post_init__()
        object.__setattr__(self, "ventral", _keep_text(self.ventral))
        lo, hi = self.grey_fraction_range_pct
        if not 0 <= lo < hi <= 100:
            raise ParamsError(f"grey_fraction_range_pct = {self.grey_fraction_range_pct}: "
                              "needs 0 ≤ low < high ≤ 100")

    @property
    def size_scale(self) -> float:
        """Cord size of ``species`` relative to a rat lumbar cord.

        Rat 1, mouse 0.45, auto 0.675 (the geometric mean).
        """
        return _SPECIES_SCALE[self.species]

    @property
    def cord_width_um(self) -> float:
        """The cord width assumed when the pixel size is unknown."""
        if self.assumed_cord_width_um is not None:
            return float(self.assumed_cord_width_um)
        return _RAT_CORD_WIDTH_UM * self.size_scale

    @property
    def section_area_floor_mm2(self) -> float:
        """Smallest section area: the parameter, or 1 mm² scaled to the species."""
        if self.min_section_area_mm2 is not None:
            return float(self.min_section_area_mm2)
        return _RAT_MIN_SECTION_MM2 * self.size_scale**2

    @property
    def ventral_angle(self) -> float | str:
        """The ventral override as ``"auto"`` or an angle in degrees."""
        return parse_ventral(self.ventral)

    @property
    def ventral_is_hint(self) -> bool:
        """True for a word (down/up/left/right): a hint refined by the image."""
        return isinstance(self.ventral, str) and self.ventral.strip().lower() in VENTRAL_WORDS


def _keep_text(value: float | str) -> float | str:
    parse_ventral(value)  # validates
    if isinstance(value, str):
        v = value.strip().lower()
        try:
            return float(v)
        except ValueError:
            return v
    return float(value)
