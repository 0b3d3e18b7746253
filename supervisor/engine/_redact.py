"""Keep secrets out of recorded command lines (``instance.json`` and logs).

A gateway may take its token on the command line (``--token <t>``); the recorded ``cmdline`` — used to
recognise the process again after a daemon restart — is stored with such values replaced, and compared in
the same redacted form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

__all__ = ["REDACTED", "redact_cmdline", "secret_values"]

REDACTED = "***"
_SECRET_FLAG = re.compile(r"^--?(?:[a-z0-9]+[-_])*(?:token|password|passwd|secret|api[-_]?key|key)$", re.I)
_SECRET_KEY = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|CREDENTIAL|PRIVATE_KEY", re.I)
_MIN_SECRET = 6


def secret_values(env: Mapping[str, str], *, any_name: bool = False) -> frozenset[str]:
    """Values of environment variables whose names look secret (all of them with ``any_name``), long
    enough to be worth hiding."""
    return frozenset(
        v for k, v in env.items() if (any_name or _SECRET_KEY.search(k)) and len(v) >= _MIN_SECRET
    )


def redact_cmdline(cmdline: Sequence[str], secrets: Iterable[str] = ()) -> list[str]:
    """``cmdline`` with the value after a secret-looking flag, ``--flag=value`` forms, and any known secret
    value replaced by ``***``."""
    known = sorted(set(secrets), key=len, reverse=True)
    out: list[str] = []
    hide_next = False
    for arg in cmdline:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        flag, eq, _ = arg.partition("=")
        if _SECRET_FLAG.match(flag):
            if eq:
                out.append(f"{flag}={REDACTED}")
            else:
                out.append(arg)
                hide_next = True
            continue
        for secret in known:
            arg = arg.replace(secret, REDACTED)
        out.append(arg)
    return out
