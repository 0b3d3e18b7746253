"""``eyriectl``: the operator's command line for eyried and its fleet (entry point: `supervisor.cli.main`)."""

__all__: list[str] = []
