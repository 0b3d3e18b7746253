"""The daemon: composition root of the supervisor (fleet file, provisioner, engine, control API, signals)."""

__all__: list[str] = []
