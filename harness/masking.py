"""Secrets never printed: every URL harness prints (the store, the tracking server, any URL
with a ``user:password@`` part) goes through ``mask`` first.

``mask`` replaces the password of every ``scheme://user:password@host`` in a text with
``***`` (the user name stays: it says which account), the values of ``password=``-like
pairs in connection strings and URL queries, and any literal secret it is given (a
library's error may quote a fragment of a malformed URL, which no pattern recognises).
It works on malformed URLs too (``[::1``, ``%zz``, a space in the host): it never parses,
it only cuts at ``://``, the last ``@`` of the token and the first ``:`` between them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote

HIDDEN = "***"
# scheme://userinfo@ where userinfo holds a ':' (user:password); the userinfo ends at the
# last '@' before whitespace or a quote, so a password with a raw '@' is hidden whole.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)"
                       r"(?P<user>[^\s:/@'\"]*):(?P<password>[^\s'\"]*)@"
                       r"(?=[^\s@'\"]*(?:[\s'\"]|$))")
# password=..., sslpassword=..., token=..., secret=... in conninfo strings and queries
_PAIR = re.compile(r"(?P<key>\b[A-Za-z_]*(?:password|passwd|secret|token|api[_-]?key)"
                   r"[A-Za-z_]*\s*=\s*)(?P<value>'[^']*'|\"[^\"]*\"|[^\s&;,'\"]+)",
                   re.IGNORECASE)


def url_secret(url: str) -> str | None:
    """The password of ``url`` as written (None when it has none); works on malformed
    URLs, so that a library's error quoting part of it can be masked too."""
    match = _USERINFO.search(url)
    if match is None:
        return None
    return match.group("password") or None


def mask(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every URL password, ``password=`` value and literal ``secrets``
    replaced by ``***``."""
    if not text:
        return text
    out = str(text)
    for secret in secrets:
        if secret:
            for form in {secret, unquote(secret), quote(unquote(secret), safe="")}:
                if form:
                    out = out.replace(form, HIDDEN)
    out = _USERINFO.sub(lambda m: f"{m.group('scheme')}{m.group('user')}:{HIDDEN}@", out)
    return _PAIR.sub(lambda m: f"{m.group('key')}{HIDDEN}", out)


def strip_credentials(url: str) -> tuple[str, str | None, str | None]:
    """(url without its ``user:password@``, user, password), percent-decoded, for a
    client that sends credentials in a header (HTTP basic auth) instead of the URL."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url, None, None
    authority_end = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#"))
                         if i >= 0), default=len(rest))
    authority = rest[:authority_end]
    userinfo, at, host = authority.rpartition("@")
    if not at:
        return url, None, None
    user, colon, password = userinfo.partition(":")
    return (f"{scheme}://{host}{rest[authority_end:]}", unquote(user),
            unquote(password) if colon else None)


def masked_spec(body: dict[str, Any]) -> dict[str, Any]:
    """A spec as saved (``spec.yaml``, the store's copy) with the passwords of its
    operational URLs (``store``, ``tracking.uri``) masked; nothing a cell is built from
    changes, so workers rebuild the same cells from it."""
    out = dict(body)
    if isinstance(out.get("store"), str):
        out["store"] = mask(out["store"])
    tracking = out.get("tracking")
    if isinstance(tracking, dict) and isinstance(tracking.get("uri"), str):
        out["tracking"] = {**tracking, "uri": mask(tracking["uri"])}
    return out
