"""What the probe modules may import, read from their source with ``ast``.

Every import statement counts: at module level, inside a function (a lazy
import), and under ``if TYPE_CHECKING:``. A probe module is one story (one
kind of target); what several of them share lives in the shared modules
below, so no probe reaches into another probe for a helper, and the shared
modules never reach back into a probe (which would close a circle).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import vigild.probes

PROBES = Path(vigild.probes.__file__).parent
PACKAGE = "vigild.probes"

SHARED = frozenset({"base", "_net", "exposition", "selectors", "promql", "certificate"})
"""base: the Probe class and its registry; _net: bounded reads, closing inside the deadline,
the TLS handshake and contexts, connection error wording; exposition: the Prometheus text
reader; selectors: series selectors and latency units (the prometheus probe and the CLI);
promql: increases and quantiles over two scrapes; certificate: a DER certificate's expiry
(the http and tls probes). A module named ``<probe>_<job>`` (``container_stats``) is a part
of that one probe, split off by job."""

FORBIDDEN = ("vigild.alerting", "vigild.thresholds", "vigild.daemon")
"""A probe turns a target into Observations; judging, alerting and serving come after it."""


def _modules() -> dict[str, ast.Module]:
    return {
        path.stem: ast.parse(path.read_text(), str(path))
        for path in sorted(PROBES.glob("*.py"))
        if path.stem != "__init__"
    }


def _imported(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every module an import in ``tree`` names, wherever it stands."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the package the probe modules live in
                parts = PACKAGE.split(".")[: len(PACKAGE.split(".")) - node.level + 1]
                base = ".".join([*parts, node.module] if node.module else parts)
            else:
                base = node.module or ""
            yield node.lineno, base
            for alias in node.names:  # ``from vigild.probes import http`` names a module too
                if (PROBES / f"{alias.name}.py").is_file() and base == PACKAGE:
                    yield node.lineno, f"{base}.{alias.name}"


def _probe_imports(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, module stem) of every vigild.probes module ``tree`` imports."""
    for line, name in _imported(tree):
        if name.startswith(PACKAGE + "."):
            yield line, name.removeprefix(PACKAGE + ".").split(".")[0]


def test_the_reader_sees_lazy_and_type_checking_imports() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from vigild.daemon.app import App\n"
        "def f():\n    from vigild.probes.tls import TlsProbe\n"
        "def g():\n    from . import http\n"
    )
    assert set(_imported(tree)) >= {
        (3, "vigild.daemon.app"),
        (5, "vigild.probes.tls"),
        (7, "vigild.probes.http"),
    }


def test_probes_import_no_other_probe_only_the_shared_modules() -> None:
    wrong = [
        f"{stem}.py:{line} imports probes.{other}"
        for stem, tree in _modules().items()
        for line, other in _probe_imports(tree)
        if other != stem and other not in SHARED and not other.startswith(stem + "_")
    ]
    assert not wrong, "a probe takes what it shares from " + ", ".join(sorted(SHARED))


def test_shared_probe_modules_import_no_circle() -> None:
    graph = {
        stem: {other for _, other in _probe_imports(tree) if other != stem}
        for stem, tree in _modules().items()
    }

    def circle(path: list[str]) -> list[str] | None:
        for other in sorted(graph.get(path[-1], ())):
            if other in path:
                return [*path[path.index(other) :], other]
            if (found := circle([*path, other])) is not None:
                return found
        return None

    circles = [found for stem in sorted(graph) if (found := circle([stem])) is not None]
    assert not circles, " → ".join(circles[0])


def test_probes_import_nothing_of_alerting_thresholds_or_daemon() -> None:
    wrong = [
        f"{stem}.py:{line} imports {name}"
        for stem, tree in _modules().items()
        for line, name in _imported(tree)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    ]
    assert not wrong
