"""``kafka://`` URLs: `from_url` builds a `KafkaSink` from one."""

from __future__ import annotations

import urllib.parse
from typing import Any

from metricstream._options import parse_bool
from metricstream._secrets import scrub_secrets
from metricstream.exceptions import ConfigError
from metricstream.sinks._url import check_overrides, parse_query
from metricstream.sinks.kafka.sink import KafkaSink

__all__ = ["SCHEMES", "from_url"]

SCHEMES = ("kafka",)
"""The URL schemes this module builds sinks for (see `from_url`)."""

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


def from_url(url: str, **overrides: Any) -> KafkaSink:
    """Build a `KafkaSink` from a ``kafka://`` URL; keyword arguments win.

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
    return KafkaSink(servers, topic, **kwargs)
