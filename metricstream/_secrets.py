"""Redaction of credentials: the one rule for repr, health, logs and errors.

A secret is the password of a URL's user information, the value of an option
whose name says it is secret (`is_secret_name`), or the credential of an
HTTP ``Authorization`` header. `scrub_secrets` removes all three from any
text by pattern, without parsing it first, so a URL that does not parse
(a password containing ``/``, ``?`` or ``#``) is redacted all the same.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["MASK", "SECRET_WORDS", "is_secret_name", "redact_mapping", "scrub_secrets"]

MASK = "***"
"""What a secret is replaced with."""

SECRET_WORDS: tuple[str, ...] = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "credential",
    "private_key",
)
"""An option whose name contains one of these words (ignoring case, with ``.``
and ``-`` read as ``_``) holds a secret: ``token``, ``sasl.password``,
``ssl.key.password``, ``sasl.oauthbearer.client.secret``, ``api-key``..."""

_WORDS = "|".join(re.escape(word).replace("_", "[._-]?") for word in SECRET_WORDS)
# scheme://user:password@ -- the password runs to the last "@" before a space
# or quote, so one containing "/", "?", "#" or "@" is covered whole.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s'\"]*):[^\s'\"]*@")
# name=value, name: value, "name": "value", for every secret-named option.
_SECRET_PARAM = re.compile(
    r"(?i)(?P<key>\b[\w.-]*(?:" + _WORDS + r")[\w.-]*)"
    r"(?P<sep>['\"]?\s*[=:]\s*['\"]?)"
    r"(?P<value>[^\s&,;'\"}]+)"
)
# The credential of an Authorization header value ("Basic ...", "Token ...",
# "Bearer ..."): after "Authorization" in any case, elsewhere only when the
# scheme is capitalised as in a header, so prose such as "no token was
# given" is left alone.
_AUTH_HEADER = re.compile(
    r"(?P<kind>(?i:\bauthorization['\"]?\s*[:=]\s*['\"]?(?:basic|bearer|token))"
    r"|\b(?:Basic|Bearer|Token|BASIC|BEARER|TOKEN))\s+[^\s'\"]+"
)


def is_secret_name(name: str) -> bool:
    """Tell whether an option called `name` holds a secret (see `SECRET_WORDS`)."""
    normal = name.lower().replace(".", "_").replace("-", "_")
    squeezed = normal.replace("_", "")
    return any(word in normal or word.replace("_", "") in squeezed for word in SECRET_WORDS)


def scrub_secrets(text: str) -> str:
    """Return `text` with passwords, tokens and authorization values replaced by ``***``."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _SECRET_PARAM.sub(lambda m: f"{m['key']}{m['sep']}{MASK}", text)
    return _AUTH_HEADER.sub(lambda m: f"{m['kind']} {MASK}", text)


def redact_mapping(options: Mapping[str, object]) -> dict[str, object]:
    """Return a copy of `options` with the value of every secret-named key masked."""
    return {key: MASK if is_secret_name(str(key)) else value for key, value in options.items()}
