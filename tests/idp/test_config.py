"""IdPConfig from Python: objects or the CLI's text forms; anything else is a ConfigError that
names what is wrong, never an AttributeError from inside."""

from __future__ import annotations

import re
from typing import Any

import pytest

from jitchaos.errors import ConfigError, InvalidArgument
from jitchaos.idp import ClientConfig, EmbeddedIdP, IdPConfig, UserConfig


def test_clients_and_users_as_the_cli_writes_them() -> None:
    from_text = IdPConfig(clients=["svc:s3cret:read,write", "spa::read"], users=["alice:read"])
    from_objects = IdPConfig(
        clients=[
            ClientConfig("svc", "s3cret", {"read", "write"}),
            ClientConfig("spa", None, {"read"}),
        ],
        users=[UserConfig("alice", {"read"})],
    )
    assert from_text == from_objects
    spa = from_text.client("spa")
    assert spa is not None
    assert spa.public


@pytest.mark.parametrize(
    ("settings", "names"),
    [
        ({"clients": "svc:s:read"}, "clients='svc:s:read' must be a list of ClientConfig"),
        ({"clients": 7}, "clients=7 must be a list of ClientConfig"),
        (
            {"clients": [("svc", "s", "read")]},
            "clients holds ('svc', 's', 'read'), not a ClientConfig",
        ),
        ({"clients": [UserConfig("alice", {"read"})]}, "not a ClientConfig"),
        ({"clients": ["no-colons"]}, "client 'no-colons' is not ID:SECRET:SCOPES"),
        ({"clients": [], "users": [ClientConfig("svc", "s", {"read"})]}, "users holds"),
        ({"clients": [], "users": ["nobody"]}, "user 'nobody' is not NAME:SCOPES"),
        ({"clients": ["svc:s:read", "svc:t:read"]}, "client 'svc' is configured twice"),
    ],
)
def test_bad_clients_and_users_name_what_is_wrong(settings: dict[str, Any], names: str) -> None:
    with pytest.raises(ConfigError) as caught:
        IdPConfig(**settings)
    assert names in str(caught.value)


def test_an_idp_set_up_wrong_names_what_is_wrong() -> None:
    config = IdPConfig(clients=["svc:s3cret:read"])
    wrong: list[tuple[dict[str, Any], str]] = [
        ({"keys": "x"}, "keys='x' must be a KeyRing"),
        ({"issuer": 5}, "issuer=5 must be an http(s) URL"),
        ({"clock": "x"}, "clock='x' must have now()"),
        ({"audit": 5}, "audit=5 must have write(event)"),
    ]
    for settings, names in wrong:
        with pytest.raises(InvalidArgument, match=re.escape(names)):
            EmbeddedIdP(config, **settings)
