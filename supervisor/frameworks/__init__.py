"""Framework definitions as data (`spec`, `registry`) and the pure steps from a definition to argv, env and
config text (`expand`, `render`)."""

__all__: list[str] = []
