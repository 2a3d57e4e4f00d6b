"""The console: `ConsoleSink` prints events to a text stream, for humans or pipes.

The package, by role (the same files as every sink folder):

- `config`: the options, the ``console:`` URL scheme and how a URL reads;
- `sink`: `ConsoleSink` and `from_url`;
- `encode`: the text formats (``pretty``, ``json``, ``line``);
- `errors`: the stream's errors translated into sink errors, by one table.
"""

from __future__ import annotations

from metricstream.sinks.console.config import FORMATS, SCHEMES, ConsoleOptions
from metricstream.sinks.console.encode import format_pretty, format_timestamp
from metricstream.sinks.console.sink import ConsoleSink, from_url

__all__ = [
    "FORMATS",
    "SCHEMES",
    "ConsoleOptions",
    "ConsoleSink",
    "format_pretty",
    "format_timestamp",
    "from_url",
]
