"""The error a validation raises on bad input: a manual-count sheet, key or results folder."""

from __future__ import annotations

from ..errors import HistoquantError

__all__ = ["ValidationError"]


class ValidationError(HistoquantError):
    """A validation input is wrong: missing columns, unknown codes, blank counts, too few pairs.

    The message names the file and says what to fix; the command exits with status 2.
    """
