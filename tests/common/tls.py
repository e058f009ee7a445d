"""TLS for loopback tests: a throwaway CA (trustme), a server context holding a certificate
it issued, and a client context that trusts it."""

from __future__ import annotations

import ssl

import trustme


def contexts(*hosts: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts; the server's certificate names ``hosts``."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*hosts).configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client
