"""``python -m watcher`` runs the ``watcher`` command."""

import sys

from watcher.cli import main

sys.exit(main())
