"""expire: tokens die before the client expects.

With ``issued_ttl``, tokens issued while the fault is active get that lifetime (``exp`` and
``expires_in`` shortened); without it, the targeted live tokens become expired at once:
introspection answers inactive and their refresh tokens give ``invalid_grant``. Exposes clients
that refresh only on their own timer and never on a 401, and caches that outlive a token.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from jitchaos.faults._base import check_target


@attrs.frozen(kw_only=True)
class Expire:
    """Shorten tokens being issued, or make live tokens expired now."""

    kind: ClassVar[str] = "expire"
    summary: ClassVar[str] = "shorten exp of issued tokens, or expire live tokens now"

    target: str = attrs.field(default="request", validator=check_target)
    """Which live tokens expire (ignored when ``issued_ttl`` is set)."""
    issued_ttl: int | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(
            [attrs.validators.instance_of(int), attrs.validators.ge(1)]
        ),
    )
    """Lifetime in seconds of tokens issued while active; None expires live tokens instead."""
