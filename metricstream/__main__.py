"""``python -m metricstream`` runs the ``metricstream`` command."""

from __future__ import annotations

import sys

from metricstream.cli import main

if __name__ == "__main__":
    sys.exit(main())
