"""Pieces of ``bench/compare.py``: one driver per manager, the kernel's exec events, /proc reads, tables."""
