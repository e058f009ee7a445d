"""Hypothesis strategies for the auth world: scopes, claims, keys, tokens, principals, grants,
the hostile-token catalogue, faults, schedules and policies.

Every strategy takes keyword-only arguments; arguments that vary per example are strategies,
and the things an attack is aimed at (a legitimate token, the key ring that signed it) are
values. Bad arguments raise :class:`~jitchaos.errors.InvalidArgument` naming the argument and
its value. Each docstring ends with how the values shrink.
"""

from jitchaos.strategies._claims import claims, scopes
from jitchaos.strategies._faults import faults
from jitchaos.strategies._hostile import (
    ATTACKS,
    FORGERIES,
    HostileToken,
    alg_none_tokens,
    audience_confusion_tokens,
    edited_payload_tokens,
    embedded_jwk_tokens,
    header_oddity_tokens,
    hostile_tokens,
    jku_tokens,
    key_confusion_tokens,
    kid_injection_tokens,
    scope_shape_tokens,
    stripped_signature_tokens,
    temporal_edge_tokens,
    token_type_confusion_tokens,
    weak_hmac_tokens,
)
from jitchaos.strategies._schedules import policies, schedules
from jitchaos.strategies._tokens import grants, principals, signing_keys, tokens

__all__ = [
    "ATTACKS",
    "FORGERIES",
    "HostileToken",
    "alg_none_tokens",
    "audience_confusion_tokens",
    "claims",
    "edited_payload_tokens",
    "embedded_jwk_tokens",
    "faults",
    "grants",
    "header_oddity_tokens",
    "hostile_tokens",
    "jku_tokens",
    "key_confusion_tokens",
    "kid_injection_tokens",
    "policies",
    "principals",
    "schedules",
    "scope_shape_tokens",
    "scopes",
    "signing_keys",
    "stripped_signature_tokens",
    "temporal_edge_tokens",
    "token_type_confusion_tokens",
    "tokens",
    "weak_hmac_tokens",
]
