"""Works one instance store from a process of its own, for the cross-process store and port tests.

    store_writer.py update ROOT ID FIELD COUNT   add 1 to the integer FIELD of instance ID, COUNT times
    store_writer.py reserve ROOT TAG COUNT       COUNT times: reserve a port and save an instance using it

It prints ``ready``, waits for one line on stdin (so that several writers start together), works, and prints
``done`` (``reserve`` first prints each port it got, one a line).
"""

from __future__ import annotations

import sys
from pathlib import Path

from supervisor.models import Instance, new_instance_id
from supervisor.ports import port_reservation
from supervisor.store import Store


def _update(store: Store, instance_id: str, field: str, count: int) -> None:
    def bump(inst: Instance) -> None:
        setattr(inst, field, getattr(inst, field) + 1)

    for _ in range(count):
        store.update(instance_id, bump)


def _reserve(store: Store, tag: str, count: int) -> None:
    for i in range(count):
        with port_reservation(store) as port:
            inst = Instance(id=new_instance_id(), name=f"{tag}-{i}", framework="embedded", port=port)
            store.create(inst)
        print(port, flush=True)


def main(argv: list[str]) -> int:
    command, root, *args = argv
    store = Store(Path(root))
    print("ready", flush=True)
    sys.stdin.readline()
    if command == "update":
        instance_id, field, count = args
        _update(store, instance_id, field, int(count))
    elif command == "reserve":
        tag, count = args
        _reserve(store, tag, int(count))
    else:
        print(f"unknown command {command!r}", file=sys.stderr)
        return 2
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
