"""Benchmarks and the chaos soak, run from the checkout as ``python -m bench.<name>``."""
