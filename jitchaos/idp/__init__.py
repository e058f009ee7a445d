"""The embedded OpenID Connect IdP: everything runs on one machine with nothing else installed."""

from jitchaos.idp._app import EmbeddedIdP
from jitchaos.idp._config import ClientConfig, IdPConfig, UserConfig, parse_client, parse_user

__all__ = ["ClientConfig", "EmbeddedIdP", "IdPConfig", "UserConfig", "parse_client", "parse_user"]
