"""Reading compact JWS tokens on the proxy's hot path.

PyJWT's decoder validates base64url one character at a time in Python, which costs more than
the RSA verification itself; the proxy reads every token response, so it splits and decodes
segments with one C-level regex and ``binascii`` and hands only the signature check to PyJWT's
algorithm objects. Header segments repeat (an IdP writes the same alg, kid and typ on every
token), so each distinct one is decoded once.

Re-signing mints one token per token response. :func:`sign_compact` writes what ``jwt.encode``
writes for RS256 (the same sorted header, the same compact JSON, byte for byte) with the header
segment encoded once per key and the key object's own ``sign`` called directly, which saves
PyJWT's per-call header validation, copies and algorithm lookup (6-10 us a token here). Other
algorithms go through ``jwt.encode``.
"""

from __future__ import annotations

import binascii
import json
import re
from typing import Any

import attrs
import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from jitchaos._keys import SigningKey

__all__ = ["CompactJWS", "parse_compact", "sign_compact", "verify_signature"]

_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")
_ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
)


@attrs.frozen
class CompactJWS:
    """A JWT split into its parts; nothing about it is verified yet."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    encoded_signature: str

    def signature(self) -> bytes:
        """The signature bytes (decoded only when a signature is checked)."""
        return _b64(self.encoded_signature)


def _b64(segment: str) -> bytes:
    if not _SEGMENT.fullmatch(segment):
        raise ValueError("not base64url")
    padded = segment.replace("-", "+").replace("_", "/") + "=" * (-len(segment) % 4)
    return binascii.a2b_base64(padded, strict_mode=True)


# An IdP writes the same few header segments (alg, kid, typ) on every token it issues.
_headers: dict[str, dict[str, Any]] = {}


def _header(segment: str) -> dict[str, Any] | None:
    """The decoded JOSE header (a fresh dict each time), or None when it is not a JSON object;
    decoded once per distinct segment."""
    cached = _headers.get(segment)
    if cached is None:
        try:
            header = json.loads(_b64(segment))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
        if not isinstance(header, dict):
            return None
        if len(_headers) >= 64:  # many keys or garbage: start over rather than grow
            _headers.clear()
        cached = _headers[segment] = header
    return dict(cached)


def parse_compact(token: str) -> CompactJWS | None:
    """The token's parts, or None when it is not a compact JWS with JSON header and claims
    (an opaque token, or garbage)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    header = _header(parts[0])
    if header is None:
        return None
    try:
        claims = json.loads(_b64(parts[1]))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    if not isinstance(claims, dict):
        return None
    return CompactJWS(header, claims, f"{parts[0]}.{parts[1]}".encode(), parts[2])


def verify_signature(token: CompactJWS, key: jwt.PyJWK, *, issuer: str | None) -> None:
    """Raise :class:`jwt.PyJWTError` unless ``key`` signed ``token`` with an asymmetric
    algorithm it is meant for, and ``iss`` is ``issuer`` (when given)."""
    algorithm = token.header.get("alg")
    if algorithm not in _ASYMMETRIC:
        raise jwt.InvalidAlgorithmError(f"alg {algorithm!r} is not an asymmetric algorithm")
    if key.algorithm_name != algorithm:
        raise jwt.InvalidAlgorithmError(
            f"alg {algorithm!r} does not match the key's {key.algorithm_name!r}"
        )
    try:
        signature = token.signature()
    except (ValueError, binascii.Error):
        raise jwt.InvalidSignatureError("the signature is not base64url") from None
    if not key.Algorithm.verify(token.signing_input, key.key, signature):
        raise jwt.InvalidSignatureError("Signature verification failed")
    if issuer is not None and token.claims.get("iss") != issuer:
        raise jwt.InvalidIssuerError(f"iss {token.claims.get('iss')!r} is not {issuer!r}")


_PKCS1 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()
_header_segments: dict[tuple[str, str, str | None], bytes] = {}


def _b64encode(data: bytes) -> bytes:
    encoded = binascii.b2a_base64(data, newline=False).rstrip(b"=")
    return encoded.replace(b"+", b"-").replace(b"/", b"_")


def sign_compact(claims: dict[str, Any], key: SigningKey, *, typ: str | None) -> str:
    """``jwt.encode(claims, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid,
    "typ": typ})`` (without ``typ``: PyJWT's default ``JWT``), byte for byte."""
    private_key = key.private_key
    if key.algorithm != "RS256" or not isinstance(private_key, rsa.RSAPrivateKey):
        headers = {"kid": key.kid} if typ is None else {"kid": key.kid, "typ": typ}
        return jwt.encode(claims, private_key, algorithm=key.algorithm, headers=headers)
    if "iss" in claims and not isinstance(claims["iss"], str):
        raise TypeError("Issuer (iss) must be a string.")  # as jwt.encode refuses it
    cache_key = (key.algorithm, key.kid, typ)
    header = _header_segments.get(cache_key)
    if header is None:
        fields = {"alg": key.algorithm, "kid": key.kid, "typ": "JWT" if typ is None else typ}
        if not fields["typ"]:
            del fields["typ"]
        header = _b64encode(json.dumps(fields, separators=(",", ":"), sort_keys=True).encode())
        if len(_header_segments) >= 64:  # many rotations: start over rather than grow
            _header_segments.clear()
        _header_segments[cache_key] = header
    payload = _b64encode(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = header + b"." + payload
    signature = private_key.sign(signing_input, _PKCS1, _SHA256)
    return (signing_input + b"." + _b64encode(signature)).decode("ascii")
