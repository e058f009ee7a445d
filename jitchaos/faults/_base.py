"""What every fault shares: vocabularies, validators, and the contract for how a fault acts.

A fault is plain data: a frozen attrs value whose repr is a valid constructor call (so a repro
notebook can replay it), validated on construction (so ``st.builds`` infers valid values), with a
``kind`` (its registry name) and a one-line ``summary`` (what ``jitchaos faults`` prints).

Everything about a fault is in its one file: its value, how it acts, the Hypothesis strategy of
its values (``strategy()``, what :func:`jitchaos.strategies.faults` and ``st.from_type`` draw
from) and what a seeded schedule draws (``seeded(rng, endpoint)``, what
:meth:`jitchaos.Schedule.from_seed` expands); adding one is that file plus its registry line.

How it acts: when its trigger fires, the proxy calls ``fault.fire(world)``.
The fault changes the auth world at once through :class:`World` (revoke, expire, narrow, rotate
keys: each a ledger event, so the ground truth knows) and may return an :class:`Effect` that
goes on acting on later traffic through three hooks: :meth:`Effect.before` (before an IdP
request is forwarded: answer it, delay it, hold it), :meth:`Effect.on_issue` (edit the access
token being issued before it is minted) and :meth:`Effect.on_token` (act on the next token a
request carries or is issued: what the target ``"request"`` means). Effects never draw random
numbers; everything they do follows from the fault's fields, the clock and the traffic.
"""

from __future__ import annotations

import json
import random
import re
import string
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, Self, get_args

import attrs
from hypothesis import strategies as st

from jitchaos._checks import check_seconds
from jitchaos.errors import InvalidArgument

if TYPE_CHECKING:
    from collections.abc import Awaitable

__all__ = [
    "ENDPOINTS",
    "Answer",
    "Effect",
    "Endpoint",
    "Exchange",
    "Fault",
    "Issue",
    "NotApplicable",
    "World",
    "check_seconds",
    "check_target",
]

Endpoint = Literal["token", "introspection", "revocation", "jwks", "userinfo", "discovery"]
ENDPOINTS: tuple[Endpoint, ...] = get_args(Endpoint)

# "request": the token carried or issued by the request that triggered the fault;
# "token:FP", "grant:ID", "principal:subject:NAME" / "principal:client:ID": a ledger selector.
_TARGET = re.compile(r"request|token:[0-9a-f]{16}|grant:\S+|principal:(subject|client):\S+")


class NotApplicable(Exception):
    """The fault cannot act here (say, rotating keys in front of an IdP whose keys the proxy
    does not hold); the proxy records it as skipped, with this message as the reason."""


@attrs.frozen
class Answer:
    """A response a fault gives instead of the IdP's."""

    status: int
    body: bytes
    content_type: str = "application/json"


@attrs.frozen
class Exchange:
    """One IdP-side request, as effects see it."""

    endpoint: Endpoint | Literal["other"]
    """Which IdP endpoint it is for."""
    refresh: bool = False
    """Whether it is a refresh_token grant on the token endpoint."""


@attrs.define
class Issue:
    """The access token being issued, as effects may edit it before it is (re-)minted."""

    issued_at: float
    """``iat``."""
    not_before: float
    """``nbf`` (``iat`` when the IdP sets none)."""
    expires_at: float
    """``exp``."""
    scopes: frozenset[str]
    """The scopes it will carry (and the response's ``scope``)."""
    drop_roles: bool = False
    """Drop ``roles``/``groups``-style claims."""


class World(Protocol):
    """What a fault may change: the proxy implements it; each change is a ledger event.

    ``target`` is a fault target other than ``"request"`` (see :func:`check_target`). Each
    method returns a one-line account of what changed (fingerprints, never raw tokens) and
    raises :class:`NotApplicable` when it cannot act.
    """

    def now(self) -> float:
        """The proxy's clock."""
        ...

    def revoke(self, target: str, *, delay: float) -> str:
        """Revoke the target's live tokens; honour it only ``delay`` seconds later."""
        ...

    def expire(self, target: str) -> str:
        """Make the target's live tokens expired now."""
        ...

    def narrow(self, target: str, scopes: frozenset[str]) -> str:
        """Reduce the scopes of the target's grants to their intersection with ``scopes``."""
        ...

    def rotate_keys(self, mode: str, ahead: float) -> str:
        """Change the signing keys (``publish-ahead`` by ``ahead`` seconds, ``add``,
        ``remove-old``, ``rekey``)."""
        ...

    def hold_limit(self) -> float:
        """Real seconds a fault may hold a request at most (a timeout, a forced overlap)."""
        ...


class Effect:
    """What a fired fault goes on doing to later traffic. The hooks do nothing by default.

    The proxy drops an effect once :attr:`done` is true.
    """

    done: bool = False

    def before(self, exchange: Exchange, world: World) -> Awaitable[Answer | None] | None:
        """Before an IdP request is forwarded: an awaitable that may delay it and may answer
        it instead of the IdP, or None to leave it alone."""
        return None

    def on_issue(self, issue: Issue) -> bool:
        """Edit the access token being issued; True when the effect is used up."""
        return False

    def on_token(self, fingerprint: str, world: World) -> str | None:
        """Act on a token a request carries or was just issued; an account when used up."""
        return None


class Fault(Protocol):
    """One change injected into the auth world."""

    kind: ClassVar[str]
    summary: ClassVar[str]

    def fire(self, world: World) -> tuple[str, Effect | None]:
        """Act now; return an account of what changed and what goes on acting, if anything."""
        ...

    @classmethod
    def strategy(cls) -> st.SearchStrategy[Self]:
        """Every valid value of this fault, shrinking towards the simplest."""
        ...

    @classmethod
    def seeded(cls, rng: random.Random, endpoint: Endpoint) -> Self:
        """The value a seeded schedule draws with ``rng`` (``endpoint`` for faults on one)."""
        ...


# What the faults' strategies draw their fields from.


def draw_seconds() -> st.SearchStrategy[float]:
    """0 to 300 whole seconds, shrinking to 0."""
    return st.integers(0, 300).map(float)


def draw_targets() -> st.SearchStrategy[str]:
    """Targets, shrinking to ``"request"``."""
    return st.one_of(
        st.just("request"),
        st.integers(1, 9).map("grant:g{}".format),
        st.sampled_from(["principal:subject:alice", "principal:client:svc"]),
        st.text("0123456789abcdef", min_size=16, max_size=16).map("token:{}".format),
    )


def draw_scope_names() -> st.SearchStrategy[str]:
    """Scope names: the usual ones first, then any short lowercase word."""
    return st.sampled_from(["read", "write", "admin"]) | st.text(
        string.ascii_lowercase, min_size=1, max_size=8
    )


def draw_endpoints() -> st.SearchStrategy[Endpoint]:
    """IdP endpoints, shrinking to ``token``."""
    return st.sampled_from(ENDPOINTS)


class EndpointWindow(Effect):
    """An effect on every request to one endpoint until ``until`` (clock time), and on at
    least one: with a clock that does not move, a zero-length window still acts once."""

    def __init__(self, endpoint: str, until: float) -> None:
        self.endpoint = endpoint
        self.until = until
        self._hit = False

    def due(self, exchange: Exchange, world: World) -> bool:
        """Whether this request falls in the window (ending the effect once it has passed)."""
        if exchange.endpoint != self.endpoint:
            return False
        if self._hit and world.now() >= self.until:
            self.done = True
            return False
        self._hit = True
        return True


class OnNextToken(Effect):
    """Apply a change to the next token a request carries or is issued (target "request")."""

    def __init__(self, act: Callable[[str], str]) -> None:
        self._act = act

    def on_token(self, fingerprint: str, world: World) -> str | None:
        self.done = True
        return self._act(f"token:{fingerprint}")


def json_body(**fields: object) -> bytes:
    """A compact JSON body for an :class:`Answer`."""
    return json.dumps(fields, separators=(",", ":")).encode()


def check_target(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not _TARGET.fullmatch(value):
        raise InvalidArgument(
            f"{attribute.name}={value!r} must be 'request', 'token:FINGERPRINT', 'grant:ID' or "
            "'principal:subject:NAME' / 'principal:client:ID'"
        )


def check_endpoint(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in ENDPOINTS:
        raise InvalidArgument(f"{attribute.name}={value!r} must be one of {', '.join(ENDPOINTS)}")


def one_of(*choices: str) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value not in choices:
            raise InvalidArgument(
                f"{attribute.name}={value!r} must be one of {', '.join(choices)}"
            )

    return check
