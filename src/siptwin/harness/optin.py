"""Which folders' YAML files are scenarios: the opt-in rule of the pytest entry point.

Standard library only: ``siptwin.pytest_plugin`` imports this at load time in every pytest run
of an environment where siptwin is installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MARKER = ".siptwin-scenarios"  # a folder holding this file opted in (scenarios/ does)


def marked_args(config: Any) -> bool:
    for arg in config.args:
        path = Path(str(arg).split("::")[0]).resolve()
        if any((folder / MARKER).is_file() for folder in (path, *path.parents)):
            return True
    return False


def scenario_root(config: Any, path: Path) -> Path | None:
    """The nearest folder above ``path`` that opted in, or None."""
    roots: frozenset[Path] = getattr(config, "_siptwin_roots", frozenset())
    for folder in path.resolve().parents:
        if folder in roots or (folder / MARKER).is_file():
            return folder
    return None
