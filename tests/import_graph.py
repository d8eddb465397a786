"""Every import of a package, read from its source with ``ast``: the one walker the
architecture and probe import rules share.

Every import statement counts: at module level, inside a function (a lazy import)
and under ``if TYPE_CHECKING:``. Relative imports and ``from package import module``
are resolved to the module they name.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path


@dataclass(frozen=True)
class Import:
    source: str
    """The importing module, e.g. ``vigild.probes.http``."""
    path: Path
    line: int
    target: str
    """The absolute name of the module imported, e.g. ``vigild.thresholds`` or ``asyncio``."""

    def where(self, root: Path) -> str:
        return f"{self.path.relative_to(root.parent)}:{self.line}"


def modules(root: Path) -> dict[str, Path]:
    """Every module of the package in directory ``root``, by dotted name."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _base(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` reads from."""
    if not node.level:
        return node.module or ""
    package = module.split(".")
    if path.name != "__init__.py":
        package = package[:-1]  # a module's level 1 is its package
    package = package[: len(package) - node.level + 1]
    return ".".join([*package, node.module] if node.module else package)


@cache
def imports(root: Path) -> tuple[Import, ...]:
    """Every import in the package in ``root``, wherever it stands in a module; read once
    per process (vigild's own rules and the probes' read the same tree)."""
    return tuple(_walk(root))


def _walk(root: Path) -> Iterator[Import]:
    known = modules(root)
    for module, path in known.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield Import(module, path, node.lineno, alias.name)
            elif isinstance(node, ast.ImportFrom):
                base = _base(module, path, node)
                # ``from vigild import config`` names a module; ``from vigild.model import
                # Severity`` names a value of one.
                submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
                for target in submodules or [base]:
                    yield Import(module, path, node.lineno, target)


def strongly_connected(graph: Mapping[str, Iterable[str]]) -> list[set[str]]:
    """Tarjan's algorithm: the strongly connected components of ``graph`` (each node's
    successors); a component of more than one node is an import circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def write_package(root: Path, files: dict[str, str], name: str = "vigild") -> Path:
    """A package ``name`` under ``root`` with these modules (paths relative to it), for
    testing a rule on a tree made to break it."""
    package = root / name
    for relative, text in {"__init__.py": "", **files}.items():
        path = package / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(package).parents:
            (package / parent / "__init__.py").touch()
        path.write_text(text, encoding="utf-8")
    return package
