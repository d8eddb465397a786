"""The import graph of vigild, read from the source with ``ast``.

Every import statement counts: at module level, inside a function (a lazy
import) and under ``if TYPE_CHECKING:``. config.py is a leaf (the models of the
file), the composition sits above it in vigild.assembly, and the layers below
the daemon never import one another in a circle.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import vigild

ROOT = Path(vigild.__file__).parent

LAYERS = (
    "vigild.config",
    "vigild.thresholds",
    "vigild.probes",
    "vigild.alerting",
    "vigild.storage",
)
"""Groups of modules that must not import each other in a circle, at any level."""


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _modules() -> dict[str, Path]:
    return {_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The vigild module ``name`` is, or is in (``vigild.config.X`` is vigild.config)."""
    modules = _modules()
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


@cache
def _imports(module: str) -> frozenset[str]:
    """The vigild modules ``module`` imports, wherever the import stands."""
    path = _modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from vigild.probes import http`` imports a module too.
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        for name in names:
            if name.startswith("vigild") and (resolved := _resolve(name)) is not None:
                found.add(resolved)
    found.discard(module)
    return frozenset(found)


def _reachable(start: str) -> set[str]:
    seen = {start}
    pending = [start]
    while pending:
        for other in _imports(pending.pop()):
            if other not in seen:
                seen.add(other)
                pending.append(other)
    return seen


def _layer(module: str) -> str | None:
    for layer in LAYERS:
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def _layer_edges() -> Iterator[tuple[str, str, str, str]]:
    """(layer, layer it imports, module, module imported) across layers."""
    for module in _modules():
        here = _layer(module)
        for other in _imports(module):
            there = _layer(other)
            if here is not None and there is not None and here != there:
                yield here, there, module, other


def test_the_reader_sees_lazy_relative_and_type_checking_imports() -> None:
    assert "vigild.model" in _imports("vigild.thresholds")
    assert "vigild.config" in _imports("vigild.thresholds")  # under TYPE_CHECKING only
    assert "vigild.schedule" in _imports("vigild.config")  # inside a validator
    assert "vigild.probes.base" in _imports("vigild.assembly")


def test_config_is_a_leaf() -> None:
    """Nothing config.py imports, directly or through another module, at any level, is
    a probe, alerting, storage, daemon or threshold module."""
    forbidden = ("vigild.probes", "vigild.alerting", "vigild.storage", "vigild.daemon")
    wrong = sorted(
        module
        for module in _reachable("vigild.config")
        if module == "vigild.thresholds" or module.startswith(forbidden)
    )
    assert not wrong


def test_no_circle_between_config_thresholds_probes_alerting_and_storage() -> None:
    graph: dict[str, dict[str, str]] = {}
    for here, there, module, other in _layer_edges():
        graph.setdefault(here, {}).setdefault(there, f"{module} imports {other}")

    def circle(path: list[str]) -> list[str] | None:
        for there in sorted(graph.get(path[-1], {})):
            if there in path:
                return [*path[path.index(there) :], there]
            if (found := circle([*path, there])) is not None:
                return found
        return None

    for layer in LAYERS:
        found = circle([layer])
        if found is not None:
            steps = [graph[a][b] for a, b in itertools.pairwise(found)]
            raise AssertionError(" → ".join(found) + ": " + "; ".join(steps))


def test_probes_reach_no_threshold_or_alerting_module() -> None:
    """Through any chain of imports: ``import vigild.probes.http`` used to load
    vigild.thresholds through the config."""
    for module in _modules():
        if module.startswith("vigild.probes"):
            reached = _reachable(module)
            assert "vigild.thresholds" not in reached, module
            assert not any(m.startswith("vigild.alerting") for m in reached), module


def test_thresholds_reach_no_io_module() -> None:
    io = (
        "vigild.probes",
        "vigild.alerting",
        "vigild.storage",
        "vigild.daemon",
        "vigild.engine_api",
    )
    wrong = sorted(m for m in _reachable("vigild.thresholds") if m.startswith(io))
    assert not wrong
