"""The launch hash (what a process was started with, recorded at spawn) and the marker its processes carry
(home and instance id), without processes."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

from supervisor.engine import procfs
from tests._daemon import wait_for
from tests.test_engine_runtime import runtime


class TestLaunchHash:
    def test_env_argv_and_config_change_it_policies_do_not(self) -> None:
        base = runtime(env={"GEN": "0"})
        same = base.launch_hash()
        assert dataclasses.replace(base, env={"GEN": "1"}).launch_hash() != same
        assert dataclasses.replace(base, argv=(*base.argv, "--x")).launch_hash() != same
        assert dataclasses.replace(base, config_hash="abc").launch_hash() != same
        assert dataclasses.replace(base, autostart=not base.autostart).launch_hash() == same

    def test_no_secret_value_goes_into_it(self) -> None:
        """The hash is recorded in instance.json: a token's value must not be guessable from it."""
        one = runtime(env={"API_TOKEN": "secret-one"})
        two = runtime(env={"API_TOKEN": "secret-two"})
        assert one.launch_hash() == two.launch_hash()


class TestMarker:
    def test_home_and_id_read_back_from_a_process(self) -> None:
        env = {"PATH": os.environ.get("PATH", ""), procfs.MARKER_VAR: "abc", procfs.HOME_VAR: "/srv/home"}
        with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], env=env) as child:
            try:
                marker = wait_for(lambda: procfs.read_marker(child.pid), 5, "the environment after exec")
                assert marker == procfs.marker_of("/srv/home", "abc")
            finally:
                child.kill()

    def test_a_process_of_an_earlier_release_carries_the_bare_id(self) -> None:
        env = {"PATH": os.environ.get("PATH", ""), procfs.MARKER_VAR: "abc"}
        with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], env=env) as child:
            try:
                marker = wait_for(lambda: procfs.read_marker(child.pid), 5, "the environment after exec")
                assert marker == "abc" == procfs.marker_of(None, "abc")
            finally:
                child.kill()

    def test_runtime_marker_follows_its_home(self) -> None:
        assert runtime(env={procfs.HOME_VAR: "/h"}).marker == procfs.marker_of("/h", runtime().instance_id)
        assert runtime().marker == runtime().instance_id
