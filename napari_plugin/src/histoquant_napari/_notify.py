"""Messages to the user as napari notifications (one place, so tests can capture them)."""

from __future__ import annotations

import logging

__all__ = ["error", "warning", "info", "describe"]

log = logging.getLogger("histoquant_napari")


def describe(exc: BaseException) -> str:
    """Return the message for an exception: histoquant's own message as is, else its type too."""
    from histoquant.errors import HistoquantError

    if isinstance(exc, HistoquantError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def error(message: str) -> None:
    """Show an error notification."""
    from napari.utils.notifications import show_error

    log.error("%s", message)
    show_error(message)


def warning(message: str) -> None:
    """Show a warning notification."""
    from napari.utils.notifications import show_warning

    log.warning("%s", message)
    show_warning(message)


def info(message: str) -> None:
    """Show an information notification."""
    from napari.utils.notifications import show_info

    show_info(message)
