"""The daemon's heap once the start-up is over: its free pages handed back, big buffers mapped on their own;
allocating goes on as before, in every thread."""

from __future__ import annotations

import subprocess
import sys


def test_a_compacted_heap_still_serves_big_and_small_buffers_in_threads() -> None:
    script = (
        "import threading\n"
        "from supervisor.daemon._malloc import compact_heap, one_malloc_arena\n"
        "one_malloc_arena()\n"
        "junk = [bytearray(300_000) for _ in range(20)]\n"
        "del junk\n"
        "print(compact_heap())\n"
        "out = []\n"
        "def work():\n"
        "    for _ in range(50):\n"
        "        out.append(len(bytearray(1 << 20)) + len(bytes(100)))\n"
        "threads = [threading.Thread(target=work) for _ in range(4)]\n"
        "[t.start() for t in threads]\n"
        "[t.join() for t in threads]\n"
        "print(sum(out), compact_heap())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["True", str(200 * ((1 << 20) + 100)), "True"]
