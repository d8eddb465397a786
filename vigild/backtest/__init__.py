"""``vigild backtest``: what a config would have sent, replayed from the metrics history.

``replay`` turns the history back into observations and runs them through the
daemon's own thresholds, engine and pipeline stages; ``report`` prints the result.
"""

from vigild.backtest.replay import ANY_NOTIFIER, Outcome, Sent, Stretch, backtest, stretches
from vigild.backtest.report import Unusable, json_document, load_configs, report, text

__all__ = [
    "ANY_NOTIFIER",
    "Outcome",
    "Sent",
    "Stretch",
    "Unusable",
    "backtest",
    "json_document",
    "load_configs",
    "report",
    "stretches",
    "text",
]
