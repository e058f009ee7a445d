"""``jitchaos demo``: watch the machine find a planted bug, then find nothing in the fix.

Runs on one machine with nothing else installed: the embedded IdP behind the chaos proxy, and a
known-bug service from :mod:`jitchaos.known_bugs` (shipped in the package) in the same
process. Prints a progress line, the shrunk failure as a short story, the repro notebook it
wrote, and the same machine's verdict on the correct twin.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable
from typing import Any

import attrs

from jitchaos._failure import Failure, Step
from jitchaos._policy import Policy
from jitchaos._run import RunOutcome, run_scenario
from jitchaos._stateful import AuthChaosMachine, ClientChaosMachine
from jitchaos.errors import InvalidArgument

__all__ = ["DEMOS", "Demo", "run_demo", "story"]

ROUTES = {"GET /read": frozenset({"read"}), "POST /write": frozenset({"write"})}


@attrs.frozen
class Demo:
    name: str
    summary: str
    policy: Policy
    client: bool = False
    actions: frozenset[str] | None = None


DEMOS = {
    demo.name: demo
    for demo in (
        Demo(
            "introspection_cache",
            "introspection cached 5 minutes: a narrowed role keeps its old rights that long",
            Policy(staleness=30),
            actions=frozenset({"grant", "call", "narrow", "advance"}),
        ),
        Demo(
            "permission_cache",
            "permissions cached per user: the first token's rights stick, narrowing ignored",
            Policy(staleness=30),
            actions=frozenset({"login", "call", "narrow", "advance", "refresh"}),
        ),
        Demo(
            "jwks_cache",
            "JWKS fetched once: tokens signed by a rotated-in key are refused",
            Policy(staleness=300),
        ),
        Demo(
            "jwks_wiped",
            "a failed JWKS refresh wipes the key cache: a blip becomes an outage",
            Policy(staleness=300),
        ),
        Demo(
            "stateless_jwt",
            "JWTs checked locally only: revocation never noticed before exp",
            Policy(staleness=30),
        ),
        Demo(
            "shared_cache",
            "permissions cached per OAuth client: one user gets another's rights",
            Policy(staleness=30),
            actions=AuthChaosMachine.all_actions - {"grant"},
        ),
        Demo(
            "refresh_on_timer",
            "a client refreshing on its own timer only: a revoked token is never replaced",
            Policy(recovery=1),
            client=True,
        ),
        Demo(
            "concurrent_refresh",
            "a client whose concurrent requests each refresh: reuse detection logs users out",
            Policy(),
            client=True,
        ),
    )
}


def _factory(name: str) -> Callable[..., Any]:
    module = importlib.import_module(f"jitchaos.known_bugs.{name}")
    factory: Callable[..., Any] = module.make_app
    return factory


def run_demo(
    name: str = "introspection_cache",
    *,
    notebooks: str | os.PathLike[str] = ".jitchaos/notebooks",
    examples: int = 400,
    out: Callable[[str], None] = print,
    progress: Callable[[int, int, int, float], None] | None = None,
) -> tuple[RunOutcome, RunOutcome]:
    """Find the bug in ``name``, write its notebook, then run the twin. Returns both outcomes."""
    demo = DEMOS.get(name)
    if demo is None:
        raise InvalidArgument(f"no demo {name!r}; jitchaos demo --list shows them")
    factory = _factory(name)
    base: type[AuthChaosMachine] = (
        ClientChaosMachine if demo.client else AuthChaosMachine  # type: ignore[assignment]
    )
    scenario = type(
        f"{name}_demo",
        (base,),
        {"actions": demo.actions, "policy": demo.policy, "routes": ROUTES},
    )
    out(f"jitchaos demo: {name} ({demo.summary})")
    out("embedded IdP -> chaos proxy -> the service; the machine grants, uses and changes")
    out("credentials under it, and checks every decision against the ground truth.\n")
    buggy = run_scenario(
        scenario,
        service=factory,
        examples=examples,
        progress=progress,
        notebooks=notebooks,
        execute=True,
    )
    if buggy.vacuous:
        out(f"\nno verdict after {buggy.examples} examples: {buggy.failure}")
    elif buggy.record is None:
        out(f"\nno violation in {buggy.examples} examples: the planted bug was not found")
    else:
        where = (
            f"at example {buggy.to_first_failure} of {buggy.examples} generated"
            if buggy.to_first_failure is not None
            else f"among {buggy.examples} generated examples"
        )
        out(f"\nfound {where} ({buggy.shrinking} more spent shrinking), shrunk to:\n")
        out(story(buggy.record))
        out(f"\nrepro notebook: {buggy.notebook}")
    out(f"\nthe correct twin ({name}, fixed=True):")
    twin = run_scenario(
        scenario,
        service=functools.partial(factory, fixed=True),
        examples=min(examples, 100),
        progress=progress,
    )
    if twin.vacuous:  # judged nothing: no all-clear
        out(f"no verdict after {twin.examples} examples: {twin.failure}")
    elif twin.record is None:
        # What the all-clear rests on: how many uses were judged, and which token states none.
        never = twin.report.coverage.unexercised()
        out(
            f"no violation in {twin.examples} examples ({twin.faults} faults injected, "
            f"{twin.report.judged} uses judged"
            + (f"; none of a {_either(never)} token" if never else "")
            + ")"
        )
    else:
        out(f"violation in the twin too:\n{twin.failure}")
    return buggy, twin


def story(failure: Failure) -> str:
    """The shrunk steps as short sentences, then the violation."""
    lines: list[str] = []
    tokens: list[str] = []
    for step in failure.steps:
        text = _sentence(step, tokens)
        if text:
            lines.append(f"  {len(lines) + 1}. {text}")
    for violation in failure.violations:
        lines.append(f"  -> {violation.kind}: {violation.sentence}")
    return "\n".join(lines)


def _sentence(step: Step, tokens: list[str]) -> str:
    rule, args, draws = step.rule, step.args, list(step.draws)

    def scopes(value: Any) -> str:
        if isinstance(value, dict) and "set" in value:
            return "+".join(value["set"])
        return "?"

    def token(value: Any) -> str:
        index = value.get("token") if isinstance(value, dict) else None
        return tokens[index] if isinstance(index, int) and index < len(tokens) else "a token"

    if rule in ("grant", "login"):
        name = f"token {len(tokens) + 1}"
        tokens.append(name)
        route = draws[1] if len(draws) > 1 else "a route"
        granted = scopes(draws[0]) if draws else "?"
        who = "client machine gets" if rule == "grant" else f"{args.get('user')} logs in, gets"
        return f"{who} {name} for {granted}, uses it on {route}"
    if rule == "refresh":
        name = f"token {len(tokens) + 1}"
        tokens.append(name)
        return f"{token(args.get('token'))} is refreshed: {name}"
    if rule == "call":
        return f"{token(args.get('token'))} calls every route"
    if rule == "revoke":
        whole = args.get("whole_grant")
        if "token" not in args:
            return "the client's " + ("session is revoked" if whole else "token is revoked")
        return ("the grant of " if whole else "") + f"{token(args.get('token'))} is revoked"
    if rule == "narrow":
        kept = scopes(draws[0]) if draws else "?"
        return f"{token(args.get('token'))}'s grant is narrowed to {kept or 'no scope'}"
    if rule == "expire":
        target = token(args["token"]) if "token" in args else "the client's token"
        return f"{target} is expired early by the IdP"
    if rule == "advance":
        return f"{draws[0] if draws else '?'} s pass; clients keep using their tokens"
    if rule == "rotate_keys":
        return f"the IdP rotates its keys ({args.get('mode')})"
    if rule == "outage":
        endpoint = draws[0] if draws else "an endpoint"
        return f"the IdP's {endpoint} endpoint is down for {args.get('seconds')} s"
    if rule == "submit_hostile":
        attack = draws[0].get("hostile") if draws and isinstance(draws[0], dict) else "?"
        return f"a forged token ({attack}) based on {token(args.get('token'))} is sent"
    if rule == "use":
        return f"a request comes into the client ({draws[0] if draws else '?'})"
    if rule == "burst":
        return f"{args.get('n')} requests come into the client at once"
    return str(rule)


def _either(words: list[str]) -> str:
    """``a, b or c``."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"
