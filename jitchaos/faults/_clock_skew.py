"""clock_skew: the IdP's clock disagrees with the services'.

Tokens issued while active carry ``iat``/``nbf`` shifted by ``seconds`` (positive: in the future)
and, with ``exp_at_leeway``, an ``exp`` exactly at the policy's leeway boundary. Exposes skew
applied with the wrong sign and ``nbf`` rounding mismatches ("JWT not active yet").
"""

from __future__ import annotations

import math
from typing import ClassVar

import attrs

from jitchaos.errors import InvalidArgument


def _finite(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidArgument(f"{attribute.name}={value!r} must be a finite number of seconds")


@attrs.frozen(kw_only=True)
class ClockSkew:
    """Shift the time claims of tokens being issued."""

    kind: ClassVar[str] = "clock_skew"
    summary: ClassVar[str] = "iat/nbf in the future or exp at the leeway boundary"

    seconds: float = attrs.field(default=5.0, validator=_finite)
    exp_at_leeway: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
