"""Every public module says what it exports, truthfully (anyio's ``test_all_attributes`` habit)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import supervisor
from supervisor._lazy import type_checking_imports


def _public_modules() -> list[str]:
    names = ["supervisor"]
    for info in pkgutil.walk_packages(supervisor.__path__, "supervisor."):
        parts = info.name.split(".")
        if any(part.startswith("_") for part in parts[1:]):
            continue  # private modules, and __main__ entry points that run on import
        names.append(info.name)
    return sorted(names)


PUBLIC = _public_modules()
LAZY = [name for name in PUBLIC if "lazy_exports" in vars(importlib.import_module(name))]


def _defined_here(module: ModuleType) -> set[str]:
    """Public classes and functions whose home is this module."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == module.__name__
    }


class TestAll:
    @pytest.mark.parametrize("name", PUBLIC)
    def test_every_public_module_declares_all(self, name: str) -> None:
        """A public module lists its exports in ``__all__``, each once."""
        module = importlib.import_module(name)
        exported = getattr(module, "__all__", None)
        assert isinstance(exported, list), f"{name} has no __all__ list"
        assert len(exported) == len(set(exported)), f"{name}.__all__ repeats a name"

    @pytest.mark.parametrize("name", PUBLIC)
    def test_every_exported_name_exists(self, name: str) -> None:
        """Each name in ``__all__`` resolves (lazy packages import it on the spot)."""
        module = importlib.import_module(name)
        missing = [attr for attr in module.__all__ if not hasattr(module, attr)]
        assert not missing, f"{name}.__all__ names what it lacks: {missing}"

    @pytest.mark.parametrize("name", PUBLIC)
    def test_every_public_definition_is_exported(self, name: str) -> None:
        """A public class or function defined in a public module is part of its ``__all__``."""
        module = importlib.import_module(name)
        unlisted = sorted(_defined_here(module) - set(module.__all__))
        assert not unlisted, f"{name} defines public names missing from __all__: {unlisted}"


class TestLazyPackages:
    def test_lazy_packages_found(self) -> None:
        """The engine and fleet packages load their names lazily (the list below is not empty by accident)."""
        assert {"supervisor.engine", "supervisor.fleet"} <= set(LAZY)

    @pytest.mark.parametrize("name", LAZY)
    def test_export_map_equals_all(self, name: str) -> None:
        """The names a lazy package can load are exactly its ``__all__``."""
        module = importlib.import_module(name)
        assert module.__file__ is not None
        assert set(type_checking_imports(module.__file__)) == set(module.__all__)

    @pytest.mark.parametrize("name", LAZY)
    def test_lazy_name_is_the_submodule_object(self, name: str) -> None:
        """A lazily loaded name is the very object its submodule defines."""
        module = importlib.import_module(name)
        assert module.__file__ is not None
        for attr, home in type_checking_imports(module.__file__).items():
            assert getattr(module, attr) is getattr(importlib.import_module(home), attr)
