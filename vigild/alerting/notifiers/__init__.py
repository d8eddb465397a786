"""Notifier backends, registered by name in the ``vigild.notifiers`` entry-point group."""
