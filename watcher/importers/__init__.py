"""Importers: other alerting tools' rule files converted into watcher rule files and receivers.

One subpackage per tool (``elastalert``); each reports, per input file, what it converted, what it
approximated and what it could not convert, with the ``file:line`` of the option concerned.
"""
