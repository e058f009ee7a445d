"""The scenario catalogue: ready-made auth flows built only from jitchaos's public API.

Each module defines ``Scenario``, a machine class with the rules of one concrete flow and the
policy it expects; a test subclasses it and names its service and routes, or
``jitchaos run strategies/NAME.py --service URL --route 'GET /orders=read'`` runs it against a
running service through the proxy.
"""
