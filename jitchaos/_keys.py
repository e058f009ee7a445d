"""Signing keys generated per run: the current key signs, earlier keys stay published.

A :class:`KeyRing` is what the IdP signs with and what its JWKS endpoint renders. Key rotation
is the moment resource servers with a JWKS cache break, so the ring makes every shape of it one
call: :meth:`KeyRing.rotate` adds a kid and signs with it, :meth:`KeyRing.remove` withdraws one.
Private keys are generated in memory by ``cryptography`` and never written anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Callable
from typing import Literal

import attrs
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from jitchaos.errors import ConfigError, InvalidArgument

__all__ = ["ALGORITHMS", "KeyRing", "SigningKey"]

Algorithm = Literal["RS256", "ES256"]
ALGORITHMS: tuple[Algorithm, ...] = ("RS256", "ES256")

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@attrs.frozen
class SigningKey:
    """One asymmetric key: its key id, algorithm and private half (kept out of the repr)."""

    kid: str
    """RFC 7638 JWK thumbprint of the public key."""
    algorithm: Algorithm
    """The JWS ``alg`` this key signs with."""
    private_key: PrivateKey = attrs.field(repr=False)
    """The private key; never serialised."""

    @classmethod
    def generate(cls, algorithm: Algorithm = "RS256") -> SigningKey:
        """Generate a fresh key for ``algorithm`` (RS256: RSA 2048, ES256: P-256)."""
        private_key: PrivateKey
        if algorithm == "RS256":
            private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif algorithm == "ES256":
            private_key = ec.generate_private_key(ec.SECP256R1())
        else:
            raise ConfigError(
                f"algorithm={algorithm!r} is not supported; choose one of {', '.join(ALGORITHMS)}"
            )
        return cls(
            kid=_thumbprint(_public_members(private_key)),
            algorithm=algorithm,
            private_key=private_key,
        )

    def public_jwk(self) -> dict[str, str]:
        """The public key as a JWK with ``kid``, ``alg`` and ``use``, as a JWKS publishes it."""
        jwk = _public_members(self.private_key)
        jwk.update(kid=self.kid, alg=self.algorithm, use="sig")
        return jwk


class KeyRing:
    """The keys an issuer signs with and publishes.

    Thread-safe: tests rotate keys from their own thread while the IdP signs on its event loop.
    """

    def __init__(
        self,
        algorithm: Algorithm = "RS256",
        *,
        key: SigningKey | None = None,
        source: Callable[[Algorithm], SigningKey] | None = None,
    ) -> None:
        """A ring holding one key: ``key``, or a new one for ``algorithm``. Rotations take
        their new keys from ``source`` (default: :meth:`SigningKey.generate`)."""
        if key is not None and not isinstance(key, SigningKey):
            raise InvalidArgument(f"key={key!r} must be a SigningKey")
        if source is not None and not callable(source):
            raise InvalidArgument(f"source={source!r} must be a callable making a SigningKey")
        self._lock = threading.Lock()
        self._source = source if source is not None else SigningKey.generate
        first = key if key is not None else SigningKey.generate(algorithm)
        self._keys: tuple[SigningKey, ...] = (first,)
        self._current = first
        self._pending: tuple[tuple[float, SigningKey], ...] = ()

    @property
    def current(self) -> SigningKey:
        """The key new tokens are signed with."""
        return self._current

    @property
    def keys(self) -> tuple[SigningKey, ...]:
        """Every published key, oldest first."""
        return self._keys

    @property
    def algorithm(self) -> Algorithm:
        """The algorithm of the current key."""
        return self._current.algorithm

    def get(self, kid: str) -> SigningKey | None:
        """The published key with ``kid``, or None once it was removed (or never existed)."""
        return next((key for key in self._keys if key.kid == kid), None)

    def new_key(self, algorithm: Algorithm | None = None) -> SigningKey:
        """A key from this ring's source, not yet published (record it, then publish it)."""
        return self._source(algorithm or self._current.algorithm)

    def rotate(
        self, algorithm: Algorithm | None = None, *, key: SigningKey | None = None
    ) -> SigningKey:
        """Publish ``key`` (default: a new one), sign with it from now on, and keep publishing
        the old ones (an emergency rotation: services meet the new kid with the first token it
        signs)."""
        key = key if key is not None else self.new_key(algorithm)
        with self._lock:
            self._keys = (*self._keys, key)
            self._current = key
        return key

    def publish(
        self,
        signs_from: float,
        algorithm: Algorithm | None = None,
        *,
        key: SigningKey | None = None,
    ) -> SigningKey:
        """Publish ``key`` (default: a new one) now; it signs from ``signs_from`` on (a time of
        the clock later given to :meth:`signing_key`). Real IdPs rotate this way, so that key
        caches hold the new key before any token needs it."""
        key = key if key is not None else self.new_key(algorithm)
        with self._lock:
            self._keys = (*self._keys, key)
            self._pending = tuple(
                sorted((*self._pending, (float(signs_from), key)), key=lambda p: p[0])
            )
        return key

    def signing_key(self, now: float) -> SigningKey:
        """The key that signs at ``now``: a published key whose time has come takes over."""
        pending = self._pending  # one read: another thread may promote meanwhile
        if pending and pending[0][0] <= now:
            with self._lock:
                while self._pending and self._pending[0][0] <= now:
                    _, key = self._pending[0]
                    self._pending = self._pending[1:]
                    if any(k is key for k in self._keys):  # not removed meanwhile
                        self._current = key
        return self._current

    def is_pending(self, key: SigningKey) -> bool:
        """Whether ``key`` is published but does not sign yet."""
        return any(waiting is key for _, waiting in self._pending)

    def rekey(self) -> SigningKey:
        """Keep the current kid but put a new key behind it (a botched rotation).

        Tokens the old key signed stop verifying although their kid is still published:
        only a verifier that refetches the JWKS on a signature failure recovers.
        """
        fresh = self._source(self._current.algorithm)
        with self._lock:
            old = self._current
            key = SigningKey(kid=old.kid, algorithm=old.algorithm, private_key=fresh.private_key)
            self._keys = tuple(key if k is old else k for k in self._keys)
            self._current = key
        return key

    def remove(self, kid: str) -> SigningKey:
        """Stop publishing the key ``kid``; tokens it signed no longer verify."""
        with self._lock:
            key = self.get(kid)
            if key is None:
                raise InvalidArgument(f"kid={kid!r} names no published key")
            if key is self._current:
                raise InvalidArgument(
                    f"kid={kid!r} is the current signing key; rotate() before removing it"
                )
            self._keys = tuple(k for k in self._keys if k is not key)
            self._pending = tuple(p for p in self._pending if p[1] is not key)
        return key

    def restart(self, key: SigningKey) -> None:
        """Hold only ``key`` again (signing with it, nothing pending): a new example of a
        world whose proxy outlives examples starts from its first key."""
        if not isinstance(key, SigningKey):
            raise InvalidArgument(f"key={key!r} must be a SigningKey")
        with self._lock:
            self._keys = (key,)
            self._current = key
            self._pending = ()

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The JSON Web Key Set (RFC 7517 §5) of every published key."""
        return {"keys": [key.public_jwk() for key in self._keys]}

    def __repr__(self) -> str:
        kids = ", ".join(key.kid for key in self._keys)
        return f"<KeyRing current={self._current.kid} published=[{kids}]>"


# The members a public JWK is made of (RFC 7518 §6.2.1, §6.3.1). PyJWT's ``to_jwk`` also writes
# ``key_ops`` (a JSON array); a key set that says ``use`` should not say ``key_ops`` too (RFC 7517
# §4.3), and a stringified array hid every key from jwks-rsa, so only these are published.
_PUBLIC_MEMBERS = {"RSA": ("kty", "n", "e"), "EC": ("kty", "crv", "x", "y")}


def _public_members(private_key: PrivateKey) -> dict[str, str]:
    if isinstance(private_key, rsa.RSAPrivateKey):
        jwk = RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    else:
        jwk = ECAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    members = _PUBLIC_MEMBERS[jwk["kty"]]
    if not all(isinstance(jwk.get(name), str) for name in members):
        raise TypeError(f"PyJWT wrote a JWK whose members are not strings: {sorted(jwk)}")
    return {name: jwk[name] for name in members}


def _thumbprint(jwk: dict[str, str]) -> str:
    # RFC 7638 §3: the required members only, sorted, no whitespace.
    required = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y")}[jwk["kty"]]
    canonical = json.dumps(
        {name: jwk[name] for name in required}, separators=(",", ":"), sort_keys=True
    )
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
