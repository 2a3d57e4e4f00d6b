"""The spool's on-disk format: segment files of checksummed batch records.

A spool directory holds::

    segments/00000000000000001000.seg   one file per segment, named by the
    segments/00000000000000250000.seg   sequence number of its first event
    acks/<sink>.ack                     per sink: every event below this
                                        sequence number is done (digits and
                                        a newline; `metricstream.spool.positions`)
    sinks                               every sink that ever had a position,
                                        one URL-quoted name per line

A segment file starts with the 8-byte header ``MSSPOOL1`` and holds records,
one per batch, back to back. A record is::

    offset size
    0      4    magic b"MSR1"
    4      4    header CRC-32 of bytes 8..47
    8      4    payload length in bytes (little-endian, unsigned)
    12     4    event count
    16     8    sequence number of the first event
    24     8    batch creation time, ns since the epoch
    32     16   batch id (16 raw bytes; the hex batch id when it is a UUID)
    48     n    payload: one zstd frame holding the batch's JSON Lines
    48+n   4    payload CRC-32

A batch whose id is not a UUID's 32 hex digits (an id a service chose,
such as one derived from a Kafka offset) is written with the magic
``b"MSR2"``: the same layout, with the 16-byte id field zero and the id at
the start of the payload, as 2 bytes of length and its UTF-8 bytes, before
the zstd frame. So every batch reads back with the id it was appended with.
Versions of metricstream that know only ``MSR1`` count such a record as
damaged.

Events are stored in their JSON form (`metricstream.codecs.json`), each with
its ``schema_version``, never as a sink's payload, so a later version of
metricstream replays a spool written by an earlier one. Sequence numbers
increase by one per event, across segments and restarts; a gap between two
intact records is exactly the number of events lost to damage in between.

Integers are little-endian. The header checksum lets a reader find the next
intact record after damage (by scanning for the magic), and the payload
checksum tells a damaged payload from an intact one.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from dataclasses import dataclass

import zstandard

from metricstream.codecs.json import decode_event
from metricstream.contract import EventBatch
from metricstream.event import MetricEvent
from metricstream.exceptions import InvalidEventError

__all__ = [
    "HEADER_SIZE",
    "NAMED_RECORD_MAGIC",
    "RECORD_MAGIC",
    "RECORD_MAGICS",
    "SEGMENT_MAGIC",
    "RecordHeader",
    "decode_payload",
    "encode_record",
    "payload_intact",
    "read_header",
]

SEGMENT_MAGIC = b"MSSPOOL1"
"""The first bytes of every segment file (format version 1)."""

RECORD_MAGIC = b"MSR1"
"""The first bytes of a record whose batch id is a UUID (or none was kept)."""

NAMED_RECORD_MAGIC = b"MSR2"
"""The first bytes of a record whose payload starts with its batch id."""

RECORD_MAGICS = (RECORD_MAGIC, NAMED_RECORD_MAGIC)
"""Every record magic a reader accepts."""

_HEADER = struct.Struct("<4sIIIqq16s")
HEADER_SIZE = _HEADER.size
"""Bytes of a record header (48)."""
_CRC = struct.Struct("<I")
_ID_LENGTH = struct.Struct("<H")


@dataclass(frozen=True, slots=True)
class RecordHeader:
    """The header of one record.

    Attributes:
        length: Payload bytes.
        count: Events in the batch.
        first_seq: Sequence number of its first event.
        created_ns: When the batch was cut.
        batch_id: The batch's id (empty when `named`: it is in the payload).
    """

    length: int
    count: int
    first_seq: int
    created_ns: int
    batch_id: str
    named: bool = False
    """The payload starts with the batch id (``MSR2``); `batch_id` is then empty."""

    @property
    def end_seq(self) -> int:
        """The sequence number after the batch's last event."""
        return self.first_seq + self.count

    @property
    def size(self) -> int:
        """The whole record's size on disk."""
        return HEADER_SIZE + self.length + _CRC.size


def _batch_id_bytes(batch_id: str) -> bytes:
    try:
        return uuid.UUID(hex=batch_id).bytes if len(batch_id) == 32 else b""
    except ValueError:
        return b""


def encode_record(batch: EventBatch, first_seq: int) -> bytes:
    """Return the record for `batch`, whose first event gets sequence number `first_seq`.

    A batch id that is not 32 hex digits is kept in the payload (``MSR2``).
    """
    frame = batch.json_lines_zstd()
    raw_id = _batch_id_bytes(batch.batch_id)
    magic = RECORD_MAGIC
    payload = frame
    if not raw_id:
        name = batch.batch_id.encode("utf-8")
        magic, payload = NAMED_RECORD_MAGIC, b"".join((_ID_LENGTH.pack(len(name)), name, frame))
    body = _HEADER.pack(
        magic, 0, len(payload), len(batch), first_seq, batch.created_ns, raw_id or bytes(16)
    )
    header_crc = zlib.crc32(body[8:])
    return b"".join(
        (
            magic,
            _CRC.pack(header_crc),
            body[8:],
            payload,
            _CRC.pack(zlib.crc32(payload)),
        )
    )


def read_header(data: bytes | memoryview) -> RecordHeader | None:
    """Parse a record header from the first `HEADER_SIZE` bytes; None if it is not intact."""
    if len(data) < HEADER_SIZE:
        return None
    magic, crc, length, count, first_seq, created_ns, raw_id = _HEADER.unpack_from(data)
    if magic not in RECORD_MAGICS or zlib.crc32(data[8:HEADER_SIZE]) != crc:
        return None
    if magic == NAMED_RECORD_MAGIC:
        return RecordHeader(length, count, first_seq, created_ns, "", named=True)
    batch_id = uuid.UUID(bytes=raw_id).hex if any(raw_id) else uuid.uuid4().hex
    return RecordHeader(length, count, first_seq, created_ns, batch_id)


def payload_intact(header: RecordHeader, record: bytes | memoryview) -> bool:
    """Tell whether the payload of `record` (header included) matches its checksum."""
    end = HEADER_SIZE + header.length
    if len(record) < end + _CRC.size:
        return False
    crc: int = _CRC.unpack_from(record, end)[0]
    return zlib.crc32(record[HEADER_SIZE:end]) == crc


def decode_payload(header: RecordHeader, record: bytes | memoryview) -> EventBatch:
    """Decode the events of an intact record into an `EventBatch` with its id and time.

    Raises:
        InvalidEventError: If an event in the payload is invalid.
        SchemaVersionError: If it comes from a newer schema version.
        zstandard.ZstdError: If the payload does not decompress.
    """
    payload = bytes(record[HEADER_SIZE : HEADER_SIZE + header.length])
    batch_id = header.batch_id
    if header.named:
        payload, batch_id = _split_batch_id(payload)
    data = zstandard.ZstdDecompressor().decompress(payload)
    events: list[MetricEvent] = [decode_event(line) for line in data.split(b"\n") if line]
    return EventBatch(events, batch_id=batch_id, created_ns=header.created_ns)


def _split_batch_id(payload: bytes) -> tuple[bytes, str]:
    """Split an ``MSR2`` payload into its zstd frame and its batch id.

    Raises:
        InvalidEventError: If the id is cut short or is not UTF-8.
    """
    if len(payload) >= _ID_LENGTH.size:
        (size,) = _ID_LENGTH.unpack_from(payload)
        end = _ID_LENGTH.size + size
        if end <= len(payload):
            try:
                return payload[end:], payload[_ID_LENGTH.size : end].decode("utf-8")
            except UnicodeDecodeError:
                pass
    raise InvalidEventError(None, "the record's batch id is damaged")
