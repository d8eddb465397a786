"""Targets vigild finds by itself: containers by their labels."""

from vigild.discovery.containers import ContainerDiscovery
from vigild.discovery.labels import Container, LabelError, Target, targets_of

__all__ = ["Container", "ContainerDiscovery", "LabelError", "Target", "targets_of"]
