"""The Prometheus and Grafana kit in docs/, read: its rules, its dashboard, and the metric
names their expressions use."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = ROOT / "docs" / "prometheus"
RULES = PROMETHEUS_DIR / "vigild.rules.yml"
RULE_TESTS = PROMETHEUS_DIR / "vigild.rules.test.yml"
DASHBOARD = ROOT / "docs" / "grafana" / "vigild.json"
_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless"}
    | {"offset", "bool", "inf", "nan", "atan2"}
)


_IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, labels or keywords)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # strings
    text = re.sub(r"\$\{?\w+\}?", "1m", text)  # Grafana variables
    text = re.sub(r"\{[^{}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\[\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", text
    )  # label lists
    text = re.sub(r"\boffset\s+\S+", " ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name, rest = match.group(), text[match.end() :]
        before = text[: match.start()]
        if rest.lstrip().startswith("("):  # a function call or an aggregation
            continue
        if before and (before[-1].isalnum() or before[-1] in "._"):  # inside a number: 1e3, 0.5m
            continue
        if name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


def rule_expressions() -> dict[str, str]:
    document = yaml.safe_load(RULES.read_text())
    found = {}
    for group in document["groups"]:
        for rule in group["rules"]:
            found[rule.get("alert") or rule["record"]] = rule["expr"]
    return found


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_expressions() -> list[str]:
    board = dashboard()
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            query = query["query"] if isinstance(query, dict) else query
            inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", query)
            assert inner, f"variable {variable['name']}: not label_values(...): {query}"
            exprs.append(inner.group(1))
    return exprs
