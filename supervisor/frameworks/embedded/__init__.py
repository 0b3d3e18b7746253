"""The embedded agent gateway: a small real HTTP gateway process that needs no network and no model key.

Run as ``python -m supervisor.frameworks.embedded --config <file>``. It serves ``GET /health`` and
``GET /ready`` on 127.0.0.1, prints ``EMBEDDED_READY port=<port>`` once it is listening and exits 0 on SIGTERM
or SIGINT. It imports nothing beyond the standard library, so hundreds of them start fast and stay small.
"""

__all__: list[str] = []
