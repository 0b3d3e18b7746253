"""The least-privilege agent API: each agent, known by its own token, may do what its role allows.

`app` is the ASGI app over an `target.AgentTarget` (the daemon), `permissions` the pure role × action ×
target table, `server` the loopback listener whose port survives restarts, `schema` the request bodies.
"""

__all__: list[str] = []
