"""The invariants the soak checks after each wave, read from /proc and the home's files, never from eyried.

What is expected comes from the fleet file the planner last wrote (names and env) and the instances the
harness stopped; what is seen comes from ``instances/*/instance.json``, ``removed/`` and the processes that
carry this run's tag. A check returns every `Violation`; none means the fleet has converged.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from supervisor.models import Instance

from .procs import Proc, descendants, snapshot

__all__ = ["Checker", "Expected", "Violation", "daemon_answers"]


@dataclass(frozen=True)
class Violation:
    """One broken invariant: its kind (counted in the summary), the instance or thing, and what was seen."""

    kind: str
    subject: str
    seen: str
    pid: int | None = None  # the offending process, when there is one

    @property
    def key(self) -> tuple[str, str]:
        """What makes two sightings the same violation: its kind and subject."""
        return (self.kind, self.subject)

    def __str__(self) -> str:
        return f"{self.kind} {self.subject}: {self.seen}"


@dataclass(frozen=True)
class Expected:
    """What the fleet should be now: declared names with their env, and the ones stopped on purpose."""

    env: Mapping[str, Mapping[str, str]]
    stopped: Set[str] = frozenset()

    def running(self, name: str) -> bool:
        return name in self.env and name not in self.stopped


def daemon_answers(socket_path: Path, timeout: float = 3.0) -> bool:
    """True when something answers ``GET /v1/status`` with 200 on the control socket."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(socket_path))
            sock.sendall(b"GET /v1/status HTTP/1.1\r\nHost: eyried\r\nConnection: close\r\n\r\n")
            head = sock.recv(64)
    except OSError:
        return False
    return head.startswith(b"HTTP/1.1 200")


def _read_instances(root: Path) -> tuple[list[Instance], list[Violation]]:
    found: list[Instance] = []
    bad: list[Violation] = []
    if not root.is_dir():
        return found, bad
    for directory in sorted(root.iterdir()):
        if directory.name.startswith("."):
            continue
        path = directory / "instance.json"
        try:
            data: Any = json.loads(path.read_bytes())
            inst = Instance.model_validate(data)
        except (OSError, ValueError, ValidationError) as exc:
            bad.append(Violation("invalid-instance-json", directory.name, str(exc).splitlines()[0][:200]))
            continue
        if inst.id != directory.name:
            bad.append(Violation("invalid-instance-json", directory.name, f"id {inst.id!r} in the file"))
            continue
        found.append(inst)
    return found, bad


def _alive(proc: Proc | None, inst: Instance) -> bool:
    return proc is not None and proc.marker == inst.id


@dataclass
class Checker:
    """Checks one home; remembers every instance id it has seen, to know what a removal must leave behind."""

    home: Path
    tag: str
    names_by_id: dict[str, str] = field(default_factory=dict)

    def check(self, expected: Expected) -> list[Violation]:
        procs = snapshot(self.tag)
        instances, violations = _read_instances(self.home / "instances")
        for inst in instances:
            self.names_by_id[inst.id] = inst.name
        violations += self._daemon(procs)
        by_name: dict[str, list[Instance]] = {}
        for inst in instances:
            by_name.setdefault(inst.name, []).append(inst)
        for name in sorted(expected.env):
            found = by_name.get(name, [])
            if len(found) > 1:
                ids = ", ".join(i.id for i in found)
                violations.append(Violation("duplicate-instance", name, f"{len(found)} directories: {ids}"))
            elif not found:
                violations.append(Violation("missing-instance", name, "declared, no instance directory"))
            elif expected.running(name):
                violations += self._running(found[0], expected.env[name], procs)
            elif found[0].status.value == "running":
                violations.append(
                    Violation("stopped-but-running", name, f"status running, pid {found[0].pid}")
                )
        violations += self._processes(instances, expected, procs)
        violations += self._removed(instances, expected)
        return violations

    def _daemon(self, procs: Mapping[int, Proc]) -> list[Violation]:
        daemons = sorted(p.pid for p in procs.values() if p.is_daemon)
        if len(daemons) != 1:
            return [Violation("daemon-count", "eyried", f"{len(daemons)} daemon processes: {daemons}")]
        if not daemon_answers(self.home / "run" / "eyried.sock"):
            return [Violation("daemon-silent", "eyried", f"pid {daemons[0]} does not answer GET /v1/status")]
        return []

    def _running(self, inst: Instance, env: Mapping[str, str], procs: Mapping[int, Proc]) -> list[Violation]:
        status = inst.status.value
        if status != "running" or not inst.pid:
            detail = f"status {status}, phase {inst.phase}, detail {inst.status_detail!r}"
            return [Violation("not-running", inst.name, f"{detail}, last_error {inst.last_error!r}")]
        proc = procs.get(inst.pid)
        if not _alive(proc, inst):
            return [Violation("pid-dead", inst.name, f"recorded pid {inst.pid} is not a live process of it")]
        assert proc is not None
        stale = {k: (v, proc.env.get(k)) for k, v in env.items() if proc.env.get(k) != v}
        if stale:
            shown = ", ".join(
                f"{k}: declared {want!r}, process has {got!r}" for k, (want, got) in stale.items()
            )
            return [Violation("stale-env", inst.name, f"pid {inst.pid}: {shown}")]
        return []

    def _processes(
        self, instances: list[Instance], expected: Expected, procs: Mapping[int, Proc]
    ) -> list[Violation]:
        """Every process carrying an instance's marker belongs to the one tree of a running instance."""
        by_id = {inst.id: inst for inst in instances}
        violations: list[Violation] = []
        trees: dict[str, set[int]] = {}
        for proc in sorted(procs.values(), key=lambda p: p.pid):
            marker = proc.marker
            if marker is None or proc.env.get("CHAOS_ROLE") == "squatter":
                continue
            inst = by_id.get(marker)
            name = inst.name if inst else self.names_by_id.get(marker, f"id {marker}")
            what = f"pid {proc.pid} ({' '.join(proc.argv[-4:])})"
            if inst is None:
                violations.append(
                    Violation("process-of-removed", name, f"{what}, no instance directory", proc.pid)
                )
            elif not expected.running(inst.name):
                state = "stopped" if inst.name in expected.env else "removed"
                violations.append(Violation(f"process-of-{state}", name, what, proc.pid))
            elif inst.status.value == "running" and inst.pid and _alive(procs.get(inst.pid), inst):
                if marker not in trees:
                    trees[marker] = descendants(dict(procs), inst.pid)
                if proc.pid not in trees[marker] and not self._later_detached(proc, inst, procs):
                    seen = f"{what}, outside pid {inst.pid}'s tree"
                    violations.append(Violation("stray-process", name, seen, proc.pid))
        return violations

    @staticmethod
    def _later_detached(proc: Proc, inst: Instance, procs: Mapping[int, Proc]) -> bool:
        """A process the running agent left in its own session: started after it, not a daemon's child."""
        assert inst.pid is not None
        parent = procs.get(proc.ppid)
        return proc.start_ticks >= procs[inst.pid].start_ticks and not (parent and parent.is_daemon)

    def _removed(self, instances: list[Instance], expected: Expected) -> list[Violation]:
        """Nothing of a removed instance outside the trash; with a trash, its directory is in there."""
        violations = [
            Violation("removed-files-left", inst.name, f"instances/{inst.id} still there")
            for inst in instances
            if inst.name not in expected.env
        ]
        trash = self.home / "removed"
        if trash.is_dir():
            present = {inst.id for inst in instances}
            kept = " ".join(p.name for p in trash.iterdir())
            for inst_id, name in sorted(self.names_by_id.items()):
                if name not in expected.env and inst_id not in present and inst_id not in kept:
                    violations.append(Violation("removed-files-lost", name, f"{inst_id} not in removed/"))
        return violations
