"""A mitmproxy addon: what a user would script today to re-sign token responses.

Verifies each access token against the upstream's JWKS, narrows its scope, and re-signs it
with a key of its own. Run with: mitmdump --mode reverse:UPSTREAM -s bench/_mitm_resign.py
"""

from __future__ import annotations

import json
import os
import urllib.request

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from mitmproxy import http

UPSTREAM = os.environ["BENCH_UPSTREAM"]
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
with urllib.request.urlopen(f"{UPSTREAM}/jwks") as answer:  # noqa: S310 - loopback
    UPSTREAM_KEYS = {k["kid"]: jwt.PyJWK(k) for k in json.load(answer)["keys"]}


def response(flow: http.HTTPFlow) -> None:
    if flow.request.path != "/token" or flow.response is None or flow.response.status_code != 200:
        return
    data = json.loads(flow.response.content or b"{}")
    token = data["access_token"]
    key = UPSTREAM_KEYS[jwt.get_unverified_header(token)["kid"]]
    claims = jwt.decode(token, key, algorithms=["RS256"], options={"verify_aud": False})
    claims["scope"] = "read"
    data["access_token"] = jwt.encode(claims, KEY, algorithm="RS256", headers={"kid": "mitm"})
    data["scope"] = "read"
    flow.response.content = json.dumps(data).encode()
