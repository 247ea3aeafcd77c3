"""Where watcher's durable state lives: one interface (``base.Backend``), one module per backend.

``StateStore`` (``watcher.incidents.state``) and the stages that keep tables in the state
(routing groups, silences, the outbox) write their SQL once, in ``?`` style; the backend's
``Dialect`` turns it into what its database speaks. ``sqlite`` is the default (one node, the
demo, backtests); ``postgres`` is chosen by ``state: {url: postgresql://...}``. ``factory`` opens
the right one from the config; ``copy`` moves a SQLite state into PostgreSQL. Kept free of
imports so ``watcher.incidents.state`` can import ``watcher.state.base`` without a cycle.
"""
