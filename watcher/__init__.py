"""watcher: a log-driven alerting daemon for ML prediction APIs and HTTP services."""

__version__ = "0.1.0"
