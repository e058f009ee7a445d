"""What the embedded IdP, the proxy and its faults all write on the wire in the same shape."""

from __future__ import annotations

import re

__all__ = ["oauth_error"]

# RFC 6749 §5.2: error_description is printable ASCII without '"' or '\'.
_NOT_ALLOWED = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")
_SUBSTITUTES = {'"': "'", "\\": "/"}


def oauth_error(error: str, description: str, **extra: str) -> dict[str, str]:
    """An RFC 6749 §5.2 error body; a description quoting what a client sent (a scope, a client
    id) is made to fit the member's character set, which strict clients check."""
    said = _NOT_ALLOWED.sub(lambda found: _SUBSTITUTES.get(found.group(), "?"), description)
    return {"error": error, "error_description": said, **extra}
