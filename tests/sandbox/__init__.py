"""Sandboxes for tests that need a real system service: a confined ``systemd --user`` manager."""
