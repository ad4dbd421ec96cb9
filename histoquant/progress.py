"""The two progress callbacks: an assay's within one image, and a batch's over its images."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Progress", "BatchProgress"]

Progress = Callable[[float, str], None]
"""An assay's (or anatomy's) progress: ``progress(fraction_done, message)``, fraction in [0, 1]."""

BatchProgress = Callable[[int, int, str], None]
"""A batch's progress: ``progress(done, total, message)`` after each image × assay unit."""
