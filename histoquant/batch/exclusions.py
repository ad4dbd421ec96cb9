"""Sections excluded from a study, declared in ``study.yaml`` with their reasons, never silently.

::

    exclusions:
      - {rule: min_anatomy_score, value: 0.5}        # anatomy quality below 0.5
      - {rule: max_saturated_pct, value: 5}           # more than 5 % saturated pixels
      - {sections: ["R07_L4_s2", "R09_*#2"], reason: "folded tissue"}

A rule compares a quality number with its value:

- ``min_anatomy_score``: a section whose anatomy score is below the value — the lowest
  numeric column of the section's rows whose name ends in ``score`` (the anatomy assay's
  ``quality_score``), else the score ``histoquant.anatomy`` gave the section on a slide
  (``anatomy_quality`` in ``run.json``). A section with no score is not judged by it.
- ``max_saturated_pct``: every section of an image with more than ``value`` % of its pixels
  at the top of the range (``saturated_pct`` of the image in ``run.json``).

A manual entry names images or single sections (``image#section``), as globs; the name may
be the image's name in the tables or, for a blinded run, its code. ``reason`` is required.

Excluded sections stay in the section table (``excluded`` true, ``exclusion_reason`` says
why) and are left out of the animal table, the Prism tables and every endpoint; ``run.json``
lists them under ``exclusions``. The ``qc`` options only flag; they never exclude.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from .assemble import AssembledStudy

__all__ = ["ExclusionRule", "RULES", "parse_exclusions", "mark_exclusions",
           "exclude_sections"]

#: rule name → (what it reads, lowest value, highest value)
RULES = {"min_anatomy_score": ("anatomy score", 0.0, 1.0),
         "max_saturated_pct": ("saturated pixels %", 0.0, 100.0)}
_RULE_KEYS = {"rule", "value", "reason"}
_MANUAL_KEYS = {"sections", "reason"}


@dataclass(frozen=True)
class ExclusionRule:
    """One entry of the study file's ``exclusions``.

    Attributes
    ----------
    rule : str
        ``min_anatomy_score``, ``max_saturated_pct``, or ``sections`` for a manual entry.
    value : float or None
        The rule's limit (None for a manual entry).
    sections : tuple of str
        A manual entry's globs on ``image`` or ``image#section``.
    reason : str
        Why (required for a manual entry; optional words put before a rule's own reason).
    """

    rule: str
    value: float | None = None
    sections: tuple[str, ...] = ()
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the entry as the study file spells it.

        Returns
        -------
        dict
            ``{rule, value}`` or ``{sections, reason}`` (with ``reason`` when given).
        """
        if self.rule == "sections":
            return {"sections": list(self.sections), "reason": self.reason}
        return {"rule": self.rule, "value": self.value,
                **({"reason": self.reason} if self.reason else {})}


def parse_exclusions(value: Any, problems: list[str]) -> tuple[ExclusionRule, ...]:
    """Read the study file's ``exclusions`` list; every mistake goes to ``problems``.

    Parameters
    ----------
    value : object
        The ``exclusions`` value as read from YAML/JSON (None when absent).
    problems : list of str
        Receives one line per mistake, located as ``exclusions[i]``.

    Returns
    -------
    tuple of ExclusionRule
        The valid entries.
    """
    if value is None:
        return ()
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        problems.append("exclusions: expected a list of {rule: ..., value: ...} or "
                        "{sections: [...], reason: ...} entries")
        return ()
    out = []
    for i, entry in enumerate(value):
        where = f"exclusions[{i}]"
        if not isinstance(entry, Mapping):
            problems.append(f"{where}: expected a mapping, got {entry!r}")
            continue
        reason = entry.get("reason", "")
        if not isinstance(reason, str):
            problems.append(f"{where}.reason: expected text, got {reason!r}")
            reason = ""
        reason = " ".join(reason.split())
        if "rule" in entry and "sections" in entry:
            problems.append(f"{where}: give either 'rule' or 'sections', not both")
            continue
        if "sections" in entry:
            unknown = sorted(set(map(str, entry)) - _MANUAL_KEYS)
            if unknown:
                problems.append(f"{where}: unknown key(s) {', '.join(unknown)}; a manual "
                                "exclusion has 'sections' and 'reason'")
            names = entry["sections"]
            if isinstance(names, str):
                names = [names]
            if not isinstance(names, Sequence) or not names or not all(
                    isinstance(n, str) and n.strip() for n in names):
                problems.append(f"{where}.sections: expected a list of image or "
                                f"image#section names (globs), got {entry['sections']!r}")
                continue
            if not reason:
                problems.append(f"{where}: a manual exclusion needs a 'reason' (it is "
                                "reported with the section)")
                continue
            out.append(ExclusionRule("sections", sections=tuple(n.strip() for n in names),
                                     reason=reason))
            continue
        rule = entry.get("rule")
        if rule not in RULES:
            problems.append(f"{where}.rule: one of {', '.join(RULES)} (or give 'sections' "
                            f"and 'reason'), not {rule!r}")
            continue
        unknown = sorted(set(map(str, entry)) - _RULE_KEYS)
        if unknown:
            problems.append(f"{where}: unknown key(s) {', '.join(unknown)}; a rule has "
                            "'rule', 'value' and optionally 'reason'")
        _, lo, hi = RULES[rule]
        v = entry.get("value")
        try:
            if isinstance(v, bool) or v is None:
                raise ValueError
            v = float(v)
            if not lo <= v <= hi:  # also refuses NaN
                raise ValueError
        except (TypeError, ValueError):
            problems.append(f"{where}.value: {rule} needs a number from {lo:g} to {hi:g}, "
                            f"not {entry.get('value')!r}")
            continue
        out.append(ExclusionRule(str(rule), value=v, reason=reason))
    return tuple(out)


def _finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _section_scores(rows: pd.DataFrame, meta: Mapping[str, Any] | None,
                    section: str) -> float | None:
    # the lowest anatomy score of one section: its *score columns, else the unit record's
    cols = [c for c in rows.columns if str(c).lower().endswith("score")
            and pd.api.types.is_numeric_dtype(rows[c])]
    vals = pd.to_numeric(rows[cols].stack(), errors="coerce") if cols else pd.Series([])
    vals = vals[np.isfinite(vals)] if len(vals) else vals
    if len(vals):
        return float(vals.min())
    quality = (meta or {}).get("anatomy_quality")
    if not quality:
        return None
    sections = (meta or {}).get("_sections") or []
    if len(quality) == len(sections) and section in sections:
        return _finite(quality[sections.index(section)])
    return None  # not one score per section: no section is judged on another's score


def mark_exclusions(sections: pd.DataFrame, units: Sequence[Mapping[str, Any]],
                    rules: Sequence[ExclusionRule], *,
                    aliases: Mapping[str, Iterable[str]] | None = None,
                    scrub: Callable[[str], str] | None = None,
                    ) -> tuple[pd.DataFrame, list[dict[str, str]], list[str]]:
    """Add ``excluded`` and ``exclusion_reason`` to a section table.

    Parameters
    ----------
    sections : pandas.DataFrame
        The study's section table (``image``, ``section``, ``assay`` and the measures).
    units : sequence of mapping
        One record per image × assay (``image``, ``assay``, ``saturated_pct``,
        ``anatomy_quality``), as ``run.json`` lists them.
    rules : sequence of ExclusionRule
        The study file's ``exclusions``.
    aliases : mapping of str to iterable of str, optional
        Other names of an image that manual entries may use (a blinded run's codes, or
        the real names of coded images).
    scrub : callable, optional
        Rewrites the reasons and notes (a blinded run codes any name they hold).

    Returns
    -------
    sections : pandas.DataFrame
        A copy with ``excluded`` (bool) and ``exclusion_reason`` (text, empty when kept).
    excluded : list of dict
        One ``{image, section, assay, reason}`` per excluded section.
    notes : list of str
        What the user should know: how many were excluded, manual names matching nothing.
    """
    out = sections.copy()
    if out.empty or "image" not in out.columns:
        out["excluded"] = pd.Series(dtype=bool)
        out["exclusion_reason"] = pd.Series(dtype=object)
        return out, [], []
    aliases = aliases or {}
    by_unit = {(str(m.get("image")), str(m.get("assay"))): dict(m) for m in units
               if "error" not in m}
    # each unit's section names in order, to pair them with its per-section anatomy scores
    for (image, assay), rows in out.groupby(["image", "assay"], sort=False):
        if (str(image), str(assay)) in by_unit:
            from .samples import natural_key

            by_unit[(str(image), str(assay))]["_sections"] = sorted(
                dict.fromkeys(rows["section"].astype(str)), key=natural_key)
    reasons: dict[tuple[str, str, str], list[str]] = {}
    used = {p: False for r in rules if r.rule == "sections" for p in r.sections}
    for (image, section, assay), rows in out.groupby(["image", "section", "assay"],
                                                      sort=False):
        image, section, assay = str(image), str(section), str(assay)
        meta = by_unit.get((image, assay))
        why = []
        for r in rules:
            lead = f"{r.reason}: " if r.reason and r.rule != "sections" else ""
            if r.rule == "max_saturated_pct":
                sat = _finite((meta or {}).get("saturated_pct"))
                if sat is not None and sat > r.value:
                    why.append(f"{lead}{sat:.2f} % of pixels saturated, above {r.value:g} % "
                               "(max_saturated_pct)")
            elif r.rule == "min_anatomy_score":
                score = _section_scores(rows, meta, section)
                if score is not None and score < r.value:
                    why.append(f"{lead}anatomy score {score:.2f}, below {r.value:g} "
                               "(min_anatomy_score)")
            else:
                names = [image, *aliases.get(image, ())]
                candidates = [n for name in names for n in (name, f"{name}#{section}")]
                hit = [p for p in r.sections
                       if any(fnmatch.fnmatchcase(c, p) for c in candidates)]
                for p in hit:
                    used[p] = True
                if hit:
                    why.append(r.reason)
        if why:
            reasons[(image, section, assay)] = list(dict.fromkeys(
                scrub(w) if scrub is not None else w for w in why))
    key = list(zip(out["image"].astype(str), out["section"].astype(str),
                   out["assay"].astype(str)))
    out["excluded"] = np.array([k in reasons for k in key], dtype=bool)
    out["exclusion_reason"] = ["; ".join(reasons.get(k, [])) for k in key]
    records = [{"image": i, "section": s, "assay": a, "reason": "; ".join(w)}
               for (i, s, a), w in reasons.items()]
    notes = []
    if records:
        notes.append(f"{len(records)} section(s) excluded by the study file's exclusions "
                     "(kept in sections.csv with excluded = true and the reason; left out "
                     "of every animal value): " + ", ".join(
                         f"{r['image']}#{r['section']} ({r['reason']})" for r in records[:10])
                     + (" ..." if len(records) > 10 else ""))
    unused = [p for p, hit in used.items() if not hit]
    if unused:
        notes.append(f"exclusions: {', '.join(unused)} match(es) no section")
    if scrub is not None:
        notes = [scrub(n) for n in notes]
    return out, records, notes


def exclude_sections(study: AssembledStudy, rules: Sequence[ExclusionRule], *,
                     aliases: Mapping[str, Iterable[str]] | None = None,
                     scrub: Callable[[str], str] | None = None,
                     ) -> list[dict[str, str]]:
    """Mark a study's excluded sections; rebuild its animal, tidy and Prism tables without them.

    Parameters
    ----------
    study : AssembledStudy
        From :func:`~histoquant.batch.assemble.assemble_study`; its tables and notes are
        updated in place.
    rules : sequence of ExclusionRule
        The study file's ``exclusions``.
    aliases : mapping of str to iterable of str, optional
        Other names of each image (see :func:`mark_exclusions`).
    scrub : callable, optional
        Rewrites reasons and notes (see :func:`mark_exclusions`).

    Returns
    -------
    list of dict
        One ``{image, section, assay, reason}`` per excluded section, for ``run.json``.
    """
    from .tables import animal_table, long_table, prism_tables, sections_long_table

    t = study.tables
    t.sections, records, notes = mark_exclusions(t.sections, study.units, rules,
                                                 aliases=aliases, scrub=scrub)
    if records:
        t.animals = animal_table(t.sections, study.groups)
        t.prism = prism_tables(t.animals, study.groups, study.measures)
        # the tidy tables feed models directly: an excluded section is not in them
        t.long = long_table(t.animals)
        kept = ~t.sections["excluded"].fillna(False).astype(bool)
        t.sections_long = sections_long_table(t.sections[kept])
    study.notes.extend(notes)
    return records
