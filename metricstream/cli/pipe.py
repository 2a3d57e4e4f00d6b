"""``metricstream pipe``: stream line protocol or JSON Lines from standard input to sinks.

Any program that writes metrics as text can feed the sinks this way: a shell
script, Telegraf's file output, an ``influx`` export, ``metricstream cat``.
Input is read as it arrives, so a long-running producer streams through.

A line that cannot be read is reported on standard error with its number
(the first 100 in full, then only counted), skipped, and counted; it never
stops the stream. At the end of the input (or on Ctrl-C or SIGTERM, which
stop the reading) the command delivers what it read, waiting at most
``--shutdown-timeout`` seconds, then prints how many lines it read, the
events it sent and the lines it skipped, and the accounting of every sink
(``--format json``: as one JSON document). While it waits for the sinks, a
line on standard error every few seconds says which sinks hold how many
events. Exit status: 0 when every sink wrote every event, 1 when some were
dropped (the accounting says why) or when the input held lines but none of
them could be read, 2 for a bad option or sink URL.

Line protocol is read as `metricstream.parse_lines` reads it (blank lines
and ``#`` comments are skipped; a string field value may span lines). JSON
Lines hold one event per line, as `MetricEvent.to_json` writes it. The
streamer blocks instead of dropping when the sinks fall behind, which slows
the reading down: the producer waits rather than losing events.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import IO, Any, NamedTuple, TextIO

from metricstream.cli._args import (
    add_deprecated_alias,
    add_format_option,
    plain,
    positive_float,
    positive_int,
)
from metricstream.cli._errors import DataError
from metricstream.cli._report import print_accounting
from metricstream.cli._waits import WaitReporter
from metricstream.codecs.json import decode_event
from metricstream.codecs.lineprotocol import PRECISIONS, parse_lines
from metricstream.event import MetricEvent
from metricstream.exceptions import InvalidEventError, LineProtocolError, SchemaVersionError
from metricstream.sinks import sink_from_url
from metricstream.streamer import EventStreamer

__all__ = ["BadLine", "JsonLinesReader", "LineProtocolReader", "read_blocks", "register", "run"]

EXAMPLE = """example:
  telegraf --once --config t.conf | metricstream pipe --sink influxdb://localhost:8086/telegraf
  metricstream cat events.jsonl.zst --format json | metricstream pipe --input-format json \\
      --sink console:
  metricstream pipe --input export.lp --precision s --sink jsonl:archive.jsonl.zst --format json"""

MAX_LINE_BYTES = 16 * 1024 * 1024
"""A line is skipped (and reported) once this much of it is held without its end."""
REPORTED_LINES = 100
"""Bad lines reported in full on standard error; later ones are only counted."""
_READ_SIZE = 1 << 16
_MAX_STRING_LINES = 10_000
"""The most lines one string field value of line protocol may span."""


class BadLine(NamedTuple):
    """A line of input that could not be read.

    Attributes:
        line: Its 1-based number in the input.
        problem: What is wrong (with the column, for line protocol).
        text: The line, shortened to 80 characters.
    """

    line: int
    problem: str
    text: str


def _excerpt(raw: bytes | str) -> str:
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    text = text.rstrip("\r\n")
    return text if len(text) <= 80 else text[:77] + "..."


def read_blocks(stream: IO[bytes], size: int = _READ_SIZE) -> Iterator[tuple[int, bytes | None]]:
    """Yield ``(number of the first line, block)`` for the complete lines read so far.

    Each block ends at a line end (except the last, at the end of input), so
    no line is split between blocks. A line of which more than
    `MAX_LINE_BYTES` arrived without its end is yielded as ``(its number,
    None)`` and the rest of it is skipped: memory stays bounded.

    Args:
        stream: A binary stream; ``read1`` is used when it has one, so blocks
            come as soon as data arrives rather than when a buffer fills.
        size: Bytes per read.
    """
    read: Callable[[int], bytes] = getattr(stream, "read1", None) or stream.read
    line = 1
    partial = bytearray()  # the start of a line whose end has not arrived
    skipping = False  # inside a line too long to keep
    while chunk := read(size):
        if skipping:
            end = chunk.find(b"\n")
            if end == -1:
                continue
            chunk, skipping, line = chunk[end + 1 :], False, line + 1
        cut = chunk.rfind(b"\n") + 1
        if cut:
            block = bytes(partial) + chunk[:cut] if partial else chunk[:cut]
            yield line, block
            line += block.count(b"\n")
            partial = bytearray(chunk[cut:])
        else:
            partial += chunk
        if len(partial) > MAX_LINE_BYTES:
            yield line, None
            partial, skipping = bytearray(), True
    if partial:
        yield line, bytes(partial)


def _numbered(first_line: int, block: bytes) -> list[tuple[int, bytes]]:
    """The lines of a block with their numbers (without the empty piece after a final newline)."""
    pieces = block.split(b"\n")
    if block.endswith(b"\n"):
        pieces.pop()
    return list(enumerate(pieces, first_line))


class LineProtocolReader:
    """Turn blocks of line protocol into events and bad lines.

    A block is parsed in one go; only a block with an error is read again
    line by line, to keep its good lines and number its bad ones. A string
    field value may continue over the next lines (and the next block): a line
    ending inside an open string waits for the lines that close it, up to
    ``_MAX_STRING_LINES``. If what follows cannot close it, that line alone is
    reported and the lines after it are read again on their own.

    Args:
        precision: The unit of the timestamps in the input.
    """

    def __init__(self, precision: str = "ns") -> None:
        self.precision = precision
        self._open: list[tuple[int, bytes]] = []  # lines of an entry whose string is still open

    def feed(self, first_line: int, block: bytes) -> tuple[list[MetricEvent], list[BadLine]]:
        """Read a block whose first line has number `first_line`.

        Returns:
            The events of the complete entries and the lines that could not be read.
        """
        text = b"\n".join([raw for _, raw in self._open] + [block]) if self._open else block
        try:
            events = parse_lines(text, self.precision)
        except LineProtocolError:
            return self._line_by_line(self._open + _numbered(first_line, block), final=False)
        self._open = []
        return events, []

    def finish(self) -> tuple[list[MetricEvent], list[BadLine]]:
        """Read what is left at the end of the input (lines after a string never closed).

        Returns:
            The events and bad lines among them.
        """
        return self._line_by_line(self._open, final=True)

    def _line_by_line(
        self, lines: list[tuple[int, bytes]], *, final: bool
    ) -> tuple[list[MetricEvent], list[BadLine]]:
        events: list[MetricEvent] = []
        bad: list[BadLine] = []
        queue = lines[::-1]  # popped from the end: the first line first
        entry: list[tuple[int, bytes]] = []  # the lines of the entry being read
        while queue or (final and entry):
            if not queue:  # the input ends inside a string: its first line alone is bad
                bad.append(self._alone(entry[0]))
                queue, entry = entry[:0:-1], []
                continue
            number, raw = queue.pop()
            entry.append((number, raw))
            if len(entry) > 1 and b'"' not in raw and len(entry) < _MAX_STRING_LINES:
                continue  # the open string cannot close on this line
            try:
                events.extend(parse_lines(b"\n".join(r for _, r in entry), self.precision))
            except LineProtocolError as exc:
                if exc.problem.startswith("unterminated string") and len(entry) < _MAX_STRING_LINES:
                    continue  # a string value may go on over the next line
                if len(entry) == 1:
                    bad.append(
                        BadLine(number, f"column {exc.column}: {exc.problem}", _excerpt(raw))
                    )
                else:  # the first line opened a string nothing closed: it alone is bad
                    bad.append(self._alone(entry[0]))
                    queue.extend(entry[:0:-1])
            entry = []
        self._open = entry
        return events, bad

    def _alone(self, line: tuple[int, bytes]) -> BadLine:
        """The report of a line read on its own (the first of an entry that failed)."""
        number, raw = line
        try:
            parse_lines(raw, self.precision)
        except LineProtocolError as exc:
            return BadLine(number, f"column {exc.column}: {exc.problem}", _excerpt(raw))
        return BadLine(number, "opens a string value that no later line closes", _excerpt(raw))


class JsonLinesReader:
    """Turn blocks of JSON Lines (one event per line) into events and bad lines."""

    def feed(self, first_line: int, block: bytes) -> tuple[list[MetricEvent], list[BadLine]]:
        """Read a block whose first line has number `first_line`.

        Returns:
            The events and the lines that could not be read (blank lines are skipped).
        """
        events: list[MetricEvent] = []
        bad: list[BadLine] = []
        for number, raw in enumerate(block.split(b"\n"), first_line):
            if not raw.strip():
                continue
            try:
                events.append(decode_event(raw))
            except (InvalidEventError, SchemaVersionError) as exc:
                bad.append(BadLine(number, str(exc), _excerpt(raw)))
        return events, bad

    def finish(self) -> tuple[list[MetricEvent], list[BadLine]]:
        """Nothing is held between blocks: nothing is left.

        Returns:
            No events and no bad lines.
        """
        return [], []


def register(commands: Any) -> None:
    """Add the ``pipe`` command to the CLI's subparsers."""
    pipe = commands.add_parser(
        "pipe",
        help="stream line protocol or JSON Lines from standard input to sinks",
        description=plain(__doc__),
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pipe.add_argument(
        "--sink",
        action="append",
        required=True,
        metavar="URL",
        help="a sink URL (repeatable), e.g. console:, jsonl:out.jsonl.zst, influxdb://host:8086/db",
    )
    pipe.add_argument(
        "--input-format",
        choices=("line", "json"),
        default="line",
        help="the input: line protocol or JSON Lines (line)",
    )
    add_format_option(pipe)
    pipe.add_argument(
        "--precision",
        choices=tuple(PRECISIONS),
        default="ns",
        help="unit of line protocol timestamps (ns)",
    )
    pipe.add_argument("--input", default="-", metavar="PATH", help="read a file instead of stdin")
    pipe.add_argument("--batch-size", type=positive_int, default=1000)
    pipe.add_argument("--flush-interval", type=positive_float, default=1.0)
    pipe.add_argument(
        "--shutdown-timeout",
        type=positive_float,
        default=30.0,
        metavar="SECONDS",
        help="at most this long to deliver what is pending at the end of the input (30)",
    )
    add_deprecated_alias(
        pipe,
        "--timeout",
        replacement="--shutdown-timeout",
        dest="shutdown_timeout",
        type=positive_float,
        metavar="SECONDS",
    )
    pipe.set_defaults(run=run)


class _Report:
    """Counts the input and reports bad lines on standard error."""

    def __init__(self, errors: TextIO, input_format: str) -> None:
        self.errors = errors
        self.input_format = input_format
        self.lines = 0
        self.events = 0
        self.bad = 0
        self.interrupted = False

    def bad_lines(self, bad: list[BadLine]) -> None:
        for item in bad:
            self.bad += 1
            if self.bad <= REPORTED_LINES:
                self.errors.write(
                    f"metricstream pipe: line {item.line}: {item.problem} (skipped): {item.text}\n"
                )
            elif self.bad == REPORTED_LINES + 1:
                self.errors.write(
                    "metricstream pipe: more bad lines follow; they are counted, not shown\n"
                )
            if self.bad == 1 and self.input_format == "line" and item.text.startswith("{"):
                self.errors.write(
                    "metricstream pipe: this looks like JSON Lines: read it with "
                    "--input-format json\n"
                )

    def summary(self) -> str:
        stopped = " (interrupted)" if self.interrupted else ""
        return (
            f"Read {self.lines:,} lines{stopped}: {self.events:,} events sent, "
            f"{self.bad:,} bad lines skipped\n"
        )

    def document(self) -> dict[str, object]:
        return {
            "lines": self.lines,
            "bad_lines": self.bad,
            "interrupted": self.interrupted,
        }


def _stream(
    streamer: EventStreamer,
    reader: LineProtocolReader | JsonLinesReader,
    source: IO[bytes],
    report: _Report,
    waits: WaitReporter,
) -> None:
    for first_line, block in read_blocks(source):
        if block is None:
            report.bad_lines([BadLine(first_line, f"longer than {MAX_LINE_BYTES:,} bytes", "")])
            report.lines = first_line
            continue
        report.lines = first_line + block.count(b"\n") - block.endswith(b"\n")
        events, bad = reader.feed(first_line, block)
        report.bad_lines(bad)
        with waits.waiting("waiting for room: the sinks take events slower than they come"):
            report.events += streamer.send_many(events)
    events, bad = reader.finish()
    report.bad_lines(bad)
    report.events += streamer.send_many(events)


def _open_input(path: str) -> AbstractContextManager[IO[bytes]]:
    """Standard input for ``-``, else the file (which the ``with`` block closes)."""
    return nullcontext(sys.stdin.buffer) if path == "-" else open(path, "rb")


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Stream the input to the sinks; return the exit status.

    Raises:
        DataError: If the input held lines and none of them could be read.
    """
    sinks = [sink_from_url(url) for url in args.sink]
    json_input = args.input_format == "json"
    reader = JsonLinesReader() if json_input else LineProtocolReader(args.precision)
    report = _Report(sys.stderr, args.input_format)
    with _open_input(args.input) as source:  # a missing file fails before any sink starts
        streamer = EventStreamer(
            sinks,
            batch_size=args.batch_size,
            flush_interval=args.flush_interval,
            overflow="block",
            register_atexit=False,
        )
        with WaitReporter(streamer, "metricstream pipe", sys.stderr) as waits:
            try:
                _stream(streamer, reader, source, report, waits)
            except KeyboardInterrupt:
                report.interrupted = True
                sys.stderr.write("\nmetricstream pipe: interrupted; delivering what was read\n")
            finally:
                with waits.waiting("delivering what was read", args.shutdown_timeout):
                    streamer.shutdown(timeout=args.shutdown_timeout)
    as_json = args.format == "json"
    if not as_json:
        out.write(report.summary())
    delivered = print_accounting(
        streamer.health(),
        out,
        title=f"Final accounting ({streamer.health().events_accepted:,} events sent)",
        as_json=as_json,
        extra=report.document(),
    )
    if report.lines and not report.events and report.bad:
        out.flush()
        raise DataError(
            f"none of the {report.lines:,} lines could be read as "
            f"{'JSON Lines' if json_input else 'line protocol'}"
        )
    return 0 if delivered else 1
