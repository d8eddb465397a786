"""Probes: each reads one kind of target and returns an Observation.

``REPORTED_METRICS`` lets the config reject a threshold a target type can
never report, without importing any probe's I/O code.
"""

REPORTED_METRICS: dict[str, frozenset[str]] = {
    "http": frozenset({"up", "latency_seconds", "status_code", "health_status"}),
    "host": frozenset({"up", "cpu_percent", "memory_percent", "disk_percent"}),
}
