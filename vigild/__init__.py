"""vigild: a monitoring daemon with alerting for the services of one host."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vigild")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
