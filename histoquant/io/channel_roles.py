"""Which channel of a file is which stain: evidence from channel names and display colours.

Microscope files say what their channels hold in two ways: a **name** (``EGFP``, ``DAPI``,
``Alexa 647``, ``CD31``) and a **display colour** (an ImageJ LUT, an OME ``Color``, an
OME-Zarr ``omero`` colour). Names are explicit: :func:`histoquant.assays.base.resolve_channels`
uses them. Colours are a convention (GFP shown green, DAPI blue) that a lab may break (a
tdTomato channel is red too), so they only *suggest*: the napari plugin pre-selects from
them with a visible note, and the command line names them in its error message when a role
is left unresolved. Nothing here is applied silently to a measurement.

:func:`channel_colours` reads the colours a reader recorded (``image.metadata
["channel_colors"]``, ``#rrggbb``); :func:`hue_name` names a colour; :func:`guess_roles`
weighs the evidence for every role of an assay.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["RoleGuess", "RoleGuesses", "lut_colour", "hue_name", "channel_colours",
           "display_colour", "guess_roles", "ROLE_EVIDENCE", "NAME", "ALIAS", "COLOUR"]

#: Evidence strengths, strongest first.
NAME, ALIAS, COLOUR = 3, 2, 1
_WORDS = {NAME: "named", ALIAS: "name matches", COLOUR: "display colour"}

# Display colours from what a channel is called, first match wins: "far red" and "evans" before
# the plain "red"; the colour a histologist expects for each stain.
_DISPLAY_RULES: tuple[tuple[str, str], ...] = (
    (r"dapi|hoechst|nuclei|nuclear|\b405\b", "blue"),
    (r"gfp|fitc|green|\b488\b", "green"),
    (r"evb|evans|far.?red|cy5|\b6[34][07]\b|alexa.?6", "magenta"),
    (r"vessel|lectin|cd31|reca|endothel|endomucin|\bv\b", "cyan"),
    (r"pericyte|pdgfr|ng2|desmin", "yellow"),
    (r"auto.?fl|^af$|reference|background", "gray"),
    (r"rfp|tritc|cy3|tomato|mcherry|\b5[5-9]\d\b", "red"),
    (r"red", "magenta"),
)
_FALLBACK = ("green", "magenta", "cyan", "yellow", "blue", "red")

#: What a channel holding each role (every assay's ``ChannelRole.name``) is called — markers,
#: dyes, filter wavelengths — and the display colours labs usually give it. A colour is listed
#: only where it is a near-universal convention: the reference channel is red or far red, but
#: so is a tdTomato channel that must not be taken for autofluorescence, so it has none.
ROLE_EVIDENCE: dict[str, tuple[str, tuple[str, ...]]] = {
    "gfp": (r"e?gfp|fitc|alexa.?(fluor)?.?488|\baf.?488\b|\b488\b|\b50\d\b|green", ("green",)),
    "dapi": (r"dapi|hoechst|nucle|\b405\b|\b4[45]\d\b", ("blue",)),
    "reference": (r"auto.?fl|^af$|reference|backgr", ()),
    "evb": (r"evans|\bevb?\b|far.?red|cy5|\b6[4-9]\d\b|alexa.?(fluor)?.?6[4-9]\d",
            ("red", "magenta")),
    "vessel": (r"vessel|lectin|dextran|cd31|pecam|reca|endomucin|\bib4\b|isolectin", ()),
    "endothelium": (r"endothel|lectin|cd31|pecam|reca|endomucin|col.?iv|collagen|\bib4\b|"
                    r"isolectin|vessel", ()),
    "pericyte": (r"pericyte|pdgfr|ng2|cspg4|desmin|cd13", ()),
    "soma": (r"nissl|neurotrace|\bchat\b|neun|soma", ()),
    "tissue": (r"tissue", ()),
}


def lut_colour(lut: Any) -> str | None:
    """Return the colour (``#rrggbb``) of the brightest entry of an ImageJ LUT.

    Parameters
    ----------
    lut : array-like
        (3, 256) red, green and blue ramps, as ``tifffile`` reads ImageJ's ``LUTs``.

    Returns
    -------
    str or None
        ``#rrggbb``, or ``None`` when ``lut`` is not a (3, N) table.
    """
    arr = np.asarray(lut)
    if arr.ndim != 2 or arr.shape[0] != 3 or arr.shape[1] < 2:
        return None
    top = arr[:, -1].astype(float)
    scale = 255.0 / float(np.iinfo(arr.dtype).max) if np.issubdtype(arr.dtype, np.integer) else 1
    r, g, b = (int(np.rint(np.clip(v * scale, 0, 255))) for v in top)
    return f"#{r:02x}{g:02x}{b:02x}"


def hue_name(colour: str | None) -> str | None:
    """Name a display colour: red, green, blue, cyan, magenta, yellow or gray.

    Parameters
    ----------
    colour : str or None
        ``#rrggbb`` (or ``rrggbb``).

    Returns
    -------
    str or None
        The name, or ``None`` for no colour, an unreadable one, or black.
    """
    if not colour:
        return None
    text = colour.lstrip("#")
    if not re.fullmatch(r"[0-9a-fA-F]{6}([0-9a-fA-F]{2})?", text):
        return None
    rgb = np.array([int(text[i:i + 2], 16) for i in (0, 2, 4)], float)
    top = rgb.max()
    if top < 32:
        return None
    on = rgb >= 0.5 * top
    if on.all():
        return "gray"
    return {(True, False, False): "red", (False, True, False): "green",
            (False, False, True): "blue", (False, True, True): "cyan",
            (True, False, True): "magenta", (True, True, False): "yellow"}[tuple(on)]


def channel_colours(image: Any) -> list[str | None]:
    """Return each channel's display colour from the file (``#rrggbb`` or ``None``).

    Parameters
    ----------
    image : Image
        An image read by :func:`histoquant.io.read_image`.

    Returns
    -------
    list
        One entry per channel; all ``None`` when the file records no colours (or an RGB
        image, whose channels are red, green and blue by construction).
    """
    n = image.n_channels
    colours = list((image.metadata or {}).get("channel_colors") or [])
    if image.rgb or len(colours) != n:
        return [None] * n
    return [c if isinstance(c, str) else None for c in colours]


def display_colour(name: str, colour: str | None = None, index: int = 0,
                   n_channels: int = 1) -> str:
    """Return the colormap name a viewer should show a fluorescence channel in.

    The file's own colour first (its LUT says how the lab looks at it), then the channel's
    name (DAPI → blue, GFP → green, Evans Blue / far red → magenta, vessel markers → cyan,
    pericyte markers → yellow, autofluorescence → gray), then gray for a lone channel or a
    fixed cycle by index.

    Parameters
    ----------
    name : str
        Channel name.
    colour : str, optional
        The file's colour for the channel (``#rrggbb``).
    index, n_channels : int
        The channel's place, for the fallback cycle.

    Returns
    -------
    str
        A colormap name napari knows.
    """
    hue = hue_name(colour)
    if hue is not None:
        return hue
    lowered = str(name).strip().lower()
    for pattern, col in _DISPLAY_RULES:
        if re.search(pattern, lowered):
            return col
    if n_channels == 1:
        return "gray"
    return _FALLBACK[index % len(_FALLBACK)]


@dataclass(frozen=True)
class RoleGuess:
    """The channel chosen for a role, and why.

    Parameters
    ----------
    index : int
        Channel index.
    strength : int
        :data:`NAME` (the channel is called the role), :data:`ALIAS` (its name is a marker
        or dye of the role) or :data:`COLOUR` (its display colour is the role's usual one).
    reason : str
        In words, for a note or an error message.
    """

    index: int
    strength: int
    reason: str


@dataclass
class RoleGuesses:
    """What :func:`guess_roles` found: chosen roles, and roles left ambiguous.

    Parameters
    ----------
    chosen : dict
        Role name → :class:`RoleGuess`.
    ambiguous : dict
        Role name → the channel indices with equally strong evidence (so none is chosen).
    """

    chosen: dict[str, RoleGuess] = field(default_factory=dict)
    ambiguous: dict[str, list[int]] = field(default_factory=dict)

    def note(self, channel_names: Sequence[str]) -> str:
        """One line per role saying what was chosen and why, or that it must be chosen.

        Parameters
        ----------
        channel_names : sequence of str
            The image's channel names, to name the channels.

        Returns
        -------
        str
            The note ("" when nothing was found).
        """
        lines = [f"{role} ← {channel_names[g.index]} ({g.reason})"
                 for role, g in self.chosen.items()]
        lines += [f"{role}: ambiguous between "
                  f"{', '.join(channel_names[i] for i in idx)}; choose one"
                  for role, idx in self.ambiguous.items()]
        return "\n".join(lines)


def _evidence(role: Any, name: str, colour: str | None) -> tuple[int, str] | None:
    lowered = name.strip().lower()
    if lowered == role.name.lower():
        return NAME, f"{_WORDS[NAME]} {name!r}"
    aliases, hues = ROLE_EVIDENCE.get(role.name, ("", ()))
    if aliases and re.search(aliases, lowered):
        return ALIAS, f"{_WORDS[ALIAS]} {role.name}: {name!r}"
    hue = hue_name(colour)
    if hue is not None and hue in hues:
        return COLOUR, f"{_WORDS[COLOUR]} {hue}, usual for {role.name}"
    return None


def guess_roles(image: Any, roles: Sequence[Any], *, min_strength: int = COLOUR
                ) -> RoleGuesses:
    """Weigh the evidence for which channel holds each role.

    Each role takes the channel with the strongest evidence (:data:`NAME` > :data:`ALIAS` >
    :data:`COLOUR`). Two channels with equal evidence for a role, or one channel that is the
    best for two roles with equal evidence, leave the role(s) ambiguous rather than picked by
    order. A channel chosen for one role is not offered to another.

    Parameters
    ----------
    image : Image
        The image (channel names; display colours from :func:`channel_colours`).
    roles : sequence of ChannelRole
        The assay's channel roles; their names' evidence is :data:`ROLE_EVIDENCE`.
    min_strength : int
        The weakest evidence used (:data:`ALIAS` leaves colours out).

    Returns
    -------
    RoleGuesses
        Chosen and ambiguous roles. A one-channel image, an RGB image and roles without
        evidence give nothing.
    """
    out = RoleGuesses()
    if image.rgb:
        return out
    names = list(image.channel_names)
    colours = channel_colours(image)
    best: dict[str, tuple[int, list[tuple[int, str]]]] = {}
    for role in roles:
        found = [(i, *ev) for i, (n, c) in enumerate(zip(names, colours))
                 if (ev := _evidence(role, n, c)) is not None and ev[0] >= min_strength]
        if not found:
            continue
        top = max(s for _, s, _ in found)
        best[role.name] = (top, [(i, r) for i, s, r in found if s == top])
    # A role with one best channel claims it; two such roles on one channel: the stronger
    # evidence wins, equal evidence leaves both to the user.
    single = {r: (s, c[0]) for r, (s, c) in best.items() if len(c) == 1}
    taken: dict[int, str] = {}
    for role_name, (strength, (i, reason)) in single.items():
        rivals = [r for r, (s, (j, _)) in single.items() if j == i and r != role_name]
        if any(single[r][0] > strength for r in rivals):
            continue
        if any(single[r][0] == strength for r in rivals):
            out.ambiguous[role_name] = [i]
            continue
        out.chosen[role_name] = RoleGuess(i, strength, reason)
        taken[i] = role_name
    # A role with several equally good channels takes the one no other role claimed.
    for role_name, (strength, cands) in best.items():
        if role_name in single:
            continue
        free = [(i, r) for i, r in cands if i not in taken]
        if len(free) == 1:
            out.chosen[role_name] = RoleGuess(free[0][0], strength, free[0][1])
            taken[free[0][0]] = role_name
        else:
            out.ambiguous[role_name] = sorted(i for i, _ in cands)
    return out
