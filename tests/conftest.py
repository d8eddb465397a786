"""Shared fixtures: real servers on loopback, nothing mocked."""

pytest_plugins = ["targets", "receivers"]
