"""eyried as a systemd user service, one module per job (import the one you need; the daemon's start-up
pays only for `notify`):

- `supervisor.systemd.unit`: `render_unit` — the unit text, escaped for systemd;
- `supervisor.systemd.install`: `install`, `uninstall` (lists of `Step`), `render_for`, `default_eyried_path`;
- `supervisor.systemd.notify`: `Notifier`, `watchdog_loop` — sd_notify and the watchdog;
- `supervisor.systemd.doctor`: `run_checks` (a list of `Check`).
"""

__all__: list[str] = []
