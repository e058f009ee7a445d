"""What the embedded IdP, the proxy, its control API and its faults read and write on the wire
the same way: error bodies (RFC 6749 §5.2, RFC 9457), urlencoded forms (one rule for the IdP and
the proxy, so that the proxy's ledger never reads a request differently from the IdP it fronts),
Basic and Bearer credentials, and dot segments in paths.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, InvalidURLError
from aiohttp.web_protocol import RequestPayloadError

__all__ = [
    "MAX_FORM_FIELDS",
    "NO_STORE",
    "UNREADABLE_BODY",
    "FormError",
    "basic_credentials",
    "bearer_token",
    "form_fields",
    "form_pairs",
    "oauth_error",
    "oauth_response",
    "problem",
    "quiet_client_mistakes",
    "resolve_dot_segments",
    "single_values",
    "unreadable_body",
]

# RFC 6749 §5.2: error_description is printable ASCII without '"' or '\'.
_NOT_ALLOWED = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")
_SUBSTITUTES = {'"': "'", "\\": "/"}

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
"""RFC 6749 §5.1: token answers (and errors about them) are never cached."""

MAX_FORM_FIELDS = 64
"""An OAuth request has a handful of parameters; a body with more is refused."""


UNREADABLE_BODY = (HttpProcessingError, RequestPayloadError)
"""What aiohttp raises reading a request body the client garbled (an undecodable
``Content-Encoding``, broken chunked framing): the client's fault, answered 400."""


_TOKENISH = re.compile(r"[A-Za-z0-9._~+/=-]{16,}")  # what could be a token, in a log line


class _ClientMistakes(logging.Filter):
    """aiohttp logs a request it cannot parse (no Host, garbage, a bad header) at ERROR with
    its traceback, and a body it could not read after the answer (an undecodable
    Content-Encoding) as an "Unhandled exception"; both are a client's mistake, answered with
    a 400, so each becomes one warning line naming it (no traceback, nothing token-like)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            # aiohttp's message quotes the offending line after a colon, or is the request
            # target itself (InvalidURLError); either may carry a token.
            reason = type(error).__name__
            if not isinstance(error, InvalidURLError) and error.message:
                reason = _TOKENISH.sub("...", error.message.split(":", 1)[0].strip())[:100]
            record.msg = "a client sent a request that is not valid HTTP (answered %s): %s"
            record.args = (error.code, reason)
        elif isinstance(error, RequestPayloadError):
            # aiohttp's own words ("Can not decode content-encoding: gzip"): no client data.
            why = unreadable_body(error).removeprefix("the request body cannot be read: ")
            record.msg = "a client sent a body that cannot be read (answered 400): %s"
            record.args = (why[:100],)
        else:
            return True
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_client_mistakes(name: str) -> logging.Logger:
    """The logger ``name`` for an aiohttp server, its clients' mistakes told in one line."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, _ClientMistakes) for f in logger.filters):
        logger.addFilter(_ClientMistakes())
    return logger


def unreadable_body(error: BaseException) -> str:
    """The sentence for a body aiohttp could not read (one of :data:`UNREADABLE_BODY`)."""
    text = getattr(error, "message", None) or str(error)
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    why = lines[-1].removeprefix("400, message:").strip() if lines else type(error).__name__
    return f"the request body cannot be read: {why}"


def oauth_error(error: str, description: str, **extra: str) -> dict[str, str]:
    """An RFC 6749 §5.2 error body; a description quoting what a client sent (a scope, a client
    id) is made to fit the member's character set, which strict clients check."""
    said = _NOT_ALLOWED.sub(lambda found: _SUBSTITUTES.get(found.group(), "?"), description)
    return {"error": error, "error_description": said, **extra}


def oauth_response(
    error: str,
    description: str,
    status: int = 400,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """An RFC 6749 §5.2 error answer, not to be cached."""
    return web.json_response(
        oauth_error(error, description), status=status, headers={**NO_STORE, **(headers or {})}
    )


def problem(status: int, detail: str, **headers: str) -> web.Response:
    """An RFC 9457 problem-details answer (the proxy's own refusals, the control API)."""
    return web.json_response(
        {
            "type": "about:blank",
            "title": HTTPStatus(status).phrase,
            "status": status,
            "detail": detail,
        },
        status=status,
        content_type="application/problem+json",
        headers=headers,
    )


class FormError(ValueError):
    """An urlencoded body that cannot be read as OAuth parameters; the message says why."""


def form_pairs(body: bytes, *, max_fields: int = MAX_FORM_FIELDS) -> list[tuple[str, str]]:
    """An ``application/x-www-form-urlencoded`` body's fields in order, repeats kept.

    The URL Standard's parsing, as ``urllib.parse.parse_qsl(..., keep_blank_values=True)`` and
    web frameworks read it: empty fields are skipped, a field without ``=`` has an empty
    value. Stricter than it in one way: text that is not UTF-8 (also once percent-decoded) is
    an error, not replaced. Written out because every token request through the proxy is
    parsed here, and most fields need no unquoting. Raises :class:`FormError`."""
    if not body:
        return []
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise FormError("the body is not UTF-8") from None
    fields = text.split("&")
    if len(fields) > max_fields:
        raise FormError(f"the body has more than {max_fields} parameters")
    pairs = []
    for field in fields:
        if not field:
            continue
        name, _, value = field.partition("=")
        try:
            if "%" in name or "+" in name:
                name = urllib.parse.unquote_plus(name, errors="strict")
            if "%" in value or "+" in value:
                value = urllib.parse.unquote_plus(value, errors="strict")
        except UnicodeDecodeError:
            raise FormError("the body is not UTF-8 once percent-decoded") from None
        pairs.append((name, value))
    return pairs


def single_values(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """``pairs`` as a mapping, each parameter at most once (RFC 6749 §3.1): a repeated one is
    a :class:`FormError`, as a strict IdP refuses it (which of its values would count?)."""
    values: dict[str, str] = {}
    for name, value in pairs:
        if name in values:
            raise FormError(f"parameter {name!r} is given more than once (RFC 6749 §3.1)")
        values[name] = value
    return values


def form_fields(body: bytes) -> dict[str, str]:
    """An OAuth request body's parameters (:func:`form_pairs`, then :func:`single_values`)."""
    return single_values(form_pairs(body))


def bearer_token(authorization: str) -> str | None:
    """The token of an ``Authorization: Bearer`` field's value (RFC 6750 §2.1), else None."""
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


@functools.lru_cache(maxsize=256)
def basic_credentials(authorization: str) -> tuple[str, str] | None:
    """Client id and secret of an ``Authorization: Basic`` field's value (RFC 6749 §2.3.1:
    each form-urlencoded, then joined by ``:`` and base64-encoded); None for another scheme.
    Raises :class:`ValueError` for Basic credentials that are malformed. Cached: a client sends
    the same field with every request."""
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("malformed Basic credentials") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise ValueError("malformed Basic credentials")
    return urllib.parse.unquote_plus(client_id), urllib.parse.unquote_plus(secret)


def resolve_dot_segments(
    segments: Iterable[str], *, meaning: Callable[[str], str] = str
) -> list[str]:
    """RFC 3986 §5.2.4 on a path's segments (those after its leading ``/``): ``.`` goes, ``..``
    takes the segment before it along, and a path ending in either ends in an empty segment
    (``/a/.`` is ``/a/``). ``meaning`` is what a segment says to the server reading it (a
    server that decodes first reads ``%2e%2e`` as ``..``); the segments kept are as given."""
    given = list(segments)
    kept: list[str] = []
    for position, segment in enumerate(given):
        said = meaning(segment)
        if said in (".", ".."):
            if said == ".." and kept:
                kept.pop()
            if position == len(given) - 1:
                kept.append("")
            continue
        kept.append(segment)
    return kept
