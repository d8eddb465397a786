"""The steps from an engine's alert transitions to the outbox, one module each.

Every stage takes a ``Batch`` and returns one (``Stage``); ``vigild.alerting.pipeline``
puts them in order.
"""
