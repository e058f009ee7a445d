"""What the conformance matrix checks: every server jitchaos runs that clients read.

``embedded``: the embedded IdP alone. ``proxy``: the chaos proxy in front of its own embedded
IdP (issuer and keys are the IdP's). ``resign``: the proxy in re-signing mode in front of an IdP
it reaches only by URL, serving its own keys. Each target can rotate its signing key the way a
test would: the ring directly, or the proxy's ``rotate_keys`` fault.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import attrs

from jitchaos import ManualClock
from jitchaos.faults import RotateKeys
from jitchaos.idp import EmbeddedIdP
from jitchaos.proxy import ChaosProxy
from tests.common.idp import REDIRECT, standard_config

TARGETS = ("embedded", "proxy", "resign")


@attrs.frozen
class Target:
    """A running server and what a client needs to know about it."""

    name: str
    url: str
    """Where clients send their requests (the proxy, when there is one)."""
    issuer: str
    audience: str
    rotate: Callable[[], str] = attrs.field(repr=False)
    """Publish a new signing key and sign with it; returns the new kid."""
    current_kid: Callable[[], str] = attrs.field(repr=False)

    @property
    def discovery_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    def client_config(self) -> dict[str, object]:
        """What the Node stacks are given (tests/interop/node/stacks.mjs)."""
        return {
            "discovery": self.discovery_url,
            "issuer": self.issuer,
            "audience": self.audience,
            "client": {"id": "svc", "secret": "svc-secret"},
            "resource": {"id": "api", "secret": "api-secret"},
            "web": {"id": "web", "secret": "web-secret", "redirect": REDIRECT, "user": "alice"},
        }


@contextmanager
def running(name: str) -> Iterator[Target]:
    """Start the target ``name`` (one of :data:`TARGETS`) on 127.0.0.1."""
    clock = ManualClock()  # the real current second: the Node stacks read the wall clock
    with ExitStack() as stack:
        if name == "embedded":
            idp = stack.enter_context(EmbeddedIdP(standard_config(), clock=clock).in_thread())

            def rotate_ring() -> str:
                return idp.keys.rotate().kid

            yield Target(
                name,
                idp.url,
                idp.issuer,
                idp.config.audience,
                rotate_ring,
                lambda: idp.keys.current.kid,
            )
            return
        if name == "proxy":
            proxy = stack.enter_context(ChaosProxy(standard_config(), clock=clock).in_thread())
            assert proxy.idp is not None
            issuer, audience = proxy.idp.issuer, proxy.idp.config.audience
        elif name == "resign":
            upstream = stack.enter_context(EmbeddedIdP(standard_config(), clock=clock).in_thread())
            proxy = stack.enter_context(
                ChaosProxy(upstream.url, resign=True, clock=clock).in_thread()
            )
            issuer, audience = upstream.issuer, upstream.config.audience
        else:
            raise ValueError(f"target={name!r} is not one of {TARGETS}")

        def rotate_by_fault() -> str:
            proxy.apply(RotateKeys(mode="add"))
            assert proxy.keys is not None
            return proxy.keys.current.kid

        def kid() -> str:
            assert proxy.keys is not None
            return proxy.keys.current.kid

        yield Target(name, proxy.url, issuer, audience, rotate_by_fault, kid)
