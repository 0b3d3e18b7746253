"""The control plane: the HTTP/JSON API eyried serves on its owner-only socket (`app`, `server`), the data it
speaks (`schema`) and what it needs from the daemon (`target`)."""

__all__: list[str] = []
