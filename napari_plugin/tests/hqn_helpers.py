"""Helpers shared by the plugin tests (imported by name; pytest puts this folder on sys.path)."""

from __future__ import annotations


def wait_run(qtbot, widget, timeout: int = 60000):
    """Click Run and wait until the run ends (the worker thread finishes)."""
    with qtbot.waitSignal(widget.run_finished, timeout=timeout):
        widget.run()
