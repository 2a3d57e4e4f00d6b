"""Where a relay reads: `KafkaSource`, its options declared once, and ``kafka://`` source URLs.

``kafka://HOST:PORT[,HOST:PORT...]/TOPIC[,TOPIC...]?group=GROUP`` with the
options of `KafkaSource` as query options (``group``, ``start``, ``dlq``)
and any option with a dot in its name passed to librdkafka's consumer
(``session.timeout.ms=10000``, ``security.protocol=SASL_SSL``...)::

    kafka://broker1:9092,broker2:9092/metrics,audit?group=metrics-relay&dlq=metrics-dead

The relay sets the options its guarantees depend on itself
(`RESERVED_SETTINGS`): the group, offsets committed by the relay alone,
where a group without committed offsets starts.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from metricstream._options import Kind, choice, option, optional, options_class, text
from metricstream._secrets import scrub_secrets
from metricstream.exceptions import ConfigError
from metricstream.sinks._url import query_options
from metricstream.sinks.kafka.config import check_topic, secret_masker

__all__ = ["DEFAULT_CONSUMER_SETTINGS", "RESERVED_SETTINGS", "KafkaSource", "parse_source"]

RESERVED_SETTINGS: dict[str, str] = {
    "bootstrap.servers": "the URL's host list",
    "metadata.broker.list": "the URL's host list",
    "group.id": "group=",
    "enable.auto.commit": "the relay commits offsets itself, once every sink has the events",
    "enable.auto.offset.store": "the relay commits offsets itself",
    "auto.offset.reset": "start=",
    "enable.partition.eof": "the relay does not use end-of-partition events",
    "on_commit": "the relay commits synchronously",
    "error_cb": "the relay reports errors itself",
    "logger": "the relay logs through the metricstream logger",
}
"""librdkafka settings a source may not set, and what sets them instead."""

DEFAULT_CONSUMER_SETTINGS: dict[str, Any] = {
    "client.id": "metricstream-relay",
    "session.timeout.ms": 10_000,
    "heartbeat.interval.ms": 1_000,
    "queued.max.messages.kbytes": 16_384,
    "fetch.max.bytes": 16 * 1024 * 1024,
}
"""What the relay's consumer uses unless the source says otherwise: a dead relay's
partitions move after 10 s, and at most about 16 MiB of messages wait in the
client's prefetch queue, whatever the lag."""


def _check_topics(option_name: str, topics: object) -> tuple[str, ...]:
    if isinstance(topics, str):
        topics = [part.strip() for part in topics.split(",")]
    if not isinstance(topics, Sequence) or not topics:
        raise ConfigError(option_name, f"must name at least one topic, not {topics!r}")
    checked = tuple(check_topic(option_name, topic) for topic in topics)
    if len(set(checked)) != len(checked):
        raise ConfigError(option_name, f"names a topic twice: {', '.join(checked)}")
    return checked


def _check_servers(option_name: str, servers: object) -> str:
    parts = servers.split(",") if isinstance(servers, str) else servers
    if not isinstance(parts, Sequence) or not parts:
        raise ConfigError(option_name, f"must be 'host:port[,host:port...]', not {servers!r}")
    cleaned = [str(part).strip() for part in parts]
    if not all(cleaned):
        raise ConfigError(option_name, f"names an empty server in {scrub_secrets(repr(servers))}")
    return ",".join(cleaned)


def _check_settings(option_name: str, settings: object) -> dict[str, Any]:
    if settings is None:
        return {}
    if not isinstance(settings, Mapping):
        raise ConfigError(option_name, f"must be a mapping, not {type(settings).__name__}")
    checked: dict[str, Any] = {}
    for name, value in settings.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(option_name, f"setting names must be strings, not {name!r}")
        if name in RESERVED_SETTINGS:
            raise ConfigError(
                option_name, f"{name!r} cannot be set here: {RESERVED_SETTINGS[name]}"
            )
        checked[name] = value
    return checked


@options_class
class KafkaSource:
    """The topics a relay reads, as a member of a Kafka consumer group."""

    bootstrap_servers: str = option(
        kind=Kind("'host:port[,host:port...]'", _check_servers),
        doc="The brokers to start from.",
        kw_only=False,
        text=False,
    )
    topics: tuple[str, ...] = option(
        kind=Kind("topic names (a list or 'a,b')", _check_topics),
        doc="The topics to read.",
        kw_only=False,
        text=False,
    )
    group: str = option(
        kind=text(),
        doc="The consumer group: relays of one group share the partitions and the offsets.",
    )
    start: str = option(
        default="earliest",
        kind=choice(("earliest", "latest")),
        doc="Where a partition without a committed offset starts.",
    )
    dlq: str | None = option(
        default=None,
        kind=optional(Kind("a Kafka topic name", check_topic)),
        doc="A topic for messages that cannot be decoded (dead letters); None counts them only.",
    )
    consumer_config: dict[str, Any] = option(
        default_factory=dict,
        kind=Kind("a mapping of librdkafka consumer settings", _check_settings),
        doc="Other librdkafka settings (session.timeout.ms, security.protocol, sasl.*...); "
        "in a URL, every query option with a dot in its name.",
        text=False,
    )

    def consumer_settings(self) -> dict[str, Any]:
        """The settings of the group's consumer (without callbacks)."""
        return {
            **DEFAULT_CONSUMER_SETTINGS,
            **self.consumer_config,
            "bootstrap.servers": self.bootstrap_servers,
            "group.id": self.group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": self.start,
        }

    def client_settings(self) -> dict[str, Any]:
        """The settings shared by the relay's other clients (security, client id)."""
        shared = ("security.", "sasl.", "ssl.", "client.id", "socket.", "broker.")
        picked = {k: v for k, v in self.consumer_config.items() if k.startswith(shared)}
        servers = self.bootstrap_servers
        return {"client.id": "metricstream-relay", **picked, "bootstrap.servers": servers}

    def masker(self) -> Any:
        """A function removing this source's secrets from a text (see `secret_masker`)."""
        return secret_masker(self.consumer_config)

    def describe(self) -> str:
        """The source as a URL without credentials, for logs and health."""
        topics = ",".join(self.topics)
        return f"kafka://{self.bootstrap_servers}/{topics}?group={self.group}"


def parse_source(url: str | KafkaSource, **overrides: Any) -> KafkaSource:
    """Return the `KafkaSource` a ``kafka://`` URL stands for (a source is returned as is).

    Args:
        url: ``kafka://HOST:PORT[,HOST:PORT...]/TOPIC[,TOPIC...]?group=GROUP``
            with `KafkaSource`'s options (``start``, ``dlq``) and librdkafka
            settings (names with a dot) as query options.
        overrides: `KafkaSource` options that win over the URL's.

    Raises:
        ConfigError: If the URL is not a ``kafka://`` URL, names no broker,
            topic or group, or an option is unknown, repeated or invalid.
    """
    if isinstance(url, KafkaSource):
        return url
    if not isinstance(url, str):
        raise ConfigError("source", f"must be a kafka:// URL or a KafkaSource, not {url!r}")
    shown = scrub_secrets(url)
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() != "kafka" or not url.partition(":")[2].startswith("//"):
        raise ConfigError(
            "source", f"not a kafka:// URL: {shown!r}; use kafka://HOST:PORT/TOPIC?group=GROUP"
        )
    if "@" in parts.netloc:  # librdkafka takes credentials as settings, never in the host
        raise ConfigError("source", f"{shown!r}: pass credentials as ?sasl.username=...")
    if not parts.netloc:
        raise ConfigError("bootstrap_servers", f"{shown!r} names no broker")
    topics = urllib.parse.unquote(parts.path.strip("/"))
    if not topics:
        raise ConfigError("topics", f"{shown!r} names no topic; use kafka://HOST:PORT/TOPIC")
    query = parts.query
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    dotted = tuple(sorted({name for name, _ in pairs if "." in name}))
    values, settings = query_options(url, query, KafkaSource, url_only=dotted)
    if "group" not in values and "group" not in overrides:
        raise ConfigError("group", f"{shown!r} names no consumer group; add ?group=NAME")
    arguments: dict[str, Any] = {"consumer_config": settings, **values, **overrides}
    return KafkaSource(parts.netloc, tuple(topics.split(",")), **arguments)
