"""Known-bug services: small aiohttp apps built the way real services are, each with one classic
credential-handling bug (``fixed=False``) and its correct twin (``fixed=True``).

Each module's ``make_app(*, idp_url, now, fixed=False, ...)`` serves ``GET /read`` (needs scope
``read``) and ``POST /write`` (needs ``write``) for tokens issued by the IdP at ``idp_url``;
``now`` is the service's clock.
"""
