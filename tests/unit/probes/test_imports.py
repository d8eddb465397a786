"""What the probe modules may import, read with the walker of tests/import_graph.py.

Every import statement counts: at module level, inside a function (a lazy
import), and under ``if TYPE_CHECKING:``. A probe module is one story (one
kind of target); what several of them share lives in the shared modules
below, so no probe reaches into another probe for a helper, and the shared
modules never reach back into a probe (which would close a circle).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from import_graph import Import, imports, strongly_connected, write_package

import vigild

VIGILD = Path(vigild.__file__).parent

SHARED = frozenset({"base", "_net", "exposition", "selectors", "promql", "certificate"})
"""base: the Probe class and its registry; _net: bounded reads, closing inside the deadline,
the TLS handshake and contexts, connection error wording; exposition: the Prometheus text
reader; selectors: series selectors and latency units (the prometheus probe and the CLI);
promql: increases and quantiles over two scrapes; certificate: a DER certificate's expiry
(the http and tls probes). A module named ``<probe>_<job>`` (``container_stats``) is a part
of that one probe, split off by job."""

FORBIDDEN = ("alerting", "thresholds", "daemon")
"""A probe turns a target into Observations; judging, alerting and serving come after it."""


def _probe(name: str, package: str) -> str | None:
    """The probe module (``http``) that module ``name`` is or is in, if any."""
    prefix = f"{package}.probes."
    return name.removeprefix(prefix).split(".")[0] if name.startswith(prefix) else None


def _probe_imports(root: Path) -> Iterator[tuple[Import, str, str | None]]:
    """(import, probe module importing, probe module imported) for every import a probe
    module of the package in ``root`` makes."""
    for edge in imports(root):
        stem = _probe(edge.source, root.name)
        if stem is not None:
            yield edge, stem, _probe(edge.target, root.name)


def violations(root: Path) -> list[str]:
    """Every import of a probe module of the package in ``root`` that breaks a rule."""
    found = []
    graph: dict[str, set[str]] = {}
    forbidden = tuple(f"{root.name}.{name}" for name in FORBIDDEN)
    for edge, stem, other in _probe_imports(root):
        if edge.target in forbidden or edge.target.startswith(tuple(f + "." for f in forbidden)):
            found.append(f"{edge.where(root)} imports {edge.target}")
        if other is None or other == stem:
            continue
        graph.setdefault(stem, set()).add(other)
        if other not in SHARED and not other.startswith(stem + "_"):
            found.append(f"{edge.where(root)} imports probes.{other}")

    for component in strongly_connected(graph):
        if len(component) > 1:
            found.append("probe modules import in a circle: " + ", ".join(sorted(component)))
    return found


def test_probes_import_only_shared_modules_in_no_circle_and_nothing_that_judges() -> None:
    found = violations(VIGILD)
    assert not found, (
        "a probe takes what it shares from " + ", ".join(sorted(SHARED)) + ":\n" + "\n".join(found)
    )


def test_another_probe_a_circle_and_what_judges_are_each_named(tmp_path: Path) -> None:
    package = write_package(
        tmp_path,
        {
            "probes/http.py": "from vigild.probes import base, certificate\n"
            "def f():\n    from vigild.probes.tls import TlsProbe\n",
            "probes/tls.py": "from . import _net, certificate\n",
            "probes/_net.py": "from vigild.probes.base import Probe\n",
            "probes/base.py": "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from vigild.daemon.app import App\n"
            "from ._net import read\n",
            "probes/certificate.py": "",
            "probes/container.py": "from .container_stats import Stats\nimport vigild.thresholds\n",
            "probes/container_stats.py": "from vigild.alerting import engine\n",
            "alerting/engine.py": "",
        },
    )
    assert violations(package) == [
        "vigild/probes/base.py:3 imports vigild.daemon.app",
        "vigild/probes/container.py:2 imports vigild.thresholds",
        "vigild/probes/container_stats.py:1 imports vigild.alerting.engine",
        "vigild/probes/http.py:3 imports probes.tls",
        "probe modules import in a circle: _net, base",
    ]
