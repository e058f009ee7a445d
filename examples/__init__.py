"""Services on third-party stacks (``examples/stacks``: PyJWT's ``PyJWKClient``, Authlib's
resource protector, and the Node stacks under ``tests/interop/node``), run by the tests and
benchmarks of a checkout. The known-bug services and their twins ship in the package:
:mod:`jitchaos.known_bugs` (``python -m jitchaos.known_bugs NAME`` serves one)."""
