"""Machine-wide port claims, so that every home and every user on one machine gets ports of its own.

A claim is one small file per port, ``<dir>/<port>``, in a directory every eyried on the machine shares:
``$EYRIE_PORTS_DIR``, else ``/var/tmp/eyrie-ports`` (created mode 1777, sticky like ``/tmp``; ``/var/tmp``
because it outlives a reboot and the instances keep their ports across one). The file is written whole under
a temporary name and then hard-linked to ``<port>``: the link fails if the name exists, so the kernel decides
who got a port, and a reader never sees a half-written claim. It holds JSON naming the uid, the home, the
instance (id and directory) and the claiming pid, and is readable by all so a conflict can name its holder.

A claim is stale once its instance is gone: its instance directory no longer exists, or its
``instance.json`` records another port. A claim younger than `GRACE_SECONDS` whose claiming process still
runs is never stale (its instance may be being provisioned, with no ``instance.json`` yet), and neither is
one whose instance cannot be read (another user's home): that port is simply not handed out. A stale claim
is reclaimed under an exclusive ``flock`` on the directory, re-judged there, so two reclaimers never both
win; the sticky bit keeps anyone but its owner (and root) from removing a claim, so another user's stale
claim stays until they reclaim it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from supervisor.errors import PortClaimsUnusable
from supervisor.paths import ID_PATTERN

__all__ = ["CLAIMS_DIR_VAR", "DEFAULT_CLAIMS_DIR", "GRACE_SECONDS", "Claim", "ClaimRegistry", "PortOwner"]

DEFAULT_CLAIMS_DIR = Path("/var/tmp/eyrie-ports")
CLAIMS_DIR_VAR = "EYRIE_PORTS_DIR"
GRACE_SECONDS = 120.0

_DIR_MODE = 0o1777
_CLAIM_MODE = 0o644
_MAX_BYTES = 4096  # a claim, and an instance.json read for its port, are small: anything bigger is hostile
_MAX_INSTANCE_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class PortOwner:
    """Who a port is for: one instance of one home, of one user."""

    home: str
    instance_id: str
    instance_dir: str
    uid: int

    @classmethod
    def of(cls, home: Path, instance_dir: Path, instance_id: str) -> PortOwner:
        return cls(os.path.abspath(home), instance_id, os.path.abspath(instance_dir), os.getuid())

    def describe(self) -> str:
        return f"instance {self.instance_id} of home {self.home} (uid {self.uid})"

    def owns(self, claim: Claim) -> bool:
        """True when ``claim`` is this instance's: same user, id and directory (the home is only named)."""
        other = claim.owner
        return other is not None and (other.uid, other.instance_id, other.instance_dir) == (
            self.uid,
            self.instance_id,
            self.instance_dir,
        )


@dataclass(frozen=True, slots=True)
class Claim:
    """A claim as found on disk; ``owner`` is None when the file is not a claim this release can read."""

    port: int
    owner: PortOwner | None
    pid: int
    file_uid: int
    written_at: float  # the file's mtime
    inode: int

    def describe(self) -> str:
        if self.owner is None:
            return f"an unreadable claim owned by uid {self.file_uid}"
        return f"{self.owner.describe()}, claimed by pid {self.pid}"


class ClaimRegistry:
    """The claims directory: claim, release and read port claims in it."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else Path(os.environ.get(CLAIMS_DIR_VAR) or DEFAULT_CLAIMS_DIR)

    def claim(self, port: int, owner: PortOwner) -> Claim | None:
        """Claim ``port`` for ``owner``: None when it is now (or already was) ``owner``'s, else the claim that
        holds it. A stale claim is reclaimed first."""
        self.ensure()
        found = self.read(port)  # a start finds most claims its own already: no new file to write for them
        if found is None:
            if self._link_new(port, owner):
                return None
            found = self.read(port)
            if found is None:  # released between our attempt and our read
                return None if self._link_new(port, owner) else self.read(port)
        if owner.owns(found):
            return None
        if not self.stale(found):
            return found
        with self._locked():
            again = self.read(port)
            if again is not None and again.inode == found.inode and self.stale(again):
                try:
                    os.unlink(self._path(port))
                except PermissionError:
                    return again
                except FileNotFoundError:
                    pass
            elif again is not None:
                return None if owner.owns(again) else again
            return None if self._link_new(port, owner) else self.read(port)

    def release(self, port: int, owner: PortOwner) -> None:
        """Remove ``owner``'s claim on ``port``; a claim of anyone else is left alone."""
        found = self.read(port)
        if found is not None and owner.owns(found):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path(port))

    def read(self, port: int) -> Claim | None:
        """The claim on ``port``; None when there is none."""
        try:
            fd = os.open(self._path(port), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # a symlink planted at the name: not a claim, but the name is taken
                st = os.lstat(self._path(port))
                return Claim(port, None, 0, st.st_uid, st.st_mtime, st.st_ino)
            raise
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(fd)
            data = f.read(_MAX_BYTES + 1) if stat.S_ISREG(st.st_mode) else b""
        return Claim(port, _owner(data), _pid(data), st.st_uid, st.st_mtime, st.st_ino)

    def claims(self) -> list[Claim]:
        """Every claim in the directory, by port."""
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        found = (self.read(int(name)) for name in names if name.isdigit())
        return sorted((c for c in found if c is not None), key=lambda c: c.port)

    # --- internals

    def _path(self, port: int) -> Path:
        return self.root / str(int(port))

    def ensure(self) -> None:
        """Create the directory (mode 1777) if missing; `PortClaimsUnusable` when it cannot serve."""
        root = self.root
        try:
            root.mkdir(mode=0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise self._unusable(exc.strerror or str(exc)) from exc
        else:
            root.chmod(_DIR_MODE)  # mkdir's mode is filtered by the umask; open to every user, sticky
        st = os.lstat(root)
        if not stat.S_ISDIR(st.st_mode):
            raise self._unusable("it is not a directory")
        shared = st.st_mode & 0o1777 == _DIR_MODE
        if not shared and st.st_uid != os.getuid():
            raise self._unusable(f"it belongs to uid {st.st_uid} and is not mode 1777")
        if not os.access(root, os.W_OK | os.X_OK):
            raise self._unusable("it is not writable")

    def _unusable(self, why: str) -> PortClaimsUnusable:
        return PortClaimsUnusable(
            f"cannot use the port claims directory {self.root}: {why}; fix it, or set {CLAIMS_DIR_VAR} to a"
            " directory (mode 1777) every eyried on this machine shares"
        )

    def _link_new(self, port: int, owner: PortOwner) -> bool:
        """Write a complete claim under a temporary name and link it to the port's name; False if taken."""
        body = json.dumps(
            {
                "port": port,
                "uid": owner.uid,
                "home": owner.home,
                "instance": owner.instance_id,
                "instance_dir": owner.instance_dir,
                "pid": os.getpid(),
            }
        ).encode()
        temp = self.root / f".{port}.{os.getpid()}.{secrets.token_hex(4)}"
        try:
            fd = os.open(
                temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, _CLAIM_MODE
            )
            try:
                os.write(fd, body)
                os.fchmod(fd, _CLAIM_MODE)
            finally:
                os.close(fd)
            try:
                os.link(temp, self._path(port))
            except FileExistsError:
                return False
            return True
        except OSError as exc:
            raise self._unusable(exc.strerror or str(exc)) from exc
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temp)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def stale(self, claim: Claim) -> bool:
        """True when the instance ``claim`` names is gone (see the module docstring)."""
        young = time.time() - claim.written_at < GRACE_SECONDS
        owner = claim.owner
        if owner is None:
            return not young and claim.file_uid == os.getuid()
        if young and _alive(claim.pid):
            return False
        try:
            recorded = _recorded_port(Path(owner.instance_dir) / "instance.json")
        except FileNotFoundError:
            return True
        except NotADirectoryError:
            return True
        except OSError:
            return False  # cannot look (another user's home): treat as held
        return recorded is not None and recorded != claim.port


def _alive(pid: int) -> bool:
    """True while ``pid`` exists (or cannot be told: pid 0)."""
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fields(data: bytes) -> dict[str, object]:
    try:
        found = json.loads(data) if len(data) <= _MAX_BYTES else None
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _owner(data: bytes) -> PortOwner | None:
    f = _fields(data)
    home, instance, directory, uid = f.get("home"), f.get("instance"), f.get("instance_dir"), f.get("uid")
    if not (isinstance(home, str) and isinstance(directory, str) and isinstance(uid, int)):
        return None
    if not isinstance(instance, str) or not ID_PATTERN.fullmatch(instance):
        return None
    return PortOwner(home, instance, directory, uid)


def _pid(data: bytes) -> int:
    pid = _fields(data).get("pid")
    return pid if isinstance(pid, int) else 0


def _recorded_port(path: Path) -> int | None:
    """The port an ``instance.json`` records; None when it cannot be told (unparseable, no port)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = f.read(_MAX_INSTANCE_BYTES + 1)
    if len(data) > _MAX_INSTANCE_BYTES:
        return None
    try:
        port = json.loads(data).get("port")
    except (ValueError, AttributeError):
        return None
    return port if isinstance(port, int) else None
