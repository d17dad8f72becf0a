"""The package import graph of ``src/siptwin`` and the one-way rule it must follow.

Every import statement counts, wherever it is: at module level, inside a function (lazy), or
under ``if TYPE_CHECKING:`` - a type-only import still ties the two packages together for a
reader and for mypy. ``tests/test_layers.py`` runs :func:`violations` on the source tree.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

# Bottom-up. A package may import packages of lower layers only; packages of one layer are
# siblings and may not import each other. docs/architecture.md draws the same picture.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"sip", "settings", "runtime", "limits"}),  # leaves
    frozenset({"transport", "model", "report"}),  # report names the settings of a run
    frozenset({"ua", "cloud"}),
    frozenset({"regions"}),
    frozenset({"voice", "diagnostics"}),
    frozenset({"twin"}),  # what `siptwin up` composes
    frozenset({"harness"}),  # the conformance suite
    # `siptwin run` drives the suite, and pytest loads the suite through its plugin entry point
    # (which imports the suite lazily, inside hooks): both sit above harness.
    frozenset({"cli", "pytest_plugin"}),
    frozenset({"__main__"}),
)
# Stricter than its layer: the shared vocabulary names SIP types and nothing else.
ONLY_IMPORTS = {"model": frozenset({"sip"})}
# The suite is not part of the product: nothing the product runs may import it.
SUITE = "harness"
ENTRY_POINTS = frozenset({"cli", "pytest_plugin", "__main__"})


def layer_of(package: str) -> int:
    for index, layer in enumerate(LAYERS):
        if package in layer:
            return index
    raise KeyError(f"package {package!r} has no layer: add it to LAYERS")


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(root: Path, path: Path) -> list[tuple[str, int]]:
    """(absolute name imported, line) for every import in ``path``; for ``from X import y``
    both ``X`` and ``X.y`` (``y`` may be a module)."""
    name = _module_name(root, path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, node.lineno))
            found += [(f"{target}.{alias.name}", node.lineno) for alias in node.names]
    return found


def _package(root: Path, module: str) -> str | None:
    """The top-level package (or top-level module) of ``module`` inside ``root``, else None."""
    parts = module.split(".")
    if parts[0] != root.name or len(parts) < 2:
        return None
    name = parts[1]
    return name if (root / name).is_dir() or (root / f"{name}.py").exists() else None


def package_edges(root: Path) -> dict[tuple[str, str], list[str]]:
    """(importing package, imported package) -> the ``file:line`` sites, between packages."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(root.rglob("*.py")):
        source = _package(root, _module_name(root, path))
        if source is None:
            continue
        for module, line in _imports(root, path):
            target = _package(root, module)
            site = f"{path.relative_to(root)}:{line}"
            if target is not None and target != source and site not in edges[(source, target)]:
                edges[(source, target)].append(site)
    return dict(edges)


def violations(root: Path) -> list[str]:
    """Every import that breaks the rule, one sentence each (empty: the graph is one-way)."""
    edges = package_edges(root)
    found = []
    for (source, target), sites in sorted(edges.items()):
        where = ", ".join(sites)
        if target == SUITE and source not in ENTRY_POINTS:
            found.append(f"{source} imports the test suite ({target}): {where}")
        elif source in ONLY_IMPORTS and target not in ONLY_IMPORTS[source]:
            found.append(f"{source} may import only {sorted(ONLY_IMPORTS[source])}, "
                         f"not {target}: {where}")
        elif layer_of(target) > layer_of(source):
            found.append(f"{source} imports {target}, a higher layer: {where}")
        elif layer_of(target) == layer_of(source):
            found.append(f"{source} imports its sibling {target}: {where}")
        if (target, source) in edges and source < target:
            found.append(f"{source} and {target} import each other: {where}; "
                         f"{', '.join(edges[(target, source)])}")
    return found
