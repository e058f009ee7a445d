"""Serve one known-bug service (or its fixed twin) in its own process, for ``jitchaos run``.

Usage: python -m jitchaos.known_bugs NAME --idp URL [--port PORT] [--fixed]
                           [--issuer ISS] [--audience AUD] [--client ID:SECRET]
                           [--downstream URL]
    NAME: permission_cache, introspection_cache, jwks_cache, jwks_wiped, stateless_jwt,
    shared_cache. It introspects as --client (default machine-api:machine-api-secret, the
    embedded IdP's); behind a real IdP, --issuer is the IdP's issuer (default: --idp) and
    --audience its tokens' audience (default: jitchaos).

    A client (NAME: refresh_on_timer, concurrent_refresh) answers each request by calling the
    same route on --downstream with its token, logging in as user alice with --client
    (default app:app-secret, the embedded IdP's).
"""

from __future__ import annotations

import argparse
import importlib
import inspect

from aiohttp import web

SERVICES = (
    "permission_cache",
    "introspection_cache",
    "jwks_cache",
    "jwks_wiped",
    "stateless_jwt",
    "shared_cache",
)
CLIENTS = ("refresh_on_timer", "concurrent_refresh")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m jitchaos.known_bugs", description=__doc__)
    parser.add_argument("name", choices=SERVICES + CLIENTS)
    parser.add_argument("--idp", required=True, help="the IdP URL (also the issuer)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--fixed", action="store_true", help="serve the correct twin")
    parser.add_argument("--issuer", help="the tokens' iss (default: --idp)")
    parser.add_argument("--audience", help="the tokens' aud (default: jitchaos)")
    parser.add_argument(
        "--client", metavar="ID:SECRET", help="the introspection client (a client: its own)"
    )
    parser.add_argument("--downstream", metavar="URL", help="the API a client calls")
    parser.add_argument("--ttl", type=float, metavar="SECONDS", help="a cache's life")
    args = parser.parse_args()
    module = importlib.import_module(f"jitchaos.known_bugs.{args.name}")
    options: dict[str, object] = {"idp_url": args.idp.rstrip("/"), "fixed": args.fixed}
    if args.name in CLIENTS:
        if args.downstream is None:
            parser.error(f"{args.name} is a client: give --downstream")
        options["downstream"] = args.downstream.rstrip("/")
        options["client"] = ("app", "app-secret")
    elif args.downstream is not None:
        parser.error(f"{args.name} is a service: it takes no --downstream")
    if args.issuer is not None:
        options["issuer"] = args.issuer
    if args.audience is not None:
        options["audience"] = args.audience
    if args.ttl is not None:
        options["ttl"] = args.ttl
    if args.client is not None:
        client_id, colon, secret = args.client.partition(":")
        if not colon:
            parser.error("--client must be ID:SECRET")
        options["client"] = (client_id, secret)
    accepted = inspect.signature(module.make_app).parameters
    for name in options:
        if name not in accepted:
            parser.error(f"{args.name} takes no --{name}")
    app = module.make_app(**options)
    web.run_app(app, host="127.0.0.1", port=args.port, print=lambda *_: print("ready", flush=True))


if __name__ == "__main__":
    main()
