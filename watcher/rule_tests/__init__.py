"""Unit tests for rules (``watcher test rules``): the test-file model, its reader, the run, the diff."""
