from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from jitchaos import ManualClock
from jitchaos.idp import EmbeddedIdP
from tests.common.idp import standard_config


@pytest.fixture
def clock() -> ManualClock:
    # Starts at the real current second, so libraries that read the wall clock (PyJWT) agree
    # with it until a test moves it.
    return ManualClock()


@pytest.fixture
def idp(clock: ManualClock) -> Iterator[EmbeddedIdP]:
    """The embedded IdP with the standard test clients and users, on 127.0.0.1."""
    with EmbeddedIdP(standard_config(), clock=clock).in_thread() as running:
        yield running


@pytest.fixture
def insecure_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    """authlib refuses plain http unless told this is a test on loopback."""
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Loopback traffic must never go through a proxy configured in the environment.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    assert os.environ["NO_PROXY"]
