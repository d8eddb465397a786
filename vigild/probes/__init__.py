"""Probes: each reads one kind of target and returns Observations.

``REPORTED_METRICS`` lets the config reject a threshold a target type can
never report, without importing any probe's I/O code. Prometheus targets add
the quantiles and gauges their config names.
"""

REPORTED_METRICS: dict[str, frozenset[str]] = {
    "http": frozenset(
        {"up", "latency_seconds", "status_code", "health_status", "cert_expiry_days"}
    ),
    "host": frozenset(
        {
            "up",
            "cpu_percent",
            "memory_percent",
            "swap_percent",
            "disk_percent",
            "load1",
            "processes",
        }
    ),
    "prometheus": frozenset({"up", "latency_seconds", "error_rate_percent"}),
    "container": frozenset(
        {
            "up",
            "running",
            "container_health",
            "restarts",
            "recent_restarts",
            "cpu_percent",
            "memory_percent",
        }
    ),
    "tls": frozenset({"up", "latency_seconds", "cert_expiry_days"}),
    "tcp": frozenset({"up", "latency_seconds"}),
}
