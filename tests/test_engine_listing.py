"""What a listing reads from the engine: each instance as last written, shared rather than copied, and its
JSON with the current last_seen; both must say what `Engine.get` says."""

from __future__ import annotations

import pytest

from supervisor.models import utcnow
from supervisor.paths import Home
from supervisor.store import Store
from supervisor.testing import faulty, make_runtime, running_engine

pytestmark = pytest.mark.anyio


async def test_listing_json_is_what_get_serialises(home: Home) -> None:
    """Running, seen again, then stopped: the kept JSON equals ``get(id).to_json_dict()``, keys in order."""
    store = Store(home)
    rt = make_runtime(store, "listed", faulty())
    async with running_engine(store) as engine:
        await engine.add(rt)
        await engine.start(rt.instance_id, wait=True)
        assert engine.written(rt.instance_id) is engine.written(rt.instance_id)
        for step in ("running", "seen", "stopped"):
            if step == "seen":  # a probe moves last_seen in memory only, without a write
                engine._actor(rt.instance_id).record.inst.last_seen = utcnow()
            if step == "stopped":
                await engine.stop(rt.instance_id, wait=True)
            expected = engine.get(rt.instance_id).to_json_dict()
            listed = engine.get_json(rt.instance_id)
            assert list(listed.items()) == list(expected.items()), step
            assert engine.written(rt.instance_id).status == engine.get(rt.instance_id).status
