"""Configuration of the embedded IdP: its clients, its test users, and token lifetimes."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TypeVar

import attrs

from jitchaos._checks import typed
from jitchaos._keys import ALGORITHMS, Algorithm
from jitchaos.errors import ConfigError

__all__ = ["ClientConfig", "IdPConfig", "UserConfig", "parse_client", "parse_user"]

# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
# RFC 6749 Appendix A.1: client_id = *VSCHAR; we also refuse ':' (the CLI separator) and empty.
_CLIENT_ID = re.compile(r"[\x20-\x39\x3b-\x7e]+")


def _scopes(value: Iterable[str]) -> frozenset[str]:
    if isinstance(value, str):
        raise ConfigError(f"scopes={value!r} must be a collection of scope names, not a str")
    scopes = frozenset(value)
    for scope in scopes:
        if not isinstance(scope, str) or not _SCOPE_TOKEN.fullmatch(scope):
            raise ConfigError(f"scope {scope!r} is not an RFC 6749 §3.3 scope-token")
    return scopes


def _uris(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigError(f"redirect_uris={value!r} must be a list of URIs, not a str")
    uris = tuple(value)
    for uri in uris:
        if not isinstance(uri, str) or ":" not in uri:
            raise ConfigError(f"redirect URI {uri!r} must be an absolute URI")
    return uris


def _name(
    kind: str, pattern: re.Pattern[str]
) -> Callable[[object, attrs.Attribute[str], str], None]:
    def check(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ConfigError(f"{kind}={value!r} must be non-empty printable ASCII without ':'")

    return check


@attrs.frozen
class ClientConfig:
    """An OAuth client the IdP knows: confidential (with a secret) or public (``secret=None``)."""

    client_id: str = attrs.field(validator=_name("client_id", _CLIENT_ID))
    secret: str | None = attrs.field(repr=False)
    """The client secret; None makes a public client that must use PKCE."""
    scopes: frozenset[str] = attrs.field(converter=_scopes)
    """The scopes this client may ask for."""
    redirect_uris: tuple[str, ...] = attrs.field(default=(), converter=_uris)
    """Registered redirect URIs; when empty, any loopback http URI is accepted (RFC 8252 §7.3)."""

    @secret.validator
    def _check_secret(self, attribute: attrs.Attribute[str | None], value: str | None) -> None:
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigError(
                f"secret of client {self.client_id!r} must be a non-empty string "
                "or None for a public client"
            )

    @property
    def public(self) -> bool:
        """True for a client without a secret."""
        return self.secret is None


@attrs.frozen
class UserConfig:
    """A test user that the authorization endpoint approves without a login page."""

    name: str = attrs.field(validator=_name("user", _CLIENT_ID))
    scopes: frozenset[str] = attrs.field(converter=_scopes)
    """The scopes this user may grant."""


def _positive(name: str) -> Callable[[object, attrs.Attribute[int], int], None]:
    def check(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{name}={value!r} must be a positive whole number of seconds")

    return check


def _client_tuple(value: Iterable[ClientConfig | str]) -> tuple[ClientConfig, ...]:
    """ClientConfig values, or the CLI's ``ID:SECRET:scope,scope`` text for each."""
    return _items("clients", value, ClientConfig, parse_client)


def _user_tuple(value: Iterable[UserConfig | str]) -> tuple[UserConfig, ...]:
    """UserConfig values, or the CLI's ``NAME:scope,scope`` text for each."""
    return _items("users", value, UserConfig, parse_user)


_T = TypeVar("_T")


def _items(
    field: str, value: object, kind: type[_T], parse: Callable[[str], _T]
) -> tuple[_T, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ConfigError(f"{field}={value!r} must be a list of {kind.__name__} (or its text)")
    items: list[_T] = []
    for item in value:
        if isinstance(item, str):
            items.append(parse(item))
        elif isinstance(item, kind):
            items.append(item)
        else:
            raise ConfigError(f"{field} holds {item!r}, not a {kind.__name__} (or its text)")
    return tuple(items)


@attrs.frozen(kw_only=True)
class IdPConfig:
    """Everything the embedded IdP serves: clients, users, audience and lifetimes."""

    clients: tuple[ClientConfig, ...] = attrs.field(converter=_client_tuple)
    users: tuple[UserConfig, ...] = attrs.field(default=(), converter=_user_tuple)
    audience: str = "jitchaos"
    """``aud`` of every access token: the resource servers under test."""
    access_ttl: int = attrs.field(default=300, validator=_positive("access_ttl"))
    """Access-token lifetime in seconds, unless a token request asks for less."""
    max_ttl: int = attrs.field(default=3600, validator=_positive("max_ttl"))
    """The largest lifetime a token request may ask for with the ``ttl`` parameter."""
    refresh_ttl: int = attrs.field(default=86400, validator=_positive("refresh_ttl"))
    """Refresh-token lifetime in seconds."""
    code_ttl: int = attrs.field(default=60, validator=_positive("code_ttl"))
    """Authorization-code lifetime in seconds."""
    algorithm: Algorithm = "RS256"
    opaque_tokens: bool = attrs.field(default=False, validator=typed(bool, error=ConfigError))
    """Issue opaque access tokens (random strings that only introspection can read) instead of
    RFC 9068 JWTs, as many IdPs do."""

    def __attrs_post_init__(self) -> None:
        for kind, names in (
            ("client", [c.client_id for c in self.clients]),
            ("user", [u.name for u in self.users]),
        ):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ConfigError(f"{kind} {duplicates[0]!r} is configured twice")
        if self.algorithm not in ALGORITHMS:
            raise ConfigError(f"algorithm={self.algorithm!r} is not one of {ALGORITHMS}")
        if self.access_ttl > self.max_ttl:
            raise ConfigError(f"access_ttl={self.access_ttl!r} exceeds max_ttl={self.max_ttl!r}")
        if not isinstance(self.audience, str) or not self.audience:
            raise ConfigError(f"audience={self.audience!r} must be a non-empty string")

    def client(self, client_id: str) -> ClientConfig | None:
        """The client ``client_id``, or None."""
        return next((c for c in self.clients if c.client_id == client_id), None)

    def user(self, name: str) -> UserConfig | None:
        """The user ``name``, or None."""
        return next((u for u in self.users if u.name == name), None)


def parse_client(text: str) -> ClientConfig:
    """A client from ``ID:SECRET:scope,scope`` (an empty SECRET makes a public client)."""
    if not isinstance(text, str):
        raise ConfigError(f"client {text!r} is not ID:SECRET:SCOPES text")
    client_id, sep1, rest = text.partition(":")
    secret, sep2, scopes = rest.rpartition(":")
    if not (sep1 and sep2):
        raise ConfigError(f"client {text!r} is not ID:SECRET:SCOPES (SECRET empty for public)")
    return ClientConfig(client_id, secret or None, _split_scopes(scopes))


def parse_user(text: str) -> UserConfig:
    """A test user from ``NAME:scope,scope``."""
    if not isinstance(text, str):
        raise ConfigError(f"user {text!r} is not NAME:SCOPES text")
    name, sep, scopes = text.partition(":")
    if not sep:
        raise ConfigError(f"user {text!r} is not NAME:SCOPES")
    return UserConfig(name, _split_scopes(scopes))


def _split_scopes(text: str) -> frozenset[str]:
    return frozenset(s for s in text.split(",") if s)
