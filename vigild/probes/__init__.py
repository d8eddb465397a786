"""Probes: each reads one kind of target and returns Observations.

Each probe module holds its ``Probe`` subclass and the ``Options`` model of its
targets; the ``vigild.probes`` entry-point group names them (see probes/base.py).
"""
