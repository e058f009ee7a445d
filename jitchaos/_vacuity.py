"""No verdict without evidence: a run that judged nothing fails, with its likely cause.

Like Hypothesis's health checks: each check has a name, and a machine's
``suppress_vacuity`` (``jitchaos run --suppress NAME``) turns it off.

- ``all-5xx``: every call to a route answered 5xx, so no answer about a token was judged.
- ``none-determinate``: no decision was determinate (must-allow or must-deny): every one fell
  inside the policy's windows, or no call reached the service.
- ``faults-unused``: faults were injected, but no decision followed about what they changed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from jitchaos._coverage import CoverageCell
from jitchaos._report import RunReport
from jitchaos.errors import InvalidArgument

__all__ = ["CHECKS", "VacuousRun", "all_5xx", "check_names", "uncovered", "vacuity"]

CHECKS = ("all-5xx", "none-determinate", "faults-unused")


class VacuousRun(AssertionError):
    """A run judged nothing a clean verdict could rest on (see :func:`vacuity`)."""


def check_names(where: str, names: Collection[str]) -> frozenset[str]:
    """``names`` as a set of vacuity checks; InvalidArgument naming any unknown one."""
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise InvalidArgument(f"{where} must be a collection of check names {list(CHECKS)}")
    unknown = sorted(set(names) - set(CHECKS))
    if unknown:
        raise InvalidArgument(f"{where}: {unknown} are not vacuity checks (they are {CHECKS})")
    return frozenset(names)


def all_5xx(calls: Mapping[str, Mapping[int, int]]) -> str | None:
    """The ``all-5xx`` check on calls per route and status: one sentence for the first route
    whose every call answered 5xx, with its likely cause; None when every route got an
    answer about a token."""
    for route, statuses in sorted(calls.items()):
        total = sum(statuses.values())
        failed = {s: n for s, n in statuses.items() if s >= 500}
        if total and sum(failed.values()) == total:
            answered = ", ".join(f"{n} x {s}" for s, n in sorted(failed.items()))
            if set(failed) <= {503}:
                cause = "the service cannot reach the IdP (its JWKS or introspection)"
            elif set(failed) <= {502, 503, 504}:
                cause = "gateway errors: the service is not reachable, or cannot reach the IdP"
            else:
                cause = "the service cannot validate the IdP's tokens"
            return (
                f"all {total} calls to {route} answered 5xx ({answered}): {cause}; check "
                "its IdP URL, JWKS, issuer and audience settings (suppress: all-5xx)"
            )
    return None


def vacuity(report: RunReport, suppress: Collection[str] = ()) -> str | None:
    """One sentence naming why ``report``'s run judged nothing, with the likely cause; None
    when it judged enough to stand on."""
    calls = report.calls
    if "all-5xx" not in suppress:
        found = all_5xx(calls)
        if found is not None:
            return found
    if "none-determinate" not in suppress and report.judged == 0:
        total = sum(sum(s.values()) for s in calls.values())
        if not total:
            return (
                "no call with a token reached the service: nothing was judged; check that "
                "the run's rules grant and use tokens (suppress: none-determinate)"
            )
        return (
            f"none of the {total} decisions was determinate (must-allow or must-deny): each "
            "fell inside the policy's windows or answered 5xx, so nothing was judged; a "
            "shorter staleness or longer runs give the checker something to judge "
            "(suppress: none-determinate)"
        )
    if "faults-unused" not in suppress and report.faults and not report.faults_followed:
        return (
            f"none of the {report.faults} faults injected was followed by a use of what it "
            "changed: the run never saw the service handle one; more steps per example, or "
            "rules that use tokens after a change, exercise them (suppress: faults-unused)"
        )
    return None


def uncovered(report: RunReport, required: Collection[CoverageCell]) -> str | None:
    """One sentence naming the required coverage cells ``report``'s run judged no use in;
    None when it judged one in each."""
    missing = report.coverage.missing(required)
    if not missing:
        return None
    never = report.coverage.unexercised()
    return (
        f"no use was judged in the required coverage cell{'s' if len(missing) > 1 else ''} "
        f"{', '.join(str(cell) for cell in missing)} (state:fault:route); the run "
        + (f"judged no use of a {', '.join(never)} token; " if never else "")
        + "more examples or steps, or rules that reach those states, cover them"
    )
