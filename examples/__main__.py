"""Serve one known-bug service (or its fixed twin) in its own process, for ``jitchaos run``.

Usage: python -m examples NAME --idp URL [--port PORT] [--fixed]
    NAME: permission_cache, introspection_cache, jwks_cache, jwks_wiped, stateless_jwt,
    shared_cache. It introspects as client machine-api / machine-api-secret.
"""

from __future__ import annotations

import argparse
import importlib

from aiohttp import web

SERVICES = (
    "permission_cache",
    "introspection_cache",
    "jwks_cache",
    "jwks_wiped",
    "stateless_jwt",
    "shared_cache",
)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m examples", description=__doc__)
    parser.add_argument("name", choices=SERVICES)
    parser.add_argument("--idp", required=True, help="the IdP URL (also the issuer)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--fixed", action="store_true", help="serve the correct twin")
    args = parser.parse_args()
    module = importlib.import_module(f"examples.{args.name}")
    app = module.make_app(idp_url=args.idp.rstrip("/"), fixed=args.fixed)
    web.run_app(app, host="127.0.0.1", port=args.port, print=lambda *_: print("ready", flush=True))


if __name__ == "__main__":
    main()
