"""The running process: the daemon's loop and everything that surrounds it.

The pipeline packages (``rules`` → ``store`` → ``detect`` → ``incidents`` → ``routing`` →
``notify``) know nothing of processes; this package wires them into one long-running
``watcher run``: the scheduler loop (``daemon``), hot reload (``reload``), meta-alerts
(``meta``), the HTTP endpoints (``http``, ``health``, ``metrics``, ``rule_metrics``), systemd
integration (``systemd``), logging (``logs``), memory hygiene (``memory``), what happens when
the state cannot be written (``write_guard``) and the shared-state operations (``operations``).
It is also where replicas, leases and partitions live when several processes share one state.
"""
