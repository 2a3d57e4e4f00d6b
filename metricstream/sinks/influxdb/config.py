"""The options of an `InfluxDBSink` (`InfluxDBOptions`), checked once, and its URL schemes.

`url_arguments` reads ``influxdb://`` and ``influxdb2://`` URLs (`SCHEMES`).

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
from typing import Any

from metricstream._options import (
    Kind,
    boolean,
    choice,
    duration,
    option,
    optional,
    options_class,
    parse_bool,
    text,
    text_names,
)
from metricstream._secrets import MASK, is_secret_name, scrub_secrets
from metricstream.codecs.lineprotocol import PRECISIONS
from metricstream.exceptions import ConfigError
from metricstream.sinks._url import check_overrides, query_options

__all__ = [
    "APIS",
    "SCHEMES",
    "InfluxDBOptions",
    "authority_end",
    "check_credential",
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


def _check_base_url(_option: str, url: object) -> str:
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
    for name, value in options.items():
        if value is not None:
            raise ConfigError(name, f"not used with api={api!r}: {_NOT_FOR[name]}")


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


def _check_ca_file(option_name: str, ssl_ca_cert: object) -> str | None:
    if ssl_ca_cert is None:
        return None
    try:
        ca_cert = os.fspath(ssl_ca_cert)  # type: ignore[call-overload]
    except TypeError:
        raise ConfigError(option_name, f"must be a path, not {ssl_ca_cert!r}") from None
    if not isinstance(ca_cert, str) or not os.path.isfile(ca_cert):
        raise ConfigError(option_name, f"no such file: {ca_cert!r}")
    return ca_cert


_CREDENTIAL = "a string without control characters"


@options_class
class InfluxDBOptions:
    """The options of an `InfluxDBSink`, each checked when the sink is built."""

    url: str = option(
        kind=Kind("an http(s) URL without credentials", _check_base_url),
        doc="The server's base URL, http://host:8086 or https://... (a path prefix is kept).",
        kw_only=False,
        text=False,
    )
    api: str = option(
        default="v2",
        kind=choice(APIS),
        doc="'v1' (/write, InfluxDB 1.x) or 'v2' (/api/v2/write: InfluxDB 2.x/3.x, "
        "VictoriaMetrics).",
        text=False,
    )
    token: str | None = option(
        default=None,
        kind=Kind(f"{_CREDENTIAL} that an HTTP header can carry", check_credential),
        doc="v2 API token (sent as 'Authorization: Token ...').",
    )
    org: str | None = option(
        default=None,
        kind=optional(text()),
        doc="v2 organization; required with api='v2' (VictoriaMetrics and InfluxDB 3 "
        "accept any name).",
    )
    bucket: str | None = option(
        default=None, kind=optional(text()), doc="v2 bucket; required with api='v2'."
    )
    database: str | None = option(
        default=None,
        kind=optional(text()),
        doc="v1 database; required with api='v1'.",
        text=False,
    )
    retention_policy: str | None = option(
        default=None,
        kind=optional(text()),
        doc="v1 retention policy; the database's default when None.",
        text="rp",
    )
    username: str | None = option(
        default=None,
        kind=Kind(_CREDENTIAL, check_credential),
        doc="v1 user for HTTP basic auth.",
        text=False,
    )
    password: str | None = option(
        default=None,
        kind=Kind(_CREDENTIAL, check_credential),
        doc="v1 password; required when username is given.",
        text=False,
    )
    precision: str = option(
        default="ns",
        kind=choice(tuple(PRECISIONS)),
        doc="Timestamp precision written (ns, us, ms or s); timestamps are truncated to it.",
    )
    duplicate_points: str = option(
        default="collapse",
        kind=choice(("collapse", "keep")),
        doc="What the server does with points of one series and timestamp (at the precision "
        "written): 'collapse' (InfluxDB keeps the last, merging fields), so events of a batch "
        "that a later one overwrites whole are dropped as 'collapsed'; 'keep' for servers that "
        "store every point (VictoriaMetrics without deduplication).",
    )
    gzip: bool | None = option(
        default=None,
        kind=optional(boolean()),
        doc="Compress request bodies with gzip; None: the streamer's compression decides "
        "(any codec but none means gzip), and without one bodies are compressed.",
    )
    timeout: float = option(
        default=10.0, kind=duration(), doc="Seconds each HTTP request may take."
    )
    verify_ssl: bool = option(
        default=True, kind=boolean(), doc="Verify the server's TLS certificate (https only)."
    )
    ssl_ca_cert: str | os.PathLike[str] | None = option(
        default=None,
        kind=Kind("a file, or None", _check_ca_file),
        doc="A CA bundle file to verify it with.",
    )
    name: str = option(default="influxdb", kind=text(), doc="The sink's name in health reports.")

    def __post_init__(self) -> None:
        """The options of one API are refused with the other, and its own are required."""
        if self.api == "v1":
            _refuse_for_api("v1", token=self.token, org=self.org, bucket=self.bucket)
            _check_v1(self.database, self.username, self.password)
        else:
            _refuse_for_api(
                "v2",
                database=self.database,
                retention_policy=self.retention_policy,
                username=self.username,
                password=self.password,
            )
            _check_v2(self.org, self.bucket)


_DEFAULT_PORT = 8086


def url_arguments(url: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Return the `InfluxDBSink` arguments a URL stands for; `overrides` win.

    Forms::

        influxdb://[user:password@]host[:port]/DATABASE[?rp=&precision=&gzip=&tls=]
        influxdb2://host[:port]?org=&bucket=[&token=&precision=&gzip=&tls=]

    The port defaults to 8086. ``tls=true`` speaks https. Both also take
    ``timeout``, ``name``, ``verify_ssl``, ``ssl_ca_cert`` and
    ``duplicate_points`` (``collapse`` or ``keep``). The v2 token
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
    if scheme not in SCHEMES:
        raise ConfigError("url", f"expected an influxdb:// or influxdb2:// URL, not {shown!r}")
    if not parsed.hostname:
        raise ConfigError("url", f"no host in {shown!r}")
    if "api" in overrides:
        raise ConfigError("api", f"is set by the URL scheme ({scheme}://), not by an override")
    check_overrides(overrides, InfluxDBOptions, "InfluxDBSink", exclude=("url", "api"))
    kwargs, extra = query_options(shown, parsed.query, InfluxDBOptions, url_only=("tls",))
    host = f"[{parsed.hostname}]" if ":" in parsed.hostname else parsed.hostname
    tls = parse_bool("tls", extra.get("tls", "false"))
    base_url = f"{'https' if tls else 'http'}://{host}:{port or _DEFAULT_PORT}"
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
    for query_option in rest.partition("?")[2].split("&"):
        key = query_option.partition("=")[0]
        if after_secret is not None and key not in (*text_names(InfluxDBOptions), "tls"):
            raise ConfigError(
                after_secret, "is followed by something that is not an option: if its value "
                "holds an '&', percent-encode it as %26",
            )  # fmt: skip
        after_secret = key if is_secret_name(key) else None


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
