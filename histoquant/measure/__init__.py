"""Measurement primitives shared by assays.

Object features in µm, skeleton lengths, accuracy scores.
"""
