from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Literal

import pytest

from jitchaos import ManualClock
from jitchaos.idp import EmbeddedIdP
from jitchaos.proxy import ChaosProxy
from tests.common.service import ResourceService

Front = Callable[..., tuple[ChaosProxy, ResourceService]]


@pytest.fixture
def front(idp: EmbeddedIdP, clock: ManualClock) -> Iterator[Front]:
    """Start a resource service and a chaos proxy between it, its IdP and the test:
    ``proxy, service = front("jwt")`` (or ``"introspect"``)."""
    with ExitStack() as stack:

        def start(
            mode: Literal["jwt", "introspect"] = "jwt", *, resign: bool = False, leeway: float = 0
        ) -> tuple[ChaosProxy, ResourceService]:
            service = stack.enter_context(ResourceService(mode, leeway=leeway).in_thread())
            proxy = ChaosProxy(idp, services={"api": service.url}, resign=resign)
            stack.enter_context(proxy.in_thread())
            service.point_at(proxy.url, issuer=idp.issuer)
            return proxy, service

        yield start
