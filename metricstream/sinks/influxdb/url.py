"""``influxdb://`` and ``influxdb2://`` URLs: `from_url` builds an `InfluxDBSink` from one."""

from __future__ import annotations

import os
import urllib.parse
from typing import Any

from metricstream._options import parse_bool
from metricstream._secrets import is_secret_name
from metricstream.exceptions import ConfigError
from metricstream.sinks._url import check_overrides, parse_query
from metricstream.sinks.influxdb.config import authority_end, shown_url
from metricstream.sinks.influxdb.sink import InfluxDBSink

__all__ = ["SCHEMES", "from_url"]

SCHEMES = ("influxdb", "influxdb2")
"""The URL schemes this module builds sinks for (see `from_url`)."""

_COMMON_OPTIONS = ("gzip", "name", "precision", "ssl_ca_cert", "timeout", "tls", "verify_ssl")
_URL_OPTIONS = {
    "influxdb": (*_COMMON_OPTIONS, "rp"),
    "influxdb2": (*_COMMON_OPTIONS, "bucket", "org", "token"),
}
_ALL_OPTIONS = frozenset(_URL_OPTIONS["influxdb"] + _URL_OPTIONS["influxdb2"])
_OVERRIDES = (
    "bucket", "database", "gzip", "name", "org", "password", "precision", "retention_policy",
    "ssl_ca_cert", "timeout", "token", "username", "verify_ssl",
)  # fmt: skip
_DEFAULT_PORT = 8086


def from_url(url: str, **overrides: Any) -> InfluxDBSink:
    """Build an `InfluxDBSink` from a URL; keyword arguments override URL options.

    Forms::

        influxdb://[user:password@]host[:port]/DATABASE[?rp=&precision=&gzip=&tls=]
        influxdb2://host[:port]?org=&bucket=[&token=&precision=&gzip=&tls=]

    The port defaults to 8086. ``tls=true`` speaks https. Both also take
    ``timeout``, ``name``, ``verify_ssl`` and ``ssl_ca_cert``. The v2 token
    comes from ``token=`` (argument, then URL) or else the ``INFLUX_TOKEN``
    environment variable. User, password and database are percent-decoded.

    Args:
        url: The URL.
        **overrides: Constructor arguments that replace the URL's options.

    Returns:
        The sink.

    Raises:
        ConfigError: If the URL or an option is invalid; it names the option
            and never shows the password or token.
    """
    _refuse_unencoded(url)
    shown = shown_url(url)
    try:
        parsed = urllib.parse.urlsplit(url)
        port = parsed.port
    except ValueError:
        raise ConfigError("url", f"cannot parse {shown!r} (check the port)") from None
    scheme = parsed.scheme.lower()
    if scheme not in _URL_OPTIONS:
        raise ConfigError("url", f"expected an influxdb:// or influxdb2:// URL, not {shown!r}")
    if not parsed.hostname:
        raise ConfigError("url", f"no host in {shown!r}")
    if "api" in overrides:
        raise ConfigError("api", f"is set by the URL scheme ({scheme}://), not by an override")
    check_overrides(overrides, _OVERRIDES, "InfluxDBSink")
    options = parse_query(shown, parsed.query, _URL_OPTIONS[scheme])
    host = f"[{parsed.hostname}]" if ":" in parsed.hostname else parsed.hostname
    tls = parse_bool("tls", options.pop("tls", "false"))
    base_url = f"{'https' if tls else 'http'}://{host}:{port or _DEFAULT_PORT}"
    kwargs = _option_values(options)
    if scheme == "influxdb":
        kwargs.update(_v1_target(parsed, shown, overrides))
        api = "v1"
    else:
        kwargs.update(_v2_target(parsed, shown, kwargs, overrides))
        api = "v2"
    kwargs.update(overrides)
    return InfluxDBSink(base_url, api=api, **kwargs)


def _refuse_unencoded(url: str) -> None:
    """Refuse a URL where a password or token would run into another part.

    The user information ends at the first ``/``, ``?`` or ``#``, and an
    option's value at the next ``&`` or ``#``: an unencoded one in a
    password or token would make part of the secret read as the host, path
    or an option, and show up in a message or a ``repr``. These messages
    therefore do not show the URL.
    """
    rest = url.partition("//")[2]
    if "@" in rest[authority_end(rest) :]:
        raise ConfigError(
            "url",
            "has an '@' after the host: percent-encode '/', '?', '#' and '@' in a user "
            "name or password (%2F, %3F, %23, %40), and '@' elsewhere",
        )
    if "#" in rest:
        raise ConfigError("url", "has a '#': percent-encode it (%23), in a token or elsewhere")
    after_secret: str | None = None
    for option in rest.partition("?")[2].split("&"):
        key = option.partition("=")[0]
        if after_secret is not None and key not in _ALL_OPTIONS:
            raise ConfigError(
                after_secret, "is followed by something that is not an option: if its value "
                "holds an '&', percent-encode it as %26",
            )  # fmt: skip
        after_secret = key if is_secret_name(key) else None


def _option_values(options: dict[str, str]) -> dict[str, Any]:
    """Constructor arguments from the URL's query options (text) besides ``tls``."""
    values: dict[str, Any] = {}
    for key, text in options.items():
        if key in ("gzip", "verify_ssl"):
            values[key] = parse_bool(key, text)
        elif key == "timeout":
            try:
                values[key] = float(text)
            except ValueError:
                raise ConfigError(key, f"must be a number of seconds, not {text!r}") from None
        elif key == "rp":
            values["retention_policy"] = text
        else:
            values[key] = text
    return values


def _v1_target(
    parsed: urllib.parse.SplitResult, shown: str, overrides: dict[str, Any]
) -> dict[str, Any]:
    """The database (the URL's path) and the credentials of an ``influxdb://`` URL."""
    kwargs: dict[str, Any] = {}
    path = urllib.parse.unquote(parsed.path.strip("/"))
    if not path and "database" not in overrides:
        raise ConfigError(
            "database", f"influxdb:// URLs name the database as their path: {shown!r}"
        )
    if "/" in path:
        raise ConfigError(
            "database",
            "the path must be just the database name (use ?rp= for the retention policy): "
            f"{shown!r}",
        )
    if path:
        kwargs["database"] = path
    if parsed.username is not None:
        kwargs["username"] = urllib.parse.unquote(parsed.username)
        kwargs["password"] = urllib.parse.unquote(parsed.password or "")
    return kwargs


def _v2_target(
    parsed: urllib.parse.SplitResult,
    shown: str,
    options: dict[str, Any],
    overrides: dict[str, Any],
) -> dict[str, Any]:
    """The token of an ``influxdb2://`` URL from the environment, if not given."""
    if parsed.path.strip("/"):
        raise ConfigError("url", f"influxdb2:// URLs take no path (use ?bucket=): {shown!r}")
    if parsed.username is not None or parsed.password is not None:
        raise ConfigError("url", f"influxdb2:// URLs take token=, not user:password@: {shown!r}")
    if "token" not in options and "token" not in overrides:
        env_token = os.environ.get("INFLUX_TOKEN")
        if env_token:
            return {"token": env_token}
    return {}
