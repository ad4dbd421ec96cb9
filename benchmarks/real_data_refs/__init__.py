"""Hand-made references for ``benchmarks/real_data.py`` (atlas masks, by-eye counts)."""
