"""The chaos soak's parts: a seeded fault planner, a look at /proc, the invariants, the actions."""
