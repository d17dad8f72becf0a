"""The import contract: packages depend one way, bottom-up (docs/architecture.md)."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.layers import LAYERS, package_edges, violations

SOURCE = Path(__file__).resolve().parents[1] / "src" / "siptwin"


def test_every_package_imports_only_packages_below_it() -> None:
    assert violations(SOURCE) == []


def test_every_package_has_a_layer() -> None:
    packages = {p.name for p in SOURCE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    packages |= {p.stem for p in SOURCE.glob("*.py") if p.stem != "__init__"}
    assert packages == set().union(*LAYERS)


def test_the_graph_sees_lazy_and_type_checking_imports() -> None:
    edges = package_edges(SOURCE)
    assert ("cli", "harness") in edges  # only inside cmd_run
    assert ("twin", "voice") in edges and ("voice", "ua") in edges


def _inject(root: Path, module: str, line: str) -> None:
    path = root / module
    path.write_text(path.read_text() + "\n" + line + "\n")


def test_the_checker_catches_an_upward_import(tmp_path) -> None:
    copy = tmp_path / "siptwin"
    shutil.copytree(SOURCE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.so", "data"))
    assert violations(copy) == []
    _inject(copy, "cloud/view.py", "def _late():\n    from ..regions import node  # noqa")
    _inject(copy, "regions/dns.py", "from ..harness import engine")
    _inject(copy, "model/codes.py", "if TYPE_CHECKING:\n    from ..settings import Fidelity")
    _inject(copy, "voice/dial.py", "from ..diagnostics import explain")
    found = violations(copy)
    assert any(v.startswith("cloud imports regions, a higher layer: cloud/view.py:") for v in found)
    assert any(v.startswith("regions imports the test suite (harness)") for v in found)
    assert any(v.startswith("model may import only ['sip'], not settings") for v in found)
    assert any(v.startswith("voice imports its sibling diagnostics") for v in found)
    assert any(v.startswith("cloud and regions import each other") for v in found)
