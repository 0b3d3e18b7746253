"""Records kept per instance hold no set of the fields set: they read, copy, change and write as before."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from supervisor.control.hub import EventHub
from supervisor.control.schema import InstanceView
from supervisor.engine._record import assign
from supervisor.engine.events import Event
from supervisor.models import Instance, InstanceStatus, LastExit, utcnow

RECORD = {
    "id": "13fa23d6-477e-4b9f-9e9a-7cd9cafc2d50",
    "name": "sleeper-0071",
    "framework": "embedded",
    "port": 51071,
    "status": "running",
    "pid": 4221,
    "desired": "running",
    "cmdline": ["sleep", "infinity"],
    "last_exit": {"signal": 15, "time": "2026-11-30T23:25:54.232519Z", "reason": ""},
    "future_key": None,
    "another_future_key": {"kept": True},
}


def test_a_record_reads_and_writes_back_the_same_json() -> None:
    inst = Instance.model_validate_json(json.dumps(RECORD))
    written = inst.to_json_dict()
    for key, value in RECORD.items():
        assert written[key] == value


def test_copies_change_apart_from_the_original() -> None:
    inst = Instance.model_validate(RECORD)
    changed = inst.model_copy(update={"pid": 7, "status": InstanceStatus.STOPPED})
    changed.status_detail = "stopped by hand"
    assign(changed, restart_count=3, last_exit=LastExit(code=1))
    assert (inst.pid, inst.status, inst.status_detail, inst.restart_count) == (
        4221,
        InstanceStatus.RUNNING,
        "",
        0,
    )
    assert (changed.pid, changed.status, changed.status_detail, changed.restart_count) == (
        7,
        InstanceStatus.STOPPED,
        "stopped by hand",
        3,
    )
    assert changed.last_exit == LastExit(code=1)
    assert changed.to_json_dict()["pid"] == 7


def test_equal_records_compare_equal_however_made() -> None:
    parsed = Instance.model_validate_json(json.dumps(RECORD))
    built = Instance(**RECORD)
    assert parsed == built == parsed.model_copy() == copy.deepcopy(parsed)
    assert parsed != parsed.model_copy(update={"pid": 1})


def test_records_share_one_fields_set() -> None:
    records = [Instance.model_validate(RECORD), Instance(id=RECORD["id"], name="b")]
    records.append(records[0].model_copy(update={"pid": 9}))
    records.append(copy.deepcopy(records[0]))
    view = InstanceView(name="a", extra_key="kept")
    shared = {id(r.__pydantic_fields_set__) for r in (*records, view)}
    assert len(shared) == 1
    assert view.model_dump()["extra_key"] == "kept"


def test_the_daemon_keeps_to_one_malloc_arena_and_its_threads_still_allocate() -> None:
    script = (
        "import threading\n"
        "from supervisor.daemon._malloc import one_malloc_arena\n"
        "print(one_malloc_arena())\n"
        "out = []\n"
        "threads = [threading.Thread(target=lambda: out.append(len(bytearray(1 << 20)))) for _ in range(4)]\n"
        "[t.start() for t in threads]\n"
        "[t.join() for t in threads]\n"
        "print(sum(out))\n"
    )
    command = [sys.executable, "-c", script]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["True", str(4 << 20)]


@pytest.mark.anyio
async def test_events_kept_for_the_api_replay_whole_and_in_order() -> None:
    hub = EventHub(keep_until_served=True)
    for i in range(300):
        event = Event(time=utcnow(), event="transition", instance=f"a-{i}", pid=i, to_status="running")
        hub.publish(event.model_copy(update={"data": {"i": i}}))
    async with hub.subscribe(kept=True) as stream:
        got = [await anext(stream) for _ in range(300)]
    assert [e.id for e in got] == [f"{hub.start}-{n}" for n in range(1, 301)]
    last = json.loads(got[-1].model_dump_json())
    assert (last["instance"], last["pid"], last["data"]) == ("a-299", 299, {"i": 299})
    assert last["to_status"] == "running"
