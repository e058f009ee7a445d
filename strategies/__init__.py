"""The scenario catalogue: ready-made auth flows built only from jitchaos's public API.

Each module here describes one concrete flow (client-credentials rotation, refresh-token rotation
with reuse detection, ...). The catalogue is still empty: the scenarios need the stateful machine.
"""
