"""`KafkaSink`'s options: validation, the librdkafka configuration, masking secrets, URLs.

``kafka://`` URLs (`SCHEMES`) are read by `url_arguments`.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from metricstream._options import (
    Kind,
    boolean,
    choice,
    duration,
    integer,
    option,
    options_class,
    require_choice,
    text,
)
from metricstream._secrets import MASK, is_secret_name, scrub_secrets
from metricstream.codecs.compression import Compression
from metricstream.exceptions import ConfigError
from metricstream.sinks._url import check_overrides, query_options
from metricstream.sinks.kafka.encode import FORMATS, MESSAGE_MODES, KeyFunction

__all__ = [
    "ACKS",
    "COMPRESSIONS",
    "RESERVED_OPTIONS",
    "SCHEMES",
    "KafkaOptions",
    "check_key",
    "check_topic",
    "compression_name",
    "secret_masker",
    "url_arguments",
]

SCHEMES = ("kafka",)
"""The URL schemes of this sink (see `url_arguments`)."""

COMPRESSIONS = ("zstd", "gzip", "lz4", "snappy", "none")
"""The values of librdkafka's ``compression.type`` the sink accepts."""

ACKS = ("all", "-1", "0", "1")
"""The values of ``acks`` (``-1`` is ``all``)."""

RESERVED_OPTIONS: dict[str, str] = {
    "bootstrap.servers": "bootstrap_servers",
    "metadata.broker.list": "bootstrap_servers",
    "enable.idempotence": "idempotence",
    "acks": "acks",
    "request.required.acks": "acks",
    "linger.ms": "linger_ms",
    "queue.buffering.max.ms": "linger_ms",
    "compression.type": "compression",
    "compression.codec": "compression",
    "delivery.timeout.ms": "delivery_timeout_ms",
    "message.timeout.ms": "delivery_timeout_ms",
    "on_delivery": "",
    "delivery.report.only.error": "",
    "dr_cb": "",
    "dr_msg_cb": "",
    "error_cb": "",
    "logger": "",
    "transactional.id": "",
}
"""librdkafka options `producer_config` may not set: the sink's argument named
here sets them, or (empty name) the sink's accounting depends on them."""

_EXTRA_SECRET_OPTIONS = frozenset({"ssl.key.pem", "ssl_key", "sasl.oauthbearer.config"})
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_DEFAULT_MAX_MESSAGE_BYTES = 1_000_000


def check_topic(option_name: str, topic: object) -> str:
    """Return `topic` if it is a legal Kafka topic name.

    Raises:
        ConfigError: Otherwise, naming `option_name`.
    """
    if not isinstance(topic, str) or _TOPIC.fullmatch(topic) is None or topic in (".", ".."):
        raise ConfigError(
            option_name,
            f"must be 1 to 249 characters of ASCII letters, digits, '.', '_' and '-' "
            f"(not '.' or '..'), not {topic!r}",
        )
    return topic


def check_key(option_name: str, key: object) -> str | KeyFunction | None:
    """Return `key` if it is None, a non-empty string or a callable.

    Raises:
        ConfigError: Otherwise, naming `option_name`.
    """
    if key is None or callable(key) or (isinstance(key, str) and key.strip()):
        return key
    raise ConfigError(
        option_name, f"must be None, 'measurement', a tag name or a function, not {key!r}"
    )


def compression_name(value: object, option_name: str = "compression") -> str | None:
    """Return the ``compression.type`` for `value` (None stays None: not chosen).

    Raises:
        ConfigError: If it is not one of `COMPRESSIONS`, naming `option_name`.
    """
    if value is None:
        return None
    if isinstance(value, Compression):
        return value.value
    if isinstance(value, str) and value.strip().lower() in COMPRESSIONS:
        return value.strip().lower()
    raise ConfigError(option_name, f"must be one of {', '.join(COMPRESSIONS)}, not {value!r}")


def _check_acks(option_name: str, acks: object) -> str:
    if isinstance(acks, int) and not isinstance(acks, bool):
        acks = str(acks)
    return require_choice(option_name, acks, ACKS)


def _check_compression(option_name: str, value: object) -> str | None:
    return compression_name(value, option_name)


def _bootstrap(_option: str, servers: object) -> str:
    if isinstance(servers, str):
        parts = [part.strip() for part in servers.split(",")]
    elif isinstance(servers, Sequence) and all(isinstance(part, str) for part in servers):
        parts = [part.strip() for part in servers]
    else:
        raise ConfigError(
            "bootstrap_servers", f"must be 'host:port[,host:port...]' or a list, not {servers!r}"
        )
    if not parts or not all(parts):
        raise ConfigError(
            "bootstrap_servers", f"names an empty server in {scrub_secrets(repr(servers))}"
        )
    return ",".join(parts)


def _extra(_option: str, producer_config: object) -> dict[str, Any]:
    if producer_config is None:
        return {}
    if not isinstance(producer_config, Mapping):
        raise ConfigError(
            "producer_config", f"must be a mapping, not {type(producer_config).__name__}"
        )
    extra: dict[str, Any] = {}
    for setting, value in producer_config.items():
        if not isinstance(setting, str) or not setting:
            raise ConfigError("producer_config", f"option names must be strings, not {setting!r}")
        if setting in RESERVED_OPTIONS:
            argument = RESERVED_OPTIONS[setting]
            hint = f"use the {argument}= argument" if argument else "the sink sets it itself"
            raise ConfigError("producer_config", f"{setting!r} cannot be set here: {hint}")
        extra[setting] = value
    return extra


@options_class
class KafkaOptions:
    """The options of a `KafkaSink`, each checked when the sink is built."""

    bootstrap_servers: str | list[str] = option(
        kind=Kind("'host:port[,host:port...]' or a list of them", _bootstrap),
        doc="The brokers to start from.",
        kw_only=False,
        text=False,
    )
    topic: str = option(
        kind=Kind("a Kafka topic name", check_topic), doc="The topic.", kw_only=False, text=False
    )
    format: str = option(
        default="json",
        kind=choice(FORMATS),
        doc="'json' (the event's JSON) or 'line' (its line protocol entry).",
    )
    message: str = option(
        default="event",
        kind=choice(MESSAGE_MODES),
        doc="'event' (one message per event) or 'batch' (one per batch and key, "
        "newline-joined, cut below message.max.bytes).",
    )
    key: str | KeyFunction | None = option(
        default=None,
        kind=Kind("None, 'measurement', a tag name or a function", check_key),
        doc="None (no key), 'measurement', a tag name, or a function event -> bytes | str | "
        "None; events with one key stay in order on one partition.",
    )
    compression: str | None = option(
        default=None,
        kind=Kind(f"one of {', '.join(COMPRESSIONS)}, or None", _check_compression),
        doc="librdkafka's compression.type; None takes the streamer's codec "
        "(inherit_compression), else none.",
    )
    idempotence: bool = option(
        default=True, kind=boolean(), doc="librdkafka's enable.idempotence (needs acks='all')."
    )
    acks: str = option(
        default="all",
        kind=Kind(f"one of {', '.join(ACKS)}", _check_acks),
        doc="'all', '1' or '0'.",
    )
    linger_ms: float = option(
        default=5,
        kind=duration(unit="milliseconds", minimum=0, inclusive=True),
        doc="librdkafka's linger.ms.",
    )
    delivery_timeout_ms: int = option(
        default=120_000,
        kind=integer(minimum=1),
        doc="librdkafka's delivery.timeout.ms: how long the producer tries one message; a "
        "write waits that long (plus a few seconds) for its delivery reports at most.",
    )
    producer_config: dict[str, Any] | None = option(
        default=None,
        kind=Kind("a mapping of librdkafka options", _extra),
        doc="Any other librdkafka option (security.protocol, sasl.*, ssl.*, client.id, "
        "message.max.bytes...); secret values never appear in repr, logs, health or errors.",
        text=False,
    )
    name: str = option(default="kafka", kind=text(), doc="The sink's name in health reports.")
    check_timeout: float = option(
        default=10.0,
        kind=duration(minimum=0.001, inclusive=True),
        doc="Seconds check waits for the topic's metadata.",
    )
    close_timeout: float = option(
        default=2.0,
        kind=duration(minimum=0, inclusive=True),
        doc="Seconds close waits for messages still queued before purging them.",
    )

    @property
    def extra(self) -> dict[str, Any]:
        """`producer_config`, checked (empty when none was given)."""
        return self.producer_config or {}

    @property
    def max_message_bytes(self) -> int:
        """The producer's ``message.max.bytes``: given, or librdkafka's default."""
        given = self.extra.get("message.max.bytes")
        if given is None:
            return _DEFAULT_MAX_MESSAGE_BYTES
        try:
            return int(given)
        except (TypeError, ValueError):
            raise ConfigError(
                "producer_config", f"'message.max.bytes' must be an integer, not {given!r}"
            ) from None

    def librdkafka(self, compression: str) -> dict[str, Any]:
        """Return the producer's configuration (without callbacks)."""
        config: dict[str, Any] = {
            "client.id": "metricstream",
            "partitioner": "murmur2_random",
            **self.extra,
            "bootstrap.servers": self.bootstrap_servers,
            "enable.idempotence": self.idempotence,
            "acks": self.acks,
            "linger.ms": self.linger_ms,
            "compression.type": compression,
            "delivery.timeout.ms": self.delivery_timeout_ms,
        }
        return config

    def redacted_extra(self) -> dict[str, object]:
        """`extra` with every secret value replaced by ``***``."""
        return {key: MASK if _is_secret(key) else value for key, value in self.extra.items()}


def _is_secret(option: str) -> bool:
    return is_secret_name(option) or option in _EXTRA_SECRET_OPTIONS


def secret_masker(extra: Mapping[str, Any]) -> Callable[[str], str]:
    """Return a function that removes credentials from a text.

    It applies `scrub_secrets`, then replaces the literal value of every
    secret option in `extra`, wherever it appears (librdkafka may quote a
    value in its messages without its option name next to it).
    """
    values = sorted(
        {str(value) for key, value in extra.items() if _is_secret(key) and str(value)},
        key=len,
        reverse=True,
    )

    def mask(text: str) -> str:
        text = scrub_secrets(text)
        for value in values:
            text = text.replace(value, MASK)
        return text

    return mask


def url_arguments(url: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Return the `KafkaSink` arguments a ``kafka://`` URL stands for; `overrides` win.

    Form: ``kafka://HOST:PORT[,HOST:PORT...]/TOPIC?OPTIONS``, for example
    ``kafka://broker1:9092,broker2:9092/metrics?format=json&message=event&key=measurement&compression=zstd``.
    Options: those of `KafkaOptions` (``format``, ``message``, ``key``,
    ``compression``, ``idempotence``, ``acks``, ``linger_ms``,
    ``delivery_timeout_ms``, ``name``, ``check_timeout``,
    ``close_timeout``); any option with a dot in its name is a librdkafka
    option for ``producer_config``
    (``security.protocol=SASL_SSL&sasl.username=u&sasl.password=${KAFKA_PASSWORD}``).

    Raises:
        ConfigError: If the URL is not a ``kafka://`` URL, names no broker or
            topic, holds credentials before the host, or an option is
            unknown, repeated or invalid.
    """
    shown = scrub_secrets(url)
    scheme, sep, rest = url.partition(":")
    if not sep or scheme.lower() != "kafka" or not rest.startswith("//"):
        raise ConfigError("url", f"not a kafka:// URL: {shown!r}")
    location, _, query = rest[2:].partition("?")
    servers, _, topic = location.partition("/")
    if "@" in servers:
        raise ConfigError(
            "url",
            f"{shown!r} has credentials before the host; pass them as librdkafka options: "
            "?security.protocol=SASL_SSL&sasl.mechanism=PLAIN&sasl.username=U&sasl.password=P",
        )
    if not servers:
        raise ConfigError("bootstrap_servers", f"{shown!r} names no broker")
    topic = urllib.parse.unquote(topic.rstrip("/"))
    if not topic:
        raise ConfigError("topic", f"{shown!r} names no topic; use kafka://HOST:PORT/TOPIC")
    check_overrides(overrides, KafkaOptions, "KafkaSink", exclude=("bootstrap_servers", "topic"))
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    dotted = tuple(sorted({name for name, _ in pairs if "." in name}))
    kwargs, producer_config = query_options(url, query, KafkaOptions, url_only=dotted)
    if producer_config:
        kwargs["producer_config"] = producer_config
    if "producer_config" in overrides and producer_config:
        overrides = {
            **overrides,
            "producer_config": {**producer_config, **(overrides["producer_config"] or {})},
        }
    return {"bootstrap_servers": servers, "topic": topic, **kwargs, **overrides}
