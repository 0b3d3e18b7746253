"""``PROJECT.md``: the one file in an agent's workspace that eyried keeps current.

Identity and memory files are the agent's once provisioning wrote them: eyried never writes them again. What
can change under an agent (its project's name, goal and description, whom it reports to) lives in
``PROJECT.md`` instead, which the identity files name, and which eyried renders again whenever the fleet file
changes any of it. An instance with neither a project nor a parent has none. The workspace is the agent's
to write, so the file is replaced by a temp file and a rename: a symlink planted in its place is replaced,
never followed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from supervisor._fs import atomic_write
from supervisor._resources import data_dir
from supervisor._safe_read import read_bytes
from supervisor.errors import ProvisionError
from supervisor.models import TemplateContext, display_name_for

__all__ = [
    "PROJECT_FILE",
    "ProjectContext",
    "builtin_project_template",
    "project_file_digest",
    "render_project_file",
    "write_project_file",
]

PROJECT_FILE = "PROJECT.md"
_MODE = 0o644
_MAX_BYTES = 64 * 1024


@dataclass(eq=False)
class ProjectContext:
    """What an instance's ``PROJECT.md`` says: its project (id, name, goal, description) and its parent."""

    project_id: str = ""
    project_name: str = ""
    goal: str = ""
    description: str = ""
    parent_name: str = ""

    @property
    def parent_agent(self) -> str:
        """The parent as people and the agent API know it: ``Apollo Lead (apollo-lead)``."""
        if not self.parent_name:
            return ""
        return f"{display_name_for(self.parent_name)} ({self.parent_name})"

    @property
    def has_file(self) -> bool:
        """Whether it makes a ``PROJECT.md``: an instance with neither a project nor a parent has none."""
        return bool(self.project_name or self.project_id or self.parent_name)

    def template_fields(self) -> dict[str, str]:
        """The `TemplateContext` fields this context fills."""
        return {
            "project_name": self.project_name or self.project_id,
            "project_goal": self.goal,
            "project_description": self.description,
            "parent_agent": self.parent_agent,
        }


@cache
def builtin_project_template() -> str:
    """The shipped ``config/templates/PROJECT.md``."""
    from supervisor.personas import check_template  # templates load with the first project that has a file

    path = data_dir("config") / "templates" / PROJECT_FILE
    text = path.read_text(encoding="utf-8")
    try:
        check_template(PROJECT_FILE, text)
    except ValueError as exc:
        raise ProvisionError(f"{path}: {exc}") from None
    return text


def render_project_file(ctx: TemplateContext, template: str | None = None) -> str | None:
    """The file's text (``template``: a persona's own, else the shipped one); None for an instance with
    neither a project nor a parent."""
    if not (ctx.project_name or ctx.parent_agent):
        return None
    from supervisor.personas import render_template

    return render_template(PROJECT_FILE, template or builtin_project_template(), ctx)


def project_file_digest(text: str | None) -> str:
    """sha256 of the text; ``""`` for no file."""
    return hashlib.sha256(text.encode()).hexdigest() if text is not None else ""


def write_project_file(workspace: str | Path, text: str | None) -> bool:
    """Make ``workspace/PROJECT.md`` hold ``text`` (None: no file); True when it changed anything."""
    path = os.path.join(workspace, PROJECT_FILE)  # a start looks at one per instance: no Path parsed
    try:
        if text is None:
            if not os.path.lexists(path):
                return False
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return True
        with contextlib.suppress(OSError):  # missing, or not a regular file (a symlink, a FIFO): replaced
            if read_bytes(path, limit=_MAX_BYTES, follow_symlinks=False) == text.encode():
                return False
        # not fsynced: eyried renders it again whenever it builds the instance's runtime (every start)
        atomic_write(Path(path), text, mode=_MODE, durable=False)
    except OSError as exc:
        raise ProvisionError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return True
