"""The spool's on-disk format: segment files of checksummed batch records.

A spool directory holds::

    segments/00000000000000001000.seg   one file per segment, named by the
    segments/00000000000000250000.seg   sequence number of its first event
    acks/<sink>.ack                     per sink: every event below this
                                        sequence number is done

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

__all__ = [
    "HEADER_SIZE",
    "RECORD_MAGIC",
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
"""The first bytes of every record."""

_HEADER = struct.Struct("<4sIIIqq16s")
HEADER_SIZE = _HEADER.size
"""Bytes of a record header (48)."""
_CRC = struct.Struct("<I")
_compressor = zstandard.ZstdCompressor(level=1)


@dataclass(frozen=True, slots=True)
class RecordHeader:
    """The header of one record.

    Attributes:
        length: Payload bytes.
        count: Events in the batch.
        first_seq: Sequence number of its first event.
        created_ns: When the batch was cut.
        batch_id: The batch's id.
    """

    length: int
    count: int
    first_seq: int
    created_ns: int
    batch_id: str

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

    A batch id that is not 32 hex digits is stored as zeros (and read back
    as a new id).
    """
    payload = _compressor.compress(batch.json_lines_bytes())
    raw_id = _batch_id_bytes(batch.batch_id) or bytes(16)
    body = _HEADER.pack(
        RECORD_MAGIC, 0, len(payload), len(batch), first_seq, batch.created_ns, raw_id
    )
    header_crc = zlib.crc32(body[8:])
    return b"".join(
        (
            RECORD_MAGIC,
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
    if magic != RECORD_MAGIC or zlib.crc32(data[8:HEADER_SIZE]) != crc:
        return None
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
    data = zstandard.ZstdDecompressor().decompress(
        bytes(record[HEADER_SIZE : HEADER_SIZE + header.length])
    )
    events: list[MetricEvent] = [decode_event(line) for line in data.split(b"\n") if line]
    return EventBatch(events, batch_id=header.batch_id, created_ns=header.created_ns)
