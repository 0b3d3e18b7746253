"""A confined child started by ``posix_spawn`` from a thread that confined itself first, and then ends.

Landlock, no_new_privs and the capability sets belong to a thread, not to its process, and a child starts
with those of the thread that cloned it. So a fresh thread applies the instance's confinement to itself
(`supervisor.sandbox.child.Confiner`: system calls only, prepared beforehand), then starts the child as an
unconfined one is started (`supervisor.engine._posix_spawn`), and exits; no other thread of the daemon is
touched. The child is the daemon's own, reaped through its pidfd. This costs a thread's start and end
(a fraction of a millisecond) where the spawn helper (`supervisor.sandbox.spawner`) costs a round trip
to another process and a fork of it, 2–3 ms; the helper stays for what a thread cannot do: a limit on
open files other than the daemon's, which belongs to a process.
"""

from __future__ import annotations

import _thread
from collections.abc import Mapping, Sequence
from pathlib import Path

from supervisor.engine._posix_spawn import posix_spawn
from supervisor.sandbox.child import Confiner
from supervisor.sandbox.spawner import ConfinementFailed

__all__ = ["spawn_confined"]


def spawn_confined(
    confine: Confiner, executable: str, argv: Sequence[str], env: Mapping[str, str], *, cwd: Path, log_fd: int
) -> int:
    """Start ``argv`` confined by ``confine``; its pid once it has exec'd. `ConfinementFailed` when the
    confinement could not be applied (nothing was started), `OSError` when the exec failed."""
    outcome: list[int | BaseException] = []
    done = _thread.allocate_lock()
    done.acquire()

    def confine_and_spawn() -> None:
        confined = False
        try:
            confine()
            confined = True
            outcome.append(posix_spawn(executable, argv, env, cwd=str(cwd), log_fd=log_fd))
        except OSError as exc:
            outcome.append(exc if confined else ConfinementFailed(exc.strerror or str(exc)))
        except BaseException as exc:  # handed to the caller's thread
            outcome.append(exc)
        finally:
            done.release()

    # a bare thread: `threading.Thread` would make the caller wait for it to start, a wake-up more
    _thread.start_new_thread(confine_and_spawn, ())
    done.acquire()
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result
