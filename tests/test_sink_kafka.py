"""KafkaSink: the topic contract, delivery-report accounting, faults, fork, close, secrets.

Round trips run against the real broker (Tansu, started by
``scripts/services.sh``) and are read back by a separate confluent-kafka
consumer that assigns partitions explicitly; what it reads is decoded by
the README's topic contract written out in ``kafka_helpers``, never by the
package's own ``decode_message`` (which has tests of its own here). The broker restart runs on a
private Tansu. Deterministic faults run on librdkafka's own mock cluster.
Every topic name carries a random run id.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError

import metricstream as ms
from metricstream.exceptions import (
    ConfigError,
    InvalidEventError,
    PermanentSinkError,
    SchemaVersionError,
    SinkError,
    TransientSinkError,
)
from metricstream.sinks import KafkaSink, sink_from_url
from metricstream.sinks.kafka import VERDICTS, KafkaPayload, Verdict, decode_message
from metricstream.sinks.kafka.encode import MessageEncoder
from metricstream.streamer.engine.lane.retry import RetryConfig

from . import servers
from .kafka_helpers import (
    JSON,
    LINE,
    MockCluster,
    TansuProcess,
    contract_documents,
    document_of,
    read_events,
    read_topic,
    typed,
    unique_topic,
)
from .support import wait_until
from .test_contract import SinkCase, built, tag  # noqa: F401 - the contract suite's fixtures
from .test_contract import TestSinkContract as _SinkContract

BOOTSTRAP = servers.KAFKA_BOOTSTRAP


@pytest.fixture
def broker() -> str:
    servers.require_url("Kafka (Tansu)", BOOTSTRAP)
    return BOOTSTRAP


def make_events(count: int, *, correlation: Callable[[int], str | None] = lambda i: None):
    """Events of every field type, a `host` tag (the key), a `seq` tag (the order)."""
    base = 1_700_000_000_000_000_000
    events = []
    for i in range(count):
        event = (
            ms.MetricEvent("kafka_test", tags={"host": f"h{i % 5}", "seq": str(i)})
            .with_field("f", i + 0.25)
            .with_field("n", i)
            .with_field("u", ms.UInt(2**64 - 1 - i))
            .with_field("ok", i % 2 == 0)
            .with_field("s", f'say "{i}"\nsecond line' if i % 7 == 0 else f"s{i}")
            .with_timestamp(base + i)
            .with_correlation_id(correlation(i))
        )
        events.append(event)
    return events


def by_seq(events: list[ms.MetricEvent]) -> list[ms.MetricEvent]:
    return sorted(events, key=lambda event: int(event.tags["seq"]))


def read_by_contract(messages: Any) -> list[Any]:
    """The typed contract documents of (value, key, headers) messages, in order."""
    return [
        typed(document)
        for value, _key, headers in messages
        for document in contract_documents(value, dict(headers))
    ]


def documents(events: list[ms.MetricEvent], *, correlation: bool = True) -> list[Any]:
    """The typed contract documents of events the test built (without their ids if told)."""
    return [
        typed({**document_of(e), **({} if correlation else {"correlation_id": None})})
        for e in events
    ]


def streamer_for(sink: KafkaSink, **options: Any) -> ms.EventStreamer:
    settings: dict[str, Any] = {
        "batch_size": 1000,
        "flush_interval": 0.05,
        "max_buffer": 100_000,
        "register_atexit": False,
    }
    settings.update(options)
    return ms.EventStreamer([sink], **settings)


def writer_alive(streamer: ms.EventStreamer) -> bool:
    """Whether the writer thread of the streamer's one lane still runs (a write may end late)."""
    [lane] = streamer._pipeline.lanes
    return any(thread.is_alive() for thread in lane._threads if "write" in thread.name)


def counts(streamer: ms.EventStreamer, name: str = "kafka") -> tuple[int, int, int, int]:
    health = streamer.health().sinks[name]
    return health.events_accepted, health.events_written, health.events_dropped, health.pending


def write_until_done(sink: KafkaSink, payload: KafkaPayload, attempts: int = 30) -> int:
    """Write like the lane does, retrying transient failures; return the failures seen."""
    for attempt in range(attempts):
        try:
            sink.write(payload)
        except TransientSinkError:
            continue
        return attempt
    raise AssertionError(f"still failing after {attempts} attempts: {payload!r}")


class TestTopicContract:
    """The encoder follows the documented contract; decode_message reads what it documents."""

    def test_event_mode_json_messages_are_the_documented_objects(self) -> None:
        events = make_events(20, correlation=lambda i: f"req-{i}" if i % 2 else None)
        payload = KafkaSink(BOOTSTRAP, "unit").prepare(ms.EventBatch(events))
        messages = list(payload.pending)
        assert len(messages) == 20
        assert read_by_contract(messages) == documents(events)

    def test_line_messages_of_a_batch_without_raw_newlines(self) -> None:
        # make_events puts a raw newline in a string, which sends every batch the slow way.
        events = [
            ms.MetricEvent("kafka_test", tags={"host": f"h{i % 5}", "seq": str(i)})
            .with_field("f", i + 0.25)
            .with_field("u", ms.UInt(2**64 - 1 - i))
            .with_field("s", f"s{i}")
            .with_timestamp(1_700_000_000_000_000_000 + i)
            for i in range(20)
        ]
        sink = KafkaSink(BOOTSTRAP, "unit", format="line", key="host")
        messages = list(sink.prepare(ms.EventBatch(events)).pending)
        got = [typed(d) for v, _k, h in messages for d in contract_documents(v, dict(h))]
        assert got == [typed(document_of(e)) for e in events]

    def test_event_mode_line_messages_carry_the_correlation_id_in_a_header(self) -> None:
        events = make_events(20, correlation=lambda i: f"req-{i}" if i % 2 else None)
        payload = KafkaSink(BOOTSTRAP, "unit", format="line").prepare(ms.EventBatch(events))
        messages = list(payload.pending)
        assert [dict(h).get("correlation_id") for _v, _k, h in messages] == [
            None if e.correlation_id is None else e.correlation_id.encode() for e in events
        ]
        assert read_by_contract(messages) == documents(events)
        assert [e for v, _k, h in messages for e in decode_message(v, h)] == events

    def test_decode_message_reads_the_documented_values(self) -> None:
        value = (
            '{"measurement": "cpu", "tags": {"host": "a"}, "fields": {"usage": 0.5, "count": 3,'
            ' "ok": true, "note": "x", "big": {"uint": 18446744073709551615}},'
            ' "timestamp_ns": 1700000000000000000, "schema_version": 1, "correlation_id": "req-42"}'
        )
        expected = ms.MetricEvent(
            "cpu",
            {"host": "a"},
            {"usage": 0.5, "count": 3, "ok": True, "note": "x", "big": ms.UInt(2**64 - 1)},
            1_700_000_000_000_000_000,
            "req-42",
        )
        assert decode_message(value.encode(), [("content-type", JSON)]) == [expected]
        line = (
            'cpu,host=a usage=0.5,count=3i,ok=true,note="x",big=18446744073709551615u'
            " 1700000000000000000"
        )
        both = f"{line}\n{line}".encode()
        headers = [("content-type", LINE), ("schema_version", b"1"), ("correlation_id", b"req-42")]
        assert decode_message(both, headers) == [expected, expected]
        decoded = decode_message(value.encode(), [])
        assert [type(v) for v in decoded[0].fields.values()] == [float, int, bool, str, ms.UInt]

    @pytest.mark.parametrize("fmt", ["json", "line"])
    def test_batch_mode_is_one_message_with_the_batch_id(self, fmt: str) -> None:
        events = make_events(30, correlation=lambda i: "one-request")
        batch = ms.EventBatch(events)
        payload = KafkaSink(BOOTSTRAP, "unit", format=fmt, message="batch").prepare(batch)
        [(value, key, headers)] = list(payload.pending)
        assert key is None
        assert dict(headers) == {
            "content-type": JSON if fmt == "json" else LINE,
            "schema_version": b"1",
            "batch_id": batch.batch_id.encode(),
            "correlation_id": b"one-request",
        }
        assert read_by_contract([(value, key, headers)]) == documents(events)

    def test_batch_mode_groups_by_key_and_keeps_each_group_in_order(self) -> None:
        events = make_events(50)
        sink = KafkaSink(BOOTSTRAP, "unit", message="batch", key="host")
        messages = list(sink.prepare(ms.EventBatch(events)).pending)
        assert [key for _v, key, _h in messages] == [f"h{i}".encode() for i in range(5)]
        for value, key, headers in messages:
            assert read_by_contract([(value, key, headers)]) == documents(
                [e for e in events if e.tags["host"].encode() == key]
            )

    def test_batch_mode_cuts_messages_below_message_max_bytes(self) -> None:
        events = make_events(400)
        encoder = MessageEncoder("json", "batch", None, max_message_bytes=20_000)
        messages, sizes = encoder.encode(ms.EventBatch(events))
        assert len(messages) > 1
        assert all(len(value) <= 20_000 - 1024 for value in messages.values)
        assert sizes is not None
        assert sum(sizes[value] for value in messages.values) == 400
        assert read_by_contract(messages) == documents(events)

    def test_mixed_correlation_ids_leave_the_batch_header_out(self) -> None:
        events = make_events(10, correlation=lambda i: f"req-{i % 2}")
        payload = KafkaSink(BOOTSTRAP, "unit", message="batch").prepare(ms.EventBatch(events))
        [(value, key, headers)] = list(payload.pending)
        assert "correlation_id" not in dict(headers)
        assert read_by_contract([(value, key, headers)]) == documents(events)

    def test_keys_from_the_measurement_a_tag_or_a_function(self) -> None:
        events = make_events(6)
        events[3] = ms.MetricEvent("kafka_test", tags={"seq": "3"}).with_field("f", 1.0)
        batch = ms.EventBatch(events)

        def keys(key: Any) -> list[bytes | None]:
            return [k for _v, k, _h in KafkaSink(BOOTSTRAP, "t", key=key).prepare(batch).pending]

        assert keys("measurement") == [b"kafka_test"] * 6
        assert keys("host") == [b"h0", b"h1", b"h2", None, b"h4", b"h0"]
        assert keys(lambda e: e.tags["seq"]) == [str(i).encode() for i in range(6)]
        assert keys(lambda e: b"raw" if int(e.tags["seq"]) % 2 else None) == [None, b"raw"] * 3

    def test_a_failing_key_function_names_the_events_it_failed_for(self) -> None:
        events = make_events(4)
        sink = KafkaSink(BOOTSTRAP, "t", key=lambda e: 1 / int(e.tags["seq"]) and "k")
        with pytest.raises(InvalidEventError) as caught:
            sink.prepare(ms.EventBatch(events))
        assert caught.value.indexes == (0,)
        wrong_type = KafkaSink(BOOTSTRAP, "t", key=lambda e: 42)
        with pytest.raises(InvalidEventError, match="returned int"):
            wrong_type.prepare(ms.EventBatch(events))

    def test_decode_without_content_type_sniffs_the_format(self) -> None:
        event = make_events(1)[0]
        assert decode_message(event.to_json(), None) == [event]
        assert decode_message(event.to_influx_line(), []) == [
            event.copy().with_correlation_id(None)
        ]
        assert decode_message(None, None) == []

    def test_decode_refuses_newer_schemas_and_unknown_content_types(self) -> None:
        value = make_events(1)[0].to_json()
        with pytest.raises(SchemaVersionError):
            decode_message(value, [("schema_version", b"2")])
        with pytest.raises(InvalidEventError, match="content-type"):
            decode_message(value, {"content-type": "application/avro"})

    def test_every_name_in_the_error_table_is_a_librdkafka_error(self) -> None:
        names = set()
        for attribute in dir(KafkaError):
            code = getattr(KafkaError, attribute)
            if attribute.isupper() and isinstance(code, int):
                names.add(KafkaError(code).name())
        assert set(VERDICTS) - names == set()
        assert VERDICTS["MSG_SIZE_TOO_LARGE"] is Verdict.REJECT
        assert VERDICTS["TOPIC_AUTHORIZATION_FAILED"] is Verdict.MISCONFIGURED
        assert VERDICTS["UNKNOWN_TOPIC_OR_PART"] is Verdict.REJECT
        assert VERDICTS["NOT_ENOUGH_REPLICAS"] is Verdict.RETRY


class TestOptions:
    """Options are checked at construction, URLs map onto them, secrets stay hidden."""

    @pytest.mark.parametrize(
        ("options", "option"),
        [
            ({"topic": "bad topic"}, "topic"),
            ({"topic": "x" * 250}, "topic"),
            ({"format": "xml"}, "format"),
            ({"message": "stream"}, "message"),
            ({"key": ""}, "key"),
            ({"key": 3}, "key"),
            ({"compression": "brotli"}, "compression"),
            ({"acks": "2"}, "acks"),
            ({"idempotence": "yes"}, "idempotence"),
            ({"linger_ms": -1}, "linger_ms"),
            ({"delivery_timeout_ms": 0}, "delivery_timeout_ms"),
            ({"producer_config": {"acks": "1"}}, "producer_config"),
            ({"producer_config": {"on_delivery": print}}, "producer_config"),
            ({"producer_config": {"no.such.option": 1}}, "producer_config"),
            ({"idempotence": True, "acks": "1"}, "producer_config"),
            ({"bootstrap_servers": ""}, "bootstrap_servers"),
            ({"name": " "}, "name"),
        ],
    )
    def test_invalid_options_raise_config_error_naming_the_option(
        self, options: dict[str, Any], option: str
    ) -> None:
        arguments: dict[str, Any] = {"bootstrap_servers": BOOTSTRAP, "topic": "t", **options}
        with pytest.raises(ConfigError) as caught:
            KafkaSink(**arguments)
        assert caught.value.option == option

    def test_a_url_sets_every_option_and_dotted_ones_go_to_librdkafka(self) -> None:
        sink = sink_from_url(
            "kafka://127.0.0.1:1,127.0.0.1:2/metrics.v1?format=line&message=batch&key=measurement"
            "&compression=lz4&acks=all&linger_ms=2&delivery_timeout_ms=3000&name=k"
            "&client.id=app&message.max.bytes=50000"
        )
        assert isinstance(sink, KafkaSink)
        settings = sink.options
        assert (settings.bootstrap_servers, settings.topic, settings.format, settings.message) == (
            "127.0.0.1:1,127.0.0.1:2",
            "metrics.v1",
            "line",
            "batch",
        )
        assert (settings.key, sink.compression, settings.linger_ms, sink.name) == (
            "measurement",
            "lz4",
            2.0,
            "k",
        )
        assert settings.extra == {"client.id": "app", "message.max.bytes": "50000"}
        assert settings.max_message_bytes == 50_000

    @pytest.mark.parametrize(
        "url",
        [
            "kafka://127.0.0.1:1",
            "kafka://127.0.0.1:1/",
            "kafka:///topic",
            "kafka://user:pw@127.0.0.1:1/t",
            "kafka://127.0.0.1:1/t?colour=red",
            "kafka://127.0.0.1:1/t?format=json&format=line",
            "kafka://127.0.0.1:1/t?delivery_timeout_ms=soon",
        ],
    )
    def test_malformed_urls_raise_config_error(self, url: str) -> None:
        with pytest.raises(ConfigError) as caught:
            sink_from_url(url)
        assert "pw" not in str(caught.value)

    def test_the_kafka_scheme_is_registered(self) -> None:
        assert ms.sinks.schemes()["kafka"] == "metricstream.sinks.kafka:from_url"

    def test_the_streamer_codec_is_inherited_only_when_none_was_chosen(self) -> None:
        chosen = KafkaSink(BOOTSTRAP, "t", compression="gzip")
        free = KafkaSink(BOOTSTRAP, "t", name="free")
        streamer = ms.EventStreamer([chosen, free], compression="zstd", register_atexit=False)
        assert (chosen.compression, free.compression) == ("gzip", "zstd")
        streamer.shutdown(5)


@pytest.mark.servers
class TestRoundTrip:
    """Tens of thousands of events through a streamer arrive exactly, as the contract says."""

    @pytest.mark.parametrize("mode", ["event", "batch"])
    @pytest.mark.parametrize("fmt", ["json", "line"])
    def test_events_keys_headers_and_order_arrive_as_sent(
        self, broker: str, fmt: str, mode: str
    ) -> None:
        topic = unique_topic(f"roundtrip-{fmt}-{mode}")
        events = make_events(10_000, correlation=lambda i: f"req-{i // 40}" if i % 3 else None)
        sink = KafkaSink(broker, topic, format=fmt, message=mode, key="host", compression="zstd")
        streamer = streamer_for(sink)
        assert streamer.send_many(e.copy() for e in events) == 10_000
        assert streamer.flush(120)
        assert counts(streamer) == (10_000, 10_000, 0, 0)
        streamer.shutdown(10)
        records = read_topic(broker, topic, 10_000)
        # Line protocol has no place for the id: a batch message keeps it only
        # when all its events share one (checked in check_records).
        with_ids = not (fmt == "line" and mode == "batch")
        received = [typed(d) for r in records for d in r.documents]
        if not with_ids:
            received = [{**d, "correlation_id": typed(None)} for d in received]
        received.sort(key=lambda d: int(d["tags"]["seq"][1]))
        assert received == documents(events, correlation=with_ids)
        check_records(records, fmt, mode)

    @pytest.mark.parametrize("codec", ["gzip", "lz4", "snappy", "none"])
    def test_every_compression_codec_round_trips(self, broker: str, codec: str) -> None:
        topic = unique_topic(f"codec-{codec}")
        sink = KafkaSink(broker, topic, compression=codec)
        events = make_events(200)
        sink.write(sink.prepare(ms.EventBatch(events)))
        sink.close()
        assert by_seq(read_events(broker, topic, 200)) == events


def check_records(records: list[Any], fmt: str, mode: str) -> None:
    """Keys, headers and per-key order of consumed messages, as the wire contract says."""
    partition_of: dict[bytes | None, set[int]] = defaultdict(set)
    last_seq: dict[bytes | None, int] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        headers = record.headers
        assert headers["content-type"] == (JSON if fmt == "json" else LINE)
        assert headers["schema_version"] == b"1"
        assert {d["tags"]["host"].encode() for d in record.documents} == {record.key}
        ids = {d["correlation_id"] for d in record.documents}
        if mode == "event":
            assert "batch_id" not in headers
            assert len(record.documents) == 1
        else:
            assert re.fullmatch(rb"[0-9a-f]{32}", headers["batch_id"])
            assert not record.value.endswith(b"\n")
        if fmt == "json" or mode == "event":
            shared = next(iter(ids)) if len(ids) == 1 else None
            assert headers.get("correlation_id") == (None if shared is None else shared.encode())
        partition_of[record.key].add(record.partition)
        for document in record.documents:
            seq = int(document["tags"]["seq"])
            assert seq > last_seq.get(record.key, -1)
            last_seq[record.key] = seq
    assert all(len(partitions) == 1 for partitions in partition_of.values())


@pytest.mark.servers
class TestRejection:
    """What the producer or broker refuses for good is dropped as rejected; the rest arrives."""

    @pytest.mark.parametrize("mode", ["event", "batch"])
    def test_a_message_larger_than_allowed_is_rejected_and_the_rest_arrives(
        self, broker: str, mode: str
    ) -> None:
        topic = unique_topic(f"too-large-{mode}")
        events = make_events(1000)
        events[500].with_field("s", "x" * 30_000)
        sink = KafkaSink(broker, topic, message=mode, producer_config={"message.max.bytes": 20_000})
        streamer = streamer_for(sink)
        streamer.send_many(e.copy() for e in events)
        assert streamer.flush(60)
        health = streamer.health().sinks["kafka"]
        assert (health.events_written, health.dropped_by_reason["rejected"]) == (999, 1)
        assert health.pending == 0
        assert health.last_error is not None
        assert "MSG_SIZE_TOO_LARGE" in health.last_error
        streamer.shutdown(10)
        assert by_seq(read_events(broker, topic, 999)) == events[:500] + events[501:]


class TestFullLocalQueue:
    """librdkafka's full local queue makes the sink's own thread wait; nothing is lost."""

    @pytest.mark.parametrize(
        "where", [pytest.param("tansu", marks=pytest.mark.servers), "mock-cluster"]
    )
    def test_a_full_local_queue_makes_the_write_wait_and_everything_arrives(
        self, where: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        topic = unique_topic("queue-full")
        with contextlib.ExitStack() as stack:
            if where == "tansu":
                servers.require_url("Kafka (Tansu)", BOOTSTRAP)
                bootstrap = BOOTSTRAP
            else:
                cluster = stack.enter_context(MockCluster(brokers=1))
                cluster.create_topic(topic, 2)
                bootstrap = cluster.bootstrap
            self.check_full_queue(bootstrap, topic, monkeypatch)

    def check_full_queue(self, broker: str, topic: str, monkeypatch: pytest.MonkeyPatch) -> None:
        sink = KafkaSink(broker, topic, producer_config={"queue.buffering.max.messages": 10})
        waits = []
        real = sink._produce_when_room

        def counting(*args: Any) -> bool:
            waits.append(1)
            return real(*args)

        monkeypatch.setattr(sink, "_produce_when_room", counting)
        events = make_events(2000)
        streamer = streamer_for(sink)
        assert streamer.send_many(e.copy() for e in events) == 2000
        assert streamer.flush(60)
        assert counts(streamer) == (2000, 2000, 0, 0)
        streamer.shutdown(10)
        assert waits
        assert by_seq(read_events(broker, topic, 2000)) == events


@pytest.mark.servers
class TestBrokerRestart:
    """A private broker stopped mid-stream and restarted: later events arrive, counts are exact."""

    def test_events_after_the_restart_arrive_and_the_accounting_is_exact(self) -> None:
        events = make_events(3000)
        topic = unique_topic("restart")
        with TansuProcess() as tansu:
            sink = KafkaSink(tansu.bootstrap, topic, delivery_timeout_ms=3000)
            retry = RetryConfig(max_retries=20, initial_delay_ms=100, max_delay_ms=500)
            streamer = streamer_for(sink, batch_size=500, retry=retry)
            streamer.send_many(e.copy() for e in events[:1000])
            assert streamer.flush(60)
            tansu.stop()
            streamer.send_many(e.copy() for e in events[1000:2000])
            tansu.start()
            # Tansu keeps topics in memory: the restarted broker creates the
            # topic again when the producer asks for its metadata.
            assert streamer.flush(120)
            streamer.send_many(e.copy() for e in events[2000:])
            assert streamer.flush(120)
            accepted, written, dropped, pending = counts(streamer)
            assert (accepted, written + dropped, pending) == (3000, 3000, 0)
            streamer.shutdown(10)
            received = by_seq(read_events(tansu.bootstrap, topic, written - 1000))
        assert len(received) == written - 1000
        assert received[-1000:] == events[2000:]
        assert len({int(e.tags["seq"]) for e in received}) == len(received)


@pytest.fixture
def cluster() -> Iterator[MockCluster]:
    with MockCluster(brokers=2) as mock:
        yield mock


class TestMockClusterFaults:
    """Deterministic faults through librdkafka's mock cluster."""

    def test_a_broker_down_longer_than_the_retry_budget_drops_and_counts_exactly(
        self, cluster: MockCluster
    ) -> None:
        topic = unique_topic("down")
        cluster.create_topic(topic, 1)
        sink = KafkaSink(cluster.bootstrap, topic, delivery_timeout_ms=1000, check_timeout=1.0)
        sink.check()
        cluster.broker_down()
        retry = RetryConfig(max_retries=2, initial_delay_ms=10, max_delay_ms=10, jitter=False)
        streamer = streamer_for(sink, retry=retry)
        events = make_events(400)
        streamer.send_many(e.copy() for e in events[:300])
        assert streamer.flush(60)
        health = streamer.health().sinks["kafka"]
        assert (health.events_written, health.dropped_by_reason["retries_exhausted"]) == (0, 300)
        assert "_MSG_TIMED_OUT" in (health.last_error or "")
        cluster.broker_up()
        streamer.send_many(e.copy() for e in events[300:])
        assert streamer.flush(60)
        assert counts(streamer) == (400, 100, 300, 0)
        streamer.shutdown(10)
        assert by_seq(read_events(cluster.bootstrap, topic, 100)) == events[300:]

    def test_a_partly_delivered_payload_reports_what_was_written_and_resends_only_the_rest(
        self, cluster: MockCluster
    ) -> None:
        topic = unique_topic("partial")
        cluster.create_topic(topic, 2)
        cluster.set_leader(topic, 0, 1)
        cluster.set_leader(topic, 1, 2)
        sink = KafkaSink(cluster.bootstrap, topic, key="host", delivery_timeout_ms=2500)
        events = make_events(50)
        # Connected to both leaders, with a producer id, before the fault.
        write_until_done(sink, sink.prepare(ms.EventBatch(events[40:])))
        payload = sink.prepare(ms.EventBatch(events[:40]))
        cluster.broker_down(1)
        with pytest.raises(TransientSinkError, match="_MSG_TIMED_OUT") as caught:
            sink.write(payload)
        written = caught.value.written
        assert 0 < written < 40
        assert (payload.delivered, len(payload.pending)) == (written, 40 - written)
        cluster.broker_up(1)
        write_until_done(sink, payload)
        assert payload.delivered == 40
        sink.close()
        records = read_topic(cluster.bootstrap, topic, 50)
        in_partition_1 = [e for r in records if r.partition == 1 for e in r.events]
        assert sum(1 for e in in_partition_1 if int(e.tags["seq"]) < 40) == written
        assert by_seq([e for r in records for e in r.events]) == events

    def test_messages_that_time_out_are_sent_again_once_and_arrive_once(
        self, cluster: MockCluster
    ) -> None:
        topic = unique_topic("timeouts")
        cluster.create_topic(topic, 1)
        sink = KafkaSink(cluster.bootstrap, topic, delivery_timeout_ms=1000)
        events = make_events(6)
        write_until_done(sink, sink.prepare(ms.EventBatch(events[:1])))
        payload = sink.prepare(ms.EventBatch(events[1:]))
        cluster.fail_produce(KafkaError.REQUEST_TIMED_OUT, 10_000)
        with pytest.raises(TransientSinkError, match="_MSG_TIMED_OUT") as caught:
            sink.write(payload)
        assert caught.value.written == 0
        cluster.clear_produce_errors()
        write_until_done(sink, payload)
        sink.close()
        assert by_seq(read_events(cluster.bootstrap, topic, 6)) == events

    def test_a_message_the_broker_finds_too_large_is_rejected_and_later_events_pass(
        self, cluster: MockCluster
    ) -> None:
        topic = unique_topic("refused")
        cluster.create_topic(topic, 1)
        sink = KafkaSink(cluster.bootstrap, topic)
        sink.check()
        events = make_events(3)
        cluster.fail_produce(KafkaError.MSG_SIZE_TOO_LARGE, 1)
        with pytest.raises(PermanentSinkError) as caught:
            sink.write(sink.prepare(ms.EventBatch(events[:1])))
        refusal = caught.value
        assert (refusal.reason, refusal.written, refusal.unhealthy) == ("rejected", 0, False)
        assert "MSG_SIZE_TOO_LARGE (Broker: Message size too large)" in str(refusal)
        sink.write(sink.prepare(ms.EventBatch(events[1:])))
        sink.close()
        assert by_seq(read_events(cluster.bootstrap, topic, 2)) == events[1:]

    def test_an_authorization_failure_is_rejected_and_marks_the_sink_unhealthy(
        self, cluster: MockCluster
    ) -> None:
        topic = unique_topic("forbidden")
        cluster.create_topic(topic, 1)
        sink = KafkaSink(cluster.bootstrap, topic)
        sink.check()
        cluster.fail_produce(KafkaError.TOPIC_AUTHORIZATION_FAILED, 1)
        streamer = streamer_for(sink)
        streamer.send_many(make_events(4))
        assert streamer.flush(60)
        health = streamer.health().sinks["kafka"]
        assert (health.events_written, health.dropped_by_reason["rejected"]) == (0, 4)
        assert (health.connected, health.healthy) == (False, False)
        assert "TOPIC_AUTHORIZATION_FAILED" in (health.last_error or "")
        streamer.shutdown(10)

    def test_an_unknown_topic_the_broker_does_not_create_is_rejected(
        self, cluster: MockCluster
    ) -> None:
        topic = unique_topic("unknown")
        cluster.set_topic_error(topic, KafkaError.UNKNOWN_TOPIC_OR_PART)
        sink = KafkaSink(
            cluster.bootstrap,
            topic,
            producer_config={"topic.metadata.propagation.max.ms": 100},
        )
        with pytest.raises(SinkError, match="UNKNOWN_TOPIC_OR_PART"):
            sink.check()
        streamer = streamer_for(sink)
        streamer.send_many(make_events(5))
        assert streamer.flush(60)
        health = streamer.health().sinks["kafka"]
        assert (health.events_written, health.dropped_by_reason["rejected"]) == (0, 5)
        assert "UNKNOWN_TOPIC_OR_PART" in (health.last_error or "")
        streamer.shutdown(10)


class TestLifecycle:
    """check probes metadata, close is bounded, a forked child gets its own producer."""

    @pytest.mark.servers
    def test_check_passes_against_the_broker(self, broker: str) -> None:
        sink = KafkaSink(broker, unique_topic("check"))
        assert sink.check() is None
        sink.close()
        with pytest.raises(SinkError, match="closed"):
            sink.check()

    def test_check_fails_within_its_timeout_when_no_broker_answers(self) -> None:
        sink = KafkaSink(f"127.0.0.1:{servers.free_port()}", "t", check_timeout=0.5)
        with pytest.raises(SinkError, match="no metadata"):
            sink.check()
        sink.close()

    @pytest.mark.servers
    def test_close_is_idempotent_and_later_writes_count_as_shutdown(self, broker: str) -> None:
        sink = KafkaSink(broker, unique_topic("closed"))
        payload = sink.prepare(ms.EventBatch(make_events(2)))
        sink.close()
        sink.close()
        with pytest.raises(PermanentSinkError) as caught:
            sink.write(payload)
        assert caught.value.reason == "shutdown"

    def test_shutdown_with_no_broker_is_bounded_and_counts_the_rest_as_shutdown(self) -> None:
        sink = KafkaSink(f"127.0.0.1:{servers.free_port()}", "t", close_timeout=0.5)
        streamer = streamer_for(sink)
        streamer.send_many(make_events(300))
        assert streamer.shutdown(timeout=1.0) is False
        health = streamer.health().sinks["kafka"]
        assert (health.events_accepted, health.events_written, health.pending) == (300, 0, 0)
        reasons = health.dropped_by_reason
        assert reasons["shutdown"] + reasons["unconfirmed"] == 300
        # The write in flight learns, once the close purged it, that nothing was sent.
        assert wait_until(lambda: not writer_alive(streamer), timeout=60)
        assert streamer.health().sinks["kafka"].dropped_by_reason["shutdown"] == 300

    @pytest.mark.servers
    def test_events_delivered_during_close_are_counted_written(self, broker: str) -> None:
        topic = unique_topic("late")
        sink = KafkaSink(broker, topic)
        streamer = streamer_for(sink)
        streamer.send_many(make_events(30_000))
        streamer.shutdown(timeout=0.05)  # a batch is being written at the deadline
        assert wait_until(lambda: not writer_alive(streamer), timeout=60)  # every late report is in
        health = streamer.health().sinks["kafka"]
        reasons = health.dropped_by_reason
        assert (health.events_accepted, health.pending) == (30_000, 0)
        assert health.events_written + reasons["shutdown"] + reasons["unconfirmed"] == 30_000
        assert health.events_dropped == reasons["shutdown"] + reasons["unconfirmed"]
        arrived = sum(len(r.events) for r in read_topic(broker, topic, health.events_written))
        assert arrived == health.events_written

    @pytest.mark.servers
    def test_a_forked_child_produces_through_a_new_producer(self, broker: str) -> None:
        topic = unique_topic("fork")
        events = make_events(300)
        sink = KafkaSink(broker, topic)
        streamer = streamer_for(sink)
        streamer.send_many(e.copy() for e in events[:100])
        assert streamer.flush(60)
        parent_producer = sink._producer
        pid = os.fork()
        if pid == 0:  # the child: report through the exit code only
            code = 1
            try:
                streamer.send_many(e.copy() for e in events[100:200])
                fresh = sink._producer is not parent_producer
                if streamer.flush(60) and fresh and counts(streamer) == (100, 100, 0, 0):
                    code = 0
                streamer.shutdown(10)
            finally:
                os._exit(code)
        streamer.send_many(e.copy() for e in events[200:])
        assert streamer.flush(60)
        assert wait_for_child(pid) == 0
        assert counts(streamer) == (200, 200, 0, 0)
        streamer.shutdown(10)
        assert by_seq(read_events(broker, topic, 300)) == events

    @pytest.mark.servers
    def test_a_sink_used_in_a_forked_child_without_a_streamer_replaces_its_producer(
        self, broker: str
    ) -> None:
        topic = unique_topic("fork-direct")
        sink = KafkaSink(broker, topic)
        events = make_events(2)
        sink.write(sink.prepare(ms.EventBatch(events[:1])))
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                sink.write(sink.prepare(ms.EventBatch(events[1:])))
                sink.close()
                code = 0
            finally:
                os._exit(code)
        assert wait_for_child(pid) == 0
        sink.close()
        assert by_seq(read_events(broker, topic, 2)) == events


def wait_for_child(pid: int, timeout: float = 90.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError("the forked child did not finish")


@pytest.mark.servers
class TestSecrets:
    """A SASL password never shows in repr, errors, health or logs."""

    def test_the_password_appears_nowhere(
        self, broker: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        secret = "pw-" + os.urandom(8).hex()
        config = {
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN",
            "sasl.username": "metricstream",
            "sasl.password": secret,
        }
        caplog.set_level(logging.DEBUG, logger="metricstream")
        shown: list[str] = []
        sink = KafkaSink(
            broker,
            unique_topic("secret"),
            producer_config=config,
            delivery_timeout_ms=1500,
            check_timeout=1.0,
        )
        shown.append(repr(sink))
        try:
            sink.check()
        except SinkError as exc:
            shown.append(str(exc))
        streamer = streamer_for(sink, retry=RetryConfig(max_retries=0))
        streamer.send_many(make_events(3))
        assert streamer.flush(60)
        health = streamer.health()
        streamer.shutdown(5)
        shown.append(repr(health))
        assert health.sinks["kafka"].events_written == 0
        with pytest.raises(ConfigError) as caught:
            KafkaSink(broker, "t", producer_config={**config, "sasl.mechanism": "NOPE"})
        shown.append(str(caught.value))
        shown.extend(record.getMessage() for record in caplog.records)
        assert any("metricstream" in text for text in shown)
        assert [text for text in shown if secret in text] == []


def _kafka_make(_tmp: Path, run_tag: str) -> KafkaSink:
    return KafkaSink(BOOTSTRAP, f"contract-{run_tag}", name="kafka")


def _kafka_read(sink: Any, _tmp: Path, _tag: str) -> list[ms.MetricEvent]:
    return read_events(BOOTSTRAP, sink.options.topic, 0)


KAFKA_CASES = [
    SinkCase(
        "kafka",
        _kafka_make,
        _kafka_read,
        requires=lambda: servers.require_url("Kafka (Tansu)", BOOTSTRAP),
    )
]


@pytest.mark.servers
class TestKafkaSinkContract(_SinkContract):
    """The shared sink contract suite, run for KafkaSink against the real broker."""

    @pytest.fixture(params=KAFKA_CASES, ids=[c.id for c in KAFKA_CASES])
    def case(self, request: pytest.FixtureRequest) -> SinkCase:
        chosen: SinkCase = request.param
        chosen.requires()
        return chosen
