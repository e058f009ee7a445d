"""Every listener of a machine can be pinned, as "host:port" or a pair (issue #17, point 6)."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from aiohttp import web

from jitchaos import AuthChaosMachine, ClientChaosMachine


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _service(**_: Any) -> web.Application:
    return web.Application()


def _machine(base: type[Any] = AuthChaosMachine, **listeners: Any) -> type[Any]:
    role = "client" if base is ClientChaosMachine else "service"
    return type(
        "Pinned",
        (base,),
        {role: staticmethod(_service), "routes": {"GET /read": {"read"}}, **listeners},
    )


@pytest.mark.parametrize("base", [AuthChaosMachine, ClientChaosMachine])
def test_every_listener_is_where_it_was_pinned(base: type[Any]) -> None:
    idp, control, fronted = _free_ports(3)
    cls = _machine(
        base,
        listen=f"127.0.0.1:{idp}",
        control_listen=("127.0.0.1", control),
        service_listen=f"127.0.0.1:{fronted}",
    )
    state = cls()
    try:
        proxy = state.proxy
        assert proxy.url == f"http://127.0.0.1:{idp}"
        assert proxy.control_url == f"http://127.0.0.1:{control}"
        name = "downstream" if base is ClientChaosMachine else "service"
        assert proxy.service_url(name) == f"http://127.0.0.1:{fronted}"
    finally:
        state.teardown()
        cls._worlds.pop(cls).close()
    with socket.socket() as again:  # closed with the world: the ports are free again
        again.bind(("127.0.0.1", idp))


@pytest.mark.parametrize(
    ("listeners", "message"),
    [
        ({"listen": "nowhere"}, "Pinned.listen='nowhere' must be 'host:port'"),
        ({"control_listen": "127.0.0.1:99999"}, "Pinned.control_listen="),
        ({"service_listen": ("127.0.0.1", "80")}, "Pinned.service_listen="),
        (
            {"listen": "127.0.0.1:0", "control_listen": "localhost:0"},
            "share one host, not 127.0.0.1, localhost",
        ),
    ],
)
def test_a_bad_listener_is_named(listeners: dict[str, Any], message: str) -> None:
    cls = _machine(**listeners)
    with pytest.raises(TypeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cls()
    assert cls not in cls._worlds  # nothing half-started
