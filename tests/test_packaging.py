"""The wheel carries ``config/``, ``units/`` and the testing helpers, and the installed package finds them
without the checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Run by the installed package's interpreter from a directory outside the repository.
PROBE = """
import json, sys
import supervisor
from supervisor._resources import data_dir
from supervisor.frameworks.registry import builtin_frameworks
config, units = data_dir("config"), data_dir("units")
print(json.dumps({
    "package": supervisor.__file__,
    "config": str(config),
    "units": str(units),
    "config_files": sorted(p.name for p in config.iterdir()),
    "units_files": sorted(p.name for p in units.iterdir()),
    "frameworks": sorted(builtin_frameworks()),
    "path": sys.path,
}))
"""


def _run(*args: str | Path, cwd: Path) -> None:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=120)
    if proc.returncode:
        pytest.fail(f"{' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


@dataclass(frozen=True)
class Installed:
    """The package installed from its wheel into a fresh environment, and a directory outside the checkout."""

    env_dir: Path
    python: Path
    outside: Path
    env: dict[str, str]


@pytest.fixture(scope="class")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp_path = tmp_path_factory.mktemp("wheel")
    dist = tmp_path / "dist"
    pip = (sys.executable, "-m", "pip")
    _run(*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, REPO, cwd=tmp_path)
    [wheel] = dist.glob("eyrie_supervisor-*.whl")

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    # The dependencies come from the environment running this test (its site-packages, not the
    # editable checkout, which a plain path line does not activate).
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path(subprocess.check_output([python, "-c", purelib], text=True).strip())
    (site / "_test_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run(*pip, "--python", python, "install", "--no-deps", "--no-index", "-q", wheel, cwd=tmp_path)

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return Installed(env_dir, python, outside, env)


@pytest.mark.slow
class TestInstalledWheel:
    def test_installed_package_finds_its_data(self, installed: Installed) -> None:
        """Installed from a wheel, the package finds config/ and units/ inside itself, not the repo."""
        env_dir, python, outside, env = installed.env_dir, installed.python, installed.outside, installed.env
        out = subprocess.run(
            [python, "-c", PROBE], cwd=outside, env=env, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        found = json.loads(out.stdout)

        package_dir = Path(found["package"]).parent
        assert package_dir.is_relative_to(env_dir), f"imported from {package_dir}, not the installed wheel"
        assert Path(found["config"]) == package_dir / "_data" / "config"
        assert Path(found["units"]) == package_dir / "_data" / "units"
        assert not any(Path(p).resolve() == REPO for p in found["path"] if p)
        assert "frameworks.yaml" in found["config_files"]
        assert found["units_files"], "units/ is empty in the wheel"
        assert sorted(found["units_files"]) == sorted(p.name for p in (REPO / "units").iterdir())
        assert {"embedded", "zeroclaw", "openclaw", "hermes", "picoclaw"} <= set(found["frameworks"])

    def test_installed_faulty_agent_runs(self, installed: Installed) -> None:
        """The fault-injecting agent ships in the wheel: ``python -m supervisor.testing.faulty_agent`` runs
        from the installed package, and `supervisor.testing.faulty` names that command."""
        agent = subprocess.run(
            [installed.python, "-m", "supervisor.testing.faulty_agent", "--crash-on-start", "7"],
            cwd=installed.outside,
            env=installed.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert agent.returncode == 7, agent.stderr
        assert agent.stdout.startswith("faulty ") and "crashing on start with 7" in agent.stdout
        where = "import supervisor.testing as t; print(t.faulty()[2]); print(t.__file__)"
        out = subprocess.run(
            [installed.python, "-c", where],
            cwd=installed.outside,
            env=installed.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        module, package_file = out.stdout.split()
        assert module == "supervisor.testing.faulty_agent"
        assert Path(package_file).is_relative_to(installed.env_dir)
