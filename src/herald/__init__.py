"""Herald: a self-hosted publishing engine."""

__version__ = "0.1.0"
