"""HTTP helpers both sides of the proxy share: which fields a proxy passes on, which targets
it serves (no open proxy), and how it names its listeners."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable, Callable

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from jitchaos._wire import problem
from jitchaos.proxy._server import Request

__all__ = [
    "HOP_BY_HOP",
    "Handler",
    "base_url",
    "end_to_end",
    "foreign_target",
    "request_headers",
    "service_target",
]

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
"""A service side's handler (aiohttp's low-level server)."""

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "expect",  # the proxy has the whole body, or answers 100 Continue itself
    }
)


def _http_url(url: object) -> URL | None:
    """``url`` parsed, or None when it is not a str or not a URL at all."""
    if not isinstance(url, str):
        return None
    try:
        return URL(url)
    except ValueError:  # yarl: an invalid IPv6 literal, a bad port
        return None


def service_target(url: object) -> URL | None:
    """A service's base URL, or None: http(s), a host that can be one (a DNS name or an IP
    address, not ``a b``), and no query or fragment (they would be dropped from every
    request, silently)."""
    parsed = _http_url(url)
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.raw_host:
        return None
    if parsed.raw_query_string or parsed.raw_fragment:
        return None
    host = parsed.raw_host
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)  # also with a zone: fe80::1%eth0
        except ValueError:
            return None
        return parsed
    return parsed if _valid_host(host) else None


def base_url(scheme: str, host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}"


_HOST = re.compile(r"(?:\[([0-9A-Fa-f:.]+)\]|[A-Za-z0-9._~-]+)(?::[0-9]{1,5})?")


def _valid_host(host: str) -> bool:
    """host[:port]: a DNS name, an IPv4 address or a bracketed IPv6 address."""
    match = _HOST.fullmatch(host)
    if match is None:
        return False
    if match.group(1) is not None:
        try:
            ipaddress.IPv6Address(match.group(1))
        except ValueError:
            return False
    return True


def foreign_target(request: web.BaseRequest | Request) -> web.Response | None:
    """No open proxy. The proxy always forwards to its configured target, whatever a request
    names; a request that names another target (CONNECT, or an absolute-form or Host authority
    on another port than the listener's own) is refused rather than quietly redirected."""
    host = request.host
    if host and not _valid_host(host):
        # Reflected into discovery's endpoint URLs, so it must be a host (and port) and nothing
        # else: RFC 9110 §7.2, with a reg-name (RFC 3986 §3.2.2) of the characters DNS uses.
        return problem(400, f"the Host header {host[:100]!r} is not host[:port]")
    if request.method == "CONNECT" or _names_another_target(request):
        return problem(
            403,
            "jitchaos forwards only to the upstream and services it was configured with; "
            f"refusing {request.method} for {request.host[:100]}",
        )
    return None


def _names_another_target(request: web.BaseRequest | Request) -> bool:
    if isinstance(request, Request):
        sockname = request.sockname
    else:
        transport = request.transport
        sockname = transport.get_extra_info("sockname") if transport is not None else None
    if not sockname:
        return False
    if (
        not isinstance(request, Request)
        and "Host" not in request.headers
        and request.raw_path.startswith("/")
    ):
        return False  # HTTP/1.0 without Host, in origin form: to whoever listens here
    host = request.host
    if host.startswith("["):  # [IPv6]:port
        port = host.partition("]")[2].removeprefix(":")
    elif host.count(":") == 1:
        port = host.rpartition(":")[2]
    else:
        port = ""  # no port given
    if not port:
        return int(sockname[1]) != (443 if request.scheme == "https" else 80)
    return not port.isdigit() or int(port) != int(sockname[1])


def end_to_end(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> CIMultiDict[str]:
    """The fields a proxy passes on, repeats kept: not the hop-by-hop ones, nor those the
    message's Connection field names (RFC 9110 §7.6.1)."""
    listed = {
        token.strip().lower()
        for value in headers.getall("Connection", [])
        for token in value.split(",")
    }
    return CIMultiDict(
        (k, v)
        for k, v in headers.items()
        if (lowered := k.lower()) not in HOP_BY_HOP and lowered not in listed
    )


def request_headers(request: web.BaseRequest | Request) -> CIMultiDict[str]:
    return end_to_end(request.headers)
