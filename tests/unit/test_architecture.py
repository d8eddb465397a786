"""vigild's layers, read from its source by tests/import_graph.py: which package may
import which.

Every import statement counts: at module level, inside a function (a lazy import)
and under ``if TYPE_CHECKING:``. Relative imports and ``from vigild import x`` are
resolved to the module they name. The rules:

- no import cycle between config, thresholds, probes, alerting and storage, also
  through other modules of vigild;
- probes import neither alerting nor thresholds; thresholds import no I/O module;
  alerting does not import the daemon; config imports none of probes, alerting,
  storage, daemon and thresholds; thresholds import no engine_api (the Docker
  client). A module of vigild counts where the package imports it directly or
  through any chain of vigild's modules (``import vigild.probes.http`` must not load
  thresholds through the config); an I/O module counts where the package imports
  it itself;
- no module is longer than MAX_LINES.

One failure lists every violation, each naming the file and line. The walker itself
is tested on small packages written to tmp_path, independently of vigild's state.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from pathlib import Path

from import_graph import Import, imports, modules, strongly_connected, write_package

import vigild

VIGILD = Path(vigild.__file__).parent

LAYERS = ("config", "thresholds", "probes", "alerting", "storage")
"""The packages that must not form a cycle. ``config`` is config.py and any config*
module or package; storage may not exist yet."""

IO = frozenset({"aiohttp", "asyncio", "sqlite3", "socket", "psutil", "subprocess"})

FORBIDDEN = {
    "probes": frozenset({"alerting", "thresholds"}),
    "thresholds": IO | {"probes", "storage", "daemon", "alerting", "engine_api"},
    "alerting": frozenset({"daemon"}),
    "config": frozenset({"probes", "alerting", "storage", "daemon", "thresholds"}),
}
"""What each package may not import. Names in IO are other distributions; the rest
are vigild's own packages and modules."""

MAX_LINES = 420


def layer(name: str, package: str) -> str:
    """The package of vigild a module belongs to (``config`` for any config*), or the
    top-level name of a module from elsewhere."""
    parts = name.split(".")
    if parts[0] != package:
        return parts[0]
    if len(parts) == 1:
        return package
    return "config" if parts[1].startswith("config") else parts[1]


def _cycles(edges: list[Import], package: str, root: Path) -> Iterator[str]:
    graph: dict[str, dict[str, Import]] = {}
    for edge in edges:
        source, target = layer(edge.source, package), layer(edge.target, package)
        if edge.target.split(".")[0] == package and source != target:
            graph.setdefault(source, {}).setdefault(target, edge)
    for component in strongly_connected(graph):
        named = sorted(component & set(LAYERS))
        if len(named) < 2:
            continue
        through = sorted(component - set(LAYERS))
        via = f" (through {', '.join(through)})" if through else ""
        shown = [
            f"{source} → {target} at {edge.where(root)} ({edge.target})"
            for source in sorted(component)
            for target, edge in sorted(graph.get(source, {}).items())
            if target in component
        ]
        yield f"import cycle between {', '.join(named)}{via}: " + "; ".join(shown)


def _forbidden(edges: list[Import], package: str, root: Path) -> Iterator[str]:
    """Each import by a ruled package of what it may not import: an I/O module directly,
    a module of vigild directly or through any chain of imports, shown as that chain."""
    by_source: dict[str, list[Import]] = {}
    for edge in edges:
        by_source.setdefault(edge.source, []).append(edge)
    for edge in edges:
        source = layer(edge.source, package)
        if source not in FORBIDDEN:
            continue
        # Breadth first, so the chain shown is a shortest one.
        queue = deque([[edge]])
        seen = {edge.source}
        while queue:
            chain = queue.popleft()
            last = chain[-1]
            target = layer(last.target, package)
            if target in FORBIDDEN[source] and (len(chain) == 1 or target not in IO):
                steps = ", then ".join(f"{e.where(root)} imports {e.target}" for e in chain)
                yield f"{source} → {target}: {steps}"
                break
            # A chain back into the package itself is reported from there.
            if last.target.split(".")[0] != package or target in (package, source):
                continue
            if last.target not in seen:
                seen.add(last.target)
                queue.extend([*chain, onward] for onward in by_source.get(last.target, []))


def _long(root: Path) -> Iterator[str]:
    for path in modules(root).values():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES:
            yield f"{path.relative_to(root.parent)} has {lines} lines (at most {MAX_LINES})"


def violations(root: Path) -> list[str]:
    """Everything wrong with the package in ``root`` (named by its directory)."""
    package = root.name
    edges = sorted(
        (e for e in imports(root) if e.source != e.target),
        key=lambda e: (str(e.path), e.line, e.target),
    )
    return [*_cycles(edges, package, root), *_forbidden(edges, package, root), *_long(root)]


def test_vigild_keeps_its_layers() -> None:
    found = violations(VIGILD)
    assert not found, f"{len(found)} violations of vigild's layers:\n" + "\n".join(found)


# ---------------------------------------------------------------------------
# The walker, on packages written for the test


def test_a_clean_tree_has_no_violations(tmp_path: Path) -> None:
    package = write_package(
        tmp_path,
        {
            "model.py": "import dataclasses\nimport socket\n",
            "config.py": "from vigild.model import Severity\nimport pydantic\n",
            "thresholds.py": "from vigild import model\nimport math\n",
            "probes/http.py": "import aiohttp\nfrom vigild.config import HttpTarget\n",
            "alerting/engine.py": "from vigild.thresholds import Rule\nimport asyncio\n",
            "daemon/app.py": "from vigild.alerting import engine\nfrom vigild import probes\n",
        },
    )
    assert violations(package) == []


def test_a_cycle_through_a_lazy_import_is_found_with_its_paths(tmp_path: Path) -> None:
    package = write_package(
        tmp_path,
        {
            "config.py": "from vigild.model import x\n",
            "model.py": "def f():\n    from vigild.alerting.silences import Silence\n",
            "alerting/silences.py": "import vigild.config\n",
        },
    )
    [cycle, forbidden] = violations(package)
    assert cycle.startswith("import cycle between alerting, config (through model): ")
    assert "alerting → config at vigild/alerting/silences.py:1 (vigild.config)" in cycle
    assert "model → alerting at vigild/model.py:2 (vigild.alerting.silences)" in cycle
    assert forbidden == (
        "config → alerting: vigild/config.py:1 imports vigild.model, "
        "then vigild/model.py:2 imports vigild.alerting.silences"
    )


def test_a_cycle_under_type_checking_through_relative_imports_is_found(tmp_path: Path) -> None:
    package = write_package(
        tmp_path,
        {
            "storage/__init__.py": "from . import outbox\n",
            "storage/outbox.py": "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from ..probes import base\n",
            "probes/base.py": "from .. import storage\n",
        },
    )
    [cycle] = violations(package)
    assert cycle.startswith("import cycle between probes, storage: ")
    assert "probes → storage at vigild/probes/base.py:1 (vigild.storage)" in cycle
    assert "storage → probes at vigild/storage/outbox.py:3 (vigild.probes.base)" in cycle


def test_each_forbidden_direction_is_named(tmp_path: Path) -> None:
    package = write_package(
        tmp_path,
        {
            "probes/http.py": "from vigild.alerting import engine\n",
            "probes/tcp.py": "def f():\n    from vigild import thresholds\n",
            "thresholds.py": "import asyncio\nimport sqlite3.dbapi2\n",
            "alerting/engine.py": "from vigild.daemon.app import App\n",
            "daemon/app.py": "",
            "config_models/targets.py": "from ..probes import http\n",
        },
    )
    assert sorted(violations(package)) == [
        "alerting → daemon: vigild/alerting/engine.py:1 imports vigild.daemon.app",
        "config → probes: vigild/config_models/targets.py:1 imports vigild.probes.http",
        "probes → alerting: vigild/probes/http.py:1 imports vigild.alerting.engine",
        "probes → thresholds: vigild/probes/tcp.py:2 imports vigild.thresholds",
        "thresholds → asyncio: vigild/thresholds.py:1 imports asyncio",
        "thresholds → sqlite3: vigild/thresholds.py:2 imports sqlite3.dbapi2",
    ]


def test_a_module_over_the_limit_is_named_with_its_length(tmp_path: Path) -> None:
    package = write_package(
        tmp_path,
        {"short.py": "x = 1\n" * MAX_LINES, "alerting/long.py": "x = 1\n" * (MAX_LINES + 1)},
    )
    assert violations(package) == [
        f"vigild/alerting/long.py has {MAX_LINES + 1} lines (at most {MAX_LINES})"
    ]


def test_from_a_package_import_a_value_is_the_package_not_a_module(tmp_path: Path) -> None:
    package = write_package(
        tmp_path,
        {
            "probes/__init__.py": "from vigild.thresholds import Rule\n",
            "probes/base.py": "from vigild.probes import registry\n",
            "thresholds.py": "",
        },
    )
    targets = {(e.source, e.target) for e in imports(package)}
    assert ("vigild.probes.base", "vigild.probes") in targets
    assert violations(package) == [
        "probes → thresholds: vigild/probes/__init__.py:1 imports vigild.thresholds"
    ]


def test_a_package_reached_through_another_ruled_package_is_named(tmp_path: Path) -> None:
    package = write_package(
        tmp_path,
        {
            "probes/http.py": "from vigild.storage import outbox\n",
            "storage/outbox.py": "def f():\n    from vigild.alerting import engine\n",
            "alerting/engine.py": "",
            "thresholds.py": "from vigild.engine_api import Docker\n",
            "engine_api.py": "import aiohttp\n",
        },
    )
    assert sorted(violations(package)) == [
        "probes → alerting: vigild/probes/http.py:1 imports vigild.storage.outbox, "
        "then vigild/storage/outbox.py:2 imports vigild.alerting.engine",
        "thresholds → engine_api: vigild/thresholds.py:1 imports vigild.engine_api",
    ]
