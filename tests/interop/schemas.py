"""JSON Schemas (draft 2020-12) of every document jitchaos serves, with the JSON type each
member must have, as the specifications define them. A strict reader refuses what these refuse.

- discovery: OpenID Connect Discovery 1.0 §3 and RFC 8414 §2
- JWKS: RFC 7517 §4-5 and RFC 7518 §6
- access token: RFC 9068 §2 (header and claims), RFC 7519 §4.1
- ID token: OpenID Connect Core 1.0 §2
- token answer: RFC 6749 §5.1; introspection: RFC 7662 §2.2; errors: RFC 6749 §5.2
"""

from __future__ import annotations

from typing import Any

_STRING = {"type": "string", "minLength": 1}
_STRINGS = {"type": "array", "items": _STRING}
_URL = {"type": "string", "pattern": "^https?://[^\\s#]+$"}
_NUMERIC_DATE = {"type": "integer", "minimum": 0}  # RFC 7519 §2; integers, as RFC 9068 issuers do
_BASE64URL = {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"}
_AUDIENCE = {"oneOf": [_STRING, {"type": "array", "items": _STRING, "minItems": 1}]}
_SCOPE = {
    "type": "string",
    "pattern": "^[\\x21\\x23-\\x5b\\x5d-\\x7e]+( [\\x21\\x23-\\x5b\\x5d-\\x7e]+)*$",
}

DISCOVERY: dict[str, Any] = {
    "type": "object",
    "required": [
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
    ],
    "properties": {
        "issuer": {"type": "string", "pattern": "^https?://[^?#]+$"},
        **{
            name: _URL
            for name in (
                "authorization_endpoint",
                "token_endpoint",
                "jwks_uri",
                "userinfo_endpoint",
                "registration_endpoint",
                "introspection_endpoint",
                "revocation_endpoint",
                "end_session_endpoint",
                "service_documentation",
                "op_policy_uri",
                "op_tos_uri",
            )
        },
        **{
            name: {**_STRINGS, "minItems": 1}
            for name in (
                "response_types_supported",
                "subject_types_supported",
                "id_token_signing_alg_values_supported",
            )
        },
        **{
            name: _STRINGS
            for name in (
                "scopes_supported",
                "response_modes_supported",
                "grant_types_supported",
                "acr_values_supported",
                "token_endpoint_auth_methods_supported",
                "token_endpoint_auth_signing_alg_values_supported",
                "introspection_endpoint_auth_methods_supported",
                "revocation_endpoint_auth_methods_supported",
                "code_challenge_methods_supported",
                "claims_supported",
                "claim_types_supported",
                "ui_locales_supported",
                "userinfo_signing_alg_values_supported",
            )
        },
        **{
            name: {"type": "boolean"}
            for name in (
                "claims_parameter_supported",
                "request_parameter_supported",
                "request_uri_parameter_supported",
                "require_request_uri_registration",
            )
        },
        "subject_types_supported": {
            "type": "array",
            "items": {"enum": ["public", "pairwise"]},
            "minItems": 1,
        },
        "id_token_signing_alg_values_supported": {
            "type": "array",
            "items": _STRING,
            "contains": {"const": "RS256"},  # OpenID Connect Discovery §3: RS256 MUST be there
        },
    },
}

_JWK: dict[str, Any] = {
    "type": "object",
    "required": ["kty", "kid"],
    "properties": {
        "kty": {"enum": ["RSA", "EC", "OKP", "oct"]},
        "use": {"enum": ["sig", "enc"]},
        "key_ops": {
            "type": "array",
            "uniqueItems": True,
            "items": {
                "enum": [
                    "sign",
                    "verify",
                    "encrypt",
                    "decrypt",
                    "wrapKey",
                    "unwrapKey",
                    "deriveKey",
                    "deriveBits",
                ]
            },
        },
        "alg": _STRING,
        "kid": _STRING,
        "x5u": _URL,
        "x5c": {"type": "array", "items": {"type": "string"}},
        "x5t": _BASE64URL,
        "x5t#S256": _BASE64URL,
        "n": _BASE64URL,
        "e": _BASE64URL,
        "crv": {"enum": ["P-256", "P-384", "P-521"]},
        "x": _BASE64URL,
        "y": _BASE64URL,
    },
    "not": {  # a published key set never carries private members (RFC 7517 §5)
        "anyOf": [{"required": [name]} for name in ("d", "p", "q", "dp", "dq", "qi", "oth", "k")]
    },
    "allOf": [
        {"if": {"properties": {"kty": {"const": "RSA"}}}, "then": {"required": ["n", "e"]}},
        {
            "if": {"properties": {"kty": {"const": "EC"}}},
            "then": {"required": ["crv", "x", "y"]},
        },
        # RFC 7517 §4.3: "use" and "key_ops" SHOULD NOT be used together.
        {"not": {"required": ["use", "key_ops"]}},
    ],
}

JWKS: dict[str, Any] = {
    "type": "object",
    "required": ["keys"],
    "properties": {"keys": {"type": "array", "items": _JWK, "minItems": 1}},
}

ACCESS_TOKEN_HEADER: dict[str, Any] = {
    "type": "object",
    "required": ["alg", "typ", "kid"],
    "properties": {
        "alg": {"enum": ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256"]},
        "typ": {"enum": ["at+jwt", "application/at+jwt"]},
        "kid": _STRING,
    },
}

ACCESS_TOKEN_CLAIMS: dict[str, Any] = {
    "type": "object",
    "required": ["iss", "exp", "aud", "sub", "client_id", "iat", "jti"],
    "properties": {
        "iss": _STRING,
        "exp": _NUMERIC_DATE,
        "aud": _AUDIENCE,
        "sub": _STRING,
        "client_id": _STRING,
        "iat": _NUMERIC_DATE,
        "nbf": _NUMERIC_DATE,
        "jti": _STRING,
        "scope": _SCOPE,
        "auth_time": _NUMERIC_DATE,
        "groups": _STRINGS,
        "roles": _STRINGS,
        "entitlements": _STRINGS,
    },
}

ID_TOKEN_CLAIMS: dict[str, Any] = {
    "type": "object",
    "required": ["iss", "sub", "aud", "exp", "iat"],
    "properties": {
        "iss": _STRING,
        "sub": {"type": "string", "minLength": 1, "maxLength": 255},
        "aud": _AUDIENCE,
        "exp": _NUMERIC_DATE,
        "iat": _NUMERIC_DATE,
        "auth_time": _NUMERIC_DATE,
        "nonce": _STRING,
        "azp": _STRING,
    },
}

TOKEN_ANSWER: dict[str, Any] = {
    "type": "object",
    "required": ["access_token", "token_type"],
    "properties": {
        "access_token": _STRING,
        "token_type": {"type": "string", "pattern": "^[Bb][Ee][Aa][Rr][Ee][Rr]$"},
        "expires_in": {"type": "integer", "minimum": 0},
        "refresh_token": _STRING,
        "scope": _SCOPE,
        "id_token": _STRING,
    },
}

INTROSPECTION: dict[str, Any] = {
    "type": "object",
    "required": ["active"],
    "properties": {
        "active": {"type": "boolean"},
        "scope": _SCOPE,
        "client_id": _STRING,
        "username": _STRING,
        "token_type": _STRING,
        "exp": _NUMERIC_DATE,
        "iat": _NUMERIC_DATE,
        "nbf": _NUMERIC_DATE,
        "sub": _STRING,
        "aud": _AUDIENCE,
        "iss": _STRING,
        "jti": _STRING,
    },
    # RFC 7662 §2.2: an inactive token says nothing more about itself.
    "if": {"properties": {"active": {"const": False}}},
    "then": {"maxProperties": 1},
}

# RFC 6749 §5.2: error codes and descriptions are ASCII without '"' and '\'.
_ERROR_CHARS = "^[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e]+$"
ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "pattern": _ERROR_CHARS},
        "error_description": {"type": "string", "pattern": _ERROR_CHARS},
        "error_uri": {"type": "string", "pattern": "^[\\x21\\x23-\\x5b\\x5d-\\x7e]+$"},
    },
}

TOKEN_ERRORS = {
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
}
"""RFC 6749 §5.2's codes for the token endpoint."""
