"""The options of an `InfluxDBSink`, checked once, and its URL schemes.

`Settings` and `check_settings` check the options; `url_arguments` reads
``influxdb://`` and ``influxdb2://`` URLs (`SCHEMES`).

Every option is validated when the sink is built, through
`metricstream._options`, and a bad one raises `ConfigError` naming it.
Credentials are checked there too, so that one that cannot travel in an
HTTP header (a token read from a file with its trailing newline) is refused
at once, and never reaches a request, a log line or a health report. No
message shows a password or token: `shown_url` masks the user information
of a URL without parsing it, whatever characters the password holds.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from metricstream._options import (
    parse_bool,
    require_bool,
    require_choice,
    require_name,
    require_number,
    require_optional_str,
)
from metricstream._secrets import MASK, is_secret_name, scrub_secrets
from metricstream.codecs.lineprotocol import PRECISIONS
from metricstream.exceptions import ConfigError
from metricstream.sinks._url import check_overrides, parse_query

__all__ = [
    "APIS",
    "SCHEMES",
    "Settings",
    "authority_end",
    "check_credential",
    "check_settings",
    "shown_url",
    "url_arguments",
]

APIS = ("v1", "v2")
"""The write APIs a sink speaks."""

SCHEMES = ("influxdb", "influxdb2")
"""The URL schemes of this sink (see `url_arguments`)."""

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_LATIN_1_MAX = 0xFF

_NOT_FOR = {
    "token": "api='v1' authenticates with username= and password=",
    "org": "org belongs to api='v2'; api='v1' writes to database=",
    "bucket": "bucket belongs to api='v2'; api='v1' writes to database=",
    "database": "database belongs to api='v1'; api='v2' writes to bucket= "
    "(InfluxDB 1.8's v2 API reads bucket='database/retention_policy')",
    "retention_policy": "retention_policy belongs to api='v1'; with api='v2' use "
    "bucket='database/retention_policy'",
    "username": "api='v2' authenticates with token=",
    "password": "api='v2' authenticates with token=",
}
"""Why an option does not fit the other API."""


@dataclass(frozen=True, slots=True)
class Settings:
    """The checked options of one sink (see `InfluxDBSink` for each).

    ``password`` and ``token`` are left out of the ``repr``.
    """

    url: str
    api: str
    precision: str
    gzip: bool | None
    timeout: float
    verify_ssl: bool
    ssl_ca_cert: str | None
    name: str
    database: str | None = None
    retention_policy: str | None = None
    org: str | None = None
    bucket: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)


def shown_url(url: str) -> str:
    """Return `url` fit for a message: no password, no secret-named query value.

    The password of the user information is masked, and so is the value of
    every query option whose name says it is secret (``token=``), up to the
    next ``&``, without relying on the URL to parse: a password holding a
    space or a quote is masked whole. When the user information cannot be
    told apart from the rest (an ``@`` after a ``/``, ``?`` or ``#``, or a
    ``#`` anywhere: an unencoded password would run into the path, query or
    fragment), only the scheme is shown.
    """
    scheme, slashes, rest = url.partition("//")
    if not slashes:
        return scrub_secrets(url)
    end = authority_end(rest)
    if "@" in rest[end:] or "#" in rest:
        return f"{scheme}//{MASK}"
    authority, location = rest[:end], rest[end:]
    if "@" in authority:
        userinfo, _, host = authority.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        authority = f"{user}:{MASK}@{host}" if colon else authority
    path, question, query = location.partition("?")
    if question:
        options = []
        for option in query.split("&"):
            key, equals, _ = option.partition("=")
            options.append(f"{key}={MASK}" if equals and is_secret_name(key) else option)
        path = f"{path}?{'&'.join(options)}"
    return scrub_secrets(f"{scheme}//{authority}{path}")


def authority_end(rest: str) -> int:
    """Where the authority of a URL ends, in `rest` (the URL after its ``//``)."""
    return min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))


def check_credential(option: str, value: object) -> str | None:
    """Return `value` if it is None or a credential an HTTP request can carry.

    Raises:
        ConfigError: If it is not a string, is empty (a password may be), or
            holds a control character (a trailing newline from a file or an
            environment variable); a token also if it holds a character
            beyond Latin-1, which an HTTP header cannot carry. The message
            says where, never what the value is.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(option, f"must be a string, not {type(value).__name__}")
    if not value and option != "password":
        raise ConfigError(option, "must not be empty")
    if option == "token":
        beyond = next((i for i, char in enumerate(value) if ord(char) > _LATIN_1_MAX), None)
        if beyond is not None:
            raise ConfigError(
                option, f"holds a character an HTTP header cannot carry at position {beyond}"
            )
    control = _CONTROL.search(value)
    if control is not None:
        where = "at its end" if control.end() == len(value) else f"at position {control.start()}"
        raise ConfigError(
            option,
            f"contains a control character (U+{ord(control.group()):04X}) {where}; "
            "a credential read from a file or an environment variable may keep its "
            "trailing newline",
        )
    return value


def _check_base_url(url: object) -> str:
    if not isinstance(url, str) or not url.strip():
        raise ConfigError("url", f"must be a non-empty http(s) URL, not {url!r}")
    shown = shown_url(url.strip())
    try:
        parsed = urllib.parse.urlsplit(url.strip())
        parsed.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ConfigError("url", f"cannot parse {shown!r}") from None
    if parsed.username is not None or parsed.password is not None:
        raise ConfigError(
            "url",
            "must not contain credentials; pass username=/password= (v1) or token= (v2)",
        )
    if parsed.scheme.lower() not in ("http", "https") or not parsed.hostname:
        raise ConfigError("url", f"must be http://host:port or https://host:port, not {shown!r}")
    if parsed.query or parsed.fragment:
        raise ConfigError(
            "url", f"must not have a query or fragment: {shown!r}; pass options as arguments"
        )
    return urllib.parse.urlunsplit(
        (parsed.scheme.lower(), parsed.netloc, parsed.path.rstrip("/"), "", "")
    )


def _refuse_for_api(api: str, **options: object) -> None:
    for option, value in options.items():
        if value is not None:
            raise ConfigError(option, f"not used with api={api!r}: {_NOT_FOR[option]}")


def _check_v1(database: object, username: object, password: object) -> None:
    if database is None:
        raise ConfigError("database", "required with api='v1' (the database to write to)")
    if (username is None) != (password is None):
        missing = "password" if password is None else "username"
        raise ConfigError(missing, "username and password must be given together")
    if isinstance(username, str) and ":" in username:
        raise ConfigError(
            "username", "must not contain ':' (HTTP basic auth ends the user name there)"
        )


def _check_v2(org: object, bucket: object) -> None:
    if bucket is None:
        raise ConfigError("bucket", "required with api='v2' (the bucket to write to)")
    if org is None:
        raise ConfigError(
            "org",
            "required with api='v2': InfluxDB 2.x needs the organization; "
            "VictoriaMetrics and InfluxDB 3 ignore it, so any name works there",
        )


def _check_ca_file(ssl_ca_cert: str | os.PathLike[str] | None) -> str | None:
    ca_cert = None if ssl_ca_cert is None else os.fspath(ssl_ca_cert)
    if ca_cert is not None and not os.path.isfile(ca_cert):
        raise ConfigError("ssl_ca_cert", f"no such file: {ca_cert!r}")
    return ca_cert


def check_settings(
    url: object,
    *,
    api: object,
    token: object,
    org: object,
    bucket: object,
    database: object,
    retention_policy: object,
    username: object,
    password: object,
    precision: object,
    gzip: object,
    timeout: object,
    verify_ssl: object,
    ssl_ca_cert: str | os.PathLike[str] | None,
    name: object,
) -> Settings:
    """Check every option of `InfluxDBSink` (see there) and return them.

    Raises:
        ConfigError: If an option is invalid or does not fit the API; it
            names the option and never shows a password or token.
    """
    base_url = _check_base_url(url)
    chosen_api = require_choice("api", api, APIS)
    if gzip is not None and not isinstance(gzip, bool):
        raise ConfigError("gzip", f"must be True, False or None, not {gzip!r}")
    settings = Settings(
        url=base_url,
        api=chosen_api,
        precision=require_choice("precision", precision, tuple(PRECISIONS)),
        gzip=gzip,
        timeout=require_number("timeout", timeout, minimum=0, inclusive=False),
        verify_ssl=require_bool("verify_ssl", verify_ssl),
        ssl_ca_cert=_check_ca_file(ssl_ca_cert),
        name="influxdb" if name is None else require_name("name", name),
        database=require_optional_str("database", database),
        retention_policy=require_optional_str("retention_policy", retention_policy),
        org=require_optional_str("org", org),
        bucket=require_optional_str("bucket", bucket),
        username=check_credential("username", username),
        password=check_credential("password", password),
        token=check_credential("token", token),
    )
    if chosen_api == "v1":
        _refuse_for_api("v1", token=token, org=org, bucket=bucket)
        _check_v1(database, username, password)
    else:
        _refuse_for_api(
            "v2",
            database=database,
            retention_policy=retention_policy,
            username=username,
            password=password,
        )
        _check_v2(org, bucket)
    return settings


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


def url_arguments(url: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Return the `InfluxDBSink` arguments a URL stands for; `overrides` win.

    Forms::

        influxdb://[user:password@]host[:port]/DATABASE[?rp=&precision=&gzip=&tls=]
        influxdb2://host[:port]?org=&bucket=[&token=&precision=&gzip=&tls=]

    The port defaults to 8086. ``tls=true`` speaks https. Both also take
    ``timeout``, ``name``, ``verify_ssl`` and ``ssl_ca_cert``. The v2 token
    comes from ``token=`` (argument, then URL) or else the ``INFLUX_TOKEN``
    environment variable. User, password and database are percent-decoded.

    Args:
        url: The URL.
        overrides: Constructor arguments that replace the URL's options.

    Returns:
        The arguments, the base URL as ``url``.

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
    return {"url": base_url, "api": api, **kwargs}


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
