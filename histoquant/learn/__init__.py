"""Learned engines: classifiers trained from a few annotations (issue #16)."""
