"""`KafkaSink`'s options: validation, the librdkafka configuration, masking secrets, URLs.

``kafka://`` URLs (`SCHEMES`) are read by `url_arguments`.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from metricstream._options import (
    parse_bool,
    require_bool,
    require_choice,
    require_int,
    require_number,
)
from metricstream._secrets import MASK, is_secret_name, scrub_secrets
from metricstream.codecs.compression import Compression
from metricstream.exceptions import ConfigError
from metricstream.sinks._url import check_overrides, parse_query
from metricstream.sinks.kafka.encode import FORMATS, MESSAGE_MODES, KeyFunction

__all__ = [
    "ACKS",
    "COMPRESSIONS",
    "RESERVED_OPTIONS",
    "SCHEMES",
    "Settings",
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


def check_topic(topic: object) -> str:
    """Return `topic` if it is a legal Kafka topic name.

    Raises:
        ConfigError: Otherwise.
    """
    if not isinstance(topic, str) or _TOPIC.fullmatch(topic) is None or topic in (".", ".."):
        raise ConfigError(
            "topic",
            f"must be 1 to 249 characters of ASCII letters, digits, '.', '_' and '-' "
            f"(not '.' or '..'), not {topic!r}",
        )
    return topic


def check_key(key: object) -> str | KeyFunction | None:
    """Return `key` if it is None, a non-empty string or a callable.

    Raises:
        ConfigError: Otherwise.
    """
    if key is None or callable(key) or (isinstance(key, str) and key.strip()):
        return key
    raise ConfigError("key", f"must be None, 'measurement', a tag name or a function, not {key!r}")


def compression_name(value: object) -> str | None:
    """Return the ``compression.type`` for `value` (None stays None: not chosen).

    Raises:
        ConfigError: If it is not one of `COMPRESSIONS`.
    """
    if value is None:
        return None
    if isinstance(value, Compression):
        return value.value
    if isinstance(value, str) and value.strip().lower() in COMPRESSIONS:
        return value.strip().lower()
    raise ConfigError("compression", f"must be one of {', '.join(COMPRESSIONS)}, not {value!r}")


def _check_acks(acks: object) -> str:
    if isinstance(acks, int) and not isinstance(acks, bool):
        acks = str(acks)
    return require_choice("acks", acks, ACKS)


def _bootstrap(servers: object) -> str:
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


def _extra(producer_config: object) -> dict[str, Any]:
    if producer_config is None:
        return {}
    if not isinstance(producer_config, Mapping):
        raise ConfigError(
            "producer_config", f"must be a mapping, not {type(producer_config).__name__}"
        )
    extra: dict[str, Any] = {}
    for option, value in producer_config.items():
        if not isinstance(option, str) or not option:
            raise ConfigError("producer_config", f"option names must be strings, not {option!r}")
        if option in RESERVED_OPTIONS:
            argument = RESERVED_OPTIONS[option]
            hint = f"use the {argument}= argument" if argument else "the sink sets it itself"
            raise ConfigError("producer_config", f"{option!r} cannot be set here: {hint}")
        extra[option] = value
    return extra


@dataclass(frozen=True)
class Settings:
    """The validated options of a `KafkaSink` (see its documentation)."""

    bootstrap_servers: str
    topic: str
    format: str
    message: str
    key: str | KeyFunction | None
    compression: str | None
    idempotence: bool
    acks: str
    linger_ms: float
    delivery_timeout_ms: int
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, bootstrap_servers: object, topic: object, **options: Any) -> Settings:
        """Validate every option.

        Raises:
            ConfigError: Naming the first invalid option.
        """
        return cls(
            bootstrap_servers=_bootstrap(bootstrap_servers),
            topic=check_topic(topic),
            format=require_choice("format", options["format"], FORMATS),
            message=require_choice("message", options["message"], MESSAGE_MODES),
            key=check_key(options["key"]),
            compression=compression_name(options["compression"]),
            idempotence=require_bool("idempotence", options["idempotence"]),
            acks=_check_acks(options["acks"]),
            linger_ms=require_number("linger_ms", options["linger_ms"], minimum=0),
            delivery_timeout_ms=require_int(
                "delivery_timeout_ms", options["delivery_timeout_ms"], minimum=1
            ),
            extra=_extra(options["producer_config"]),
        )

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


_URL_OPTIONS = (
    "acks",
    "check_timeout",
    "close_timeout",
    "compression",
    "delivery_timeout_ms",
    "format",
    "idempotence",
    "key",
    "linger_ms",
    "message",
    "name",
)
_OVERRIDES = (*_URL_OPTIONS, "producer_config")


def _number(option: str, text: str, kind: type[int] | type[float]) -> int | float:
    try:
        return kind(text)
    except ValueError:
        noun = "a whole number" if kind is int else "a number"
        raise ConfigError(option, f"expected {noun}, not {text!r}") from None


def _values(options: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for option, text in options.items():
        if option == "idempotence":
            values[option] = parse_bool(option, text)
        elif option == "delivery_timeout_ms":
            values[option] = _number(option, text, int)
        elif option in ("linger_ms", "check_timeout", "close_timeout"):
            values[option] = _number(option, text, float)
        else:
            values[option] = text
    return values


def url_arguments(url: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Return the `KafkaSink` arguments a ``kafka://`` URL stands for; `overrides` win.

    Form: ``kafka://HOST:PORT[,HOST:PORT...]/TOPIC?OPTIONS``, for example
    ``kafka://broker1:9092,broker2:9092/metrics?format=json&message=event&key=measurement&compression=zstd``.
    Options: ``format``, ``message``, ``key``, ``compression``,
    ``idempotence``, ``acks``, ``linger_ms``, ``delivery_timeout_ms``,
    ``name``, ``check_timeout``, ``close_timeout``; any option with a dot in
    its name is a librdkafka option for ``producer_config``
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
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    dotted = tuple(sorted({name for name, _ in pairs if "." in name}))
    options = parse_query(url, query, (*_URL_OPTIONS, *dotted))
    producer_config = {name: options.pop(name) for name in dotted}
    kwargs = _values(options)
    if producer_config:
        kwargs["producer_config"] = producer_config
    check_overrides(overrides, _OVERRIDES, "KafkaSink")
    if "producer_config" in overrides and producer_config:
        overrides = {
            **overrides,
            "producer_config": {**producer_config, **(overrides["producer_config"] or {})},
        }
    kwargs.update(overrides)
    return {"bootstrap_servers": servers, "topic": topic, **kwargs}
