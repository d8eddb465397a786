"""vigild's state file: a ``Database`` (lock, connection, migrations, transactions)
and one repository per kind of record kept in it."""

from vigild.storage.actions import ActionLog, ActionRun, read_action_history
from vigild.storage.alerts import AlertRow, AlertStates
from vigild.storage.database import Database
from vigild.storage.errors import StateFileError
from vigild.storage.lock import LOCK_WAIT, StateLock, StateLocked, lock_wait
from vigild.storage.outbox import Dropped, Outbox, OutboxEntry
from vigild.storage.pings import Ping, PushRun, PushRuns
from vigild.storage.probes import ProbeStates
from vigild.storage.silences import Silences

__all__ = [
    "LOCK_WAIT",
    "ActionLog",
    "ActionRun",
    "AlertRow",
    "AlertStates",
    "Database",
    "Dropped",
    "Outbox",
    "OutboxEntry",
    "Ping",
    "ProbeStates",
    "PushRun",
    "PushRuns",
    "Silences",
    "StateFileError",
    "StateLock",
    "StateLocked",
    "lock_wait",
    "read_action_history",
]
