"""Each instance's Landlock ruleset, built in the daemon once per policy and reused for every respawn.

The parent opens every path with ``O_PATH`` and adds the rules; a child inherits the ruleset fd and only
restricts itself (`supervisor.sandbox.child`). Where the kernel lacks Landlock, or an ABI lacks signal
scoping or TCP rules, agents run with what there is, and the first spawn of each daemon says so once.
"""

from __future__ import annotations

import os
import stat
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor.sandbox import _landlock as ll
from supervisor.sandbox.child import Confiner
from supervisor.sandbox.policy import FULL, SandboxPolicy, grants
from supervisor.sandbox.prefix import install_prefixes
from supervisor.sandbox.spawner import SpawnHelper

__all__ = ["OFF", "UNAVAILABLE", "Confinement", "Sandboxes", "landlock_abi", "missing_features"]

OFF = "off"
UNAVAILABLE = "unavailable"
_SCOPING_ABI = 6
_NET_ABI = 4

Warn = Callable[..., Any]
"""A structlog-style ``warning(event, **fields)``."""


def landlock_abi() -> int:
    """The kernel's Landlock ABI; 0 without Landlock."""
    try:
        return ll.abi_version()
    except OSError:
        return 0


def missing_features(abi: int) -> list[str]:
    """What confinement cannot do on a kernel with this ABI, in words."""
    if abi == 0:
        return ["Landlock (agents run unconfined; only no_new_privs and the capability drop apply)"]
    out = []
    if abi < _NET_ABI:
        out.append(f"TCP bind rules (Landlock ABI {_NET_ABI})")
    if abi < _SCOPING_ABI:
        out.append(f"signal and abstract-socket scoping (Landlock ABI {_SCOPING_ABI})")
    return out


@dataclass(frozen=True, slots=True)
class Confinement:
    """What a child is to apply (`confiner`) and how ``ps`` describes it (`label`)."""

    label: str
    confiner: Confiner


class Sandboxes:
    """The rulesets of the instances of one engine, by instance id. Safe to call from worker threads."""

    def __init__(self) -> None:
        self._abi = landlock_abi()
        self._cached: dict[str, tuple[_Key, Confinement, int]] = {}
        self._lock = threading.Lock()
        self._reported = False
        self._drop_capabilities = os.geteuid() == 0
        self._helper = SpawnHelper()

    @property
    def abi(self) -> int:
        return self._abi

    @property
    def label(self) -> str:
        """How a process confined here is described: ``landlock v7``, or ``unavailable``."""
        return f"landlock v{self._abi}" if self._abi else UNAVAILABLE

    def prepare(self, instance_id: str, policy: SandboxPolicy, warn: Warn) -> Confinement:
        """The confinement for ``policy``: the cached one while the policy and the instance's own files
        are unchanged, else built now. A rule holds an inode: a config rewritten by rename, or a workspace
        made anew, needs a new ruleset."""
        key = (policy, _identities(policy))
        with self._lock:
            cached = self._cached.get(instance_id)
            if cached is not None and cached[0] == key:
                return cached[1]
            self._report(warn)
            ruleset = self._build(policy, warn) if self._abi else -1
            confinement = Confinement(
                self.label,
                Confiner(ruleset, drop_capabilities=self._drop_capabilities, helper=self._helper),
            )
            self._close(instance_id)
            self._cached[instance_id] = ((policy, _identities(policy)), confinement, ruleset)
            return confinement

    def forget(self, instance_id: str) -> None:
        """Close the ruleset kept for an instance that went away."""
        with self._lock:
            self._close(instance_id)

    def close(self) -> None:
        """Close every ruleset and end the spawn helper (the children it started go on)."""
        with self._lock:
            for instance_id in list(self._cached):
                self._close(instance_id)
        self._helper.close()

    def _close(self, instance_id: str) -> None:
        cached = self._cached.pop(instance_id, None)
        if cached is not None and cached[2] >= 0:
            os.close(cached[2])

    def _report(self, warn: Warn) -> None:
        if not self._reported:
            self._reported = True
            missing = missing_features(self._abi)
            if missing:
                warn("sandbox_incomplete", landlock_abi=self._abi, missing=missing)

    def _build(self, policy: SandboxPolicy, warn: Warn) -> int:
        abi = self._abi
        handled_fs = ll.ACCESS_FS_BY_ABI[min(abi, max(ll.ACCESS_FS_BY_ABI))]
        handled_net = ll.NET_BIND_TCP if abi >= _NET_ABI else 0
        scoped = ll.SCOPE_SIGNAL | ll.SCOPE_ABSTRACT_UNIX_SOCKET if abi >= _SCOPING_ABI else 0
        ruleset = ll.create_ruleset(handled_fs, handled_net, scoped)
        try:
            home = Path(policy.instance_dir).parent.parent
            prefixes = install_prefixes(policy.argv, policy.search_path, home)
            for grant in grants(policy, prefixes):
                if grant.create and not os.path.lexists(grant.path):  # a file (/dev/null) is granted as is
                    Path(grant.path).mkdir(mode=0o700, parents=True, exist_ok=True)
                _add(
                    ruleset,
                    grant.path,
                    handled_fs if grant.access == FULL else grant.access & handled_fs,
                    grant.warn,
                    warn,
                )
            if handled_net:
                for port in dict.fromkeys((0, policy.port)):
                    ll.add_port_rule(ruleset, port, ll.NET_BIND_TCP)
        except BaseException:
            os.close(ruleset)
            raise
        return ruleset


_Key = tuple[SandboxPolicy, bytes]

_IDENTITY = struct.Struct("=QQ")


def _identities(policy: SandboxPolicy) -> bytes:
    """Device and inode of each of the instance's own paths, packed (zeros: missing; no file has inode 0).
    Kept per confined instance: one bytes object, where a tuple of pairs of ints held ~500 bytes more."""
    out = bytearray()
    for path in (*policy.areas, policy.config, policy.token):
        try:
            st = os.stat(path)
        except OSError:
            out += _IDENTITY.pack(0, 0)
        else:
            out += _IDENTITY.pack(st.st_dev, st.st_ino)
    return bytes(out)


def _add(ruleset: int, path: str, access: int, loud: bool, warn: Warn) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        if loud:
            warn("sandbox_path_missing", path=path)
        return
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            access &= ll.FILE_ACCESS
        ll.add_path_rule(ruleset, fd, access)
    finally:
        os.close(fd)
