"""metricstream's tests: a package, so test modules share helpers by relative import.

``from . import servers`` and ``from .servers import ...`` are the forms to
use. The module is also registered under its plain name, so that a test
module written as ``from servers import ...`` gets the very same module
object (one set of constants, one `servers.InfluxdProcess` class).
"""

from __future__ import annotations

import sys

from . import servers

sys.modules.setdefault("servers", servers)
