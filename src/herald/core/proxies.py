"""Whose ``X-Forwarded-For`` Herald believes: only ``HERALD_TRUSTED_PROXIES``.

The client's address counts failed sign-ins (``HERALD_LOGIN_MAX_FAILURES_PER_IP``), so a
header that anyone can send must not set it. uvicorn believes ``X-Forwarded-For`` from
127.0.0.1 unless told otherwise, which let a client on the same machine (or behind a
proxy on it that passes the header through) pick a new address for every attempt. Herald
therefore turns uvicorn's proxy headers off unless proxies are configured, and then
believes them from those addresses only (uvicorn takes the right-most address in the
header that is not a trusted proxy as the client's).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from herald.core.settings import ConfigurationError, Settings


def trusted_proxies(settings: Settings) -> list[str]:
    """The configured proxies, each an IP address or a network in CIDR notation."""
    for entry in settings.trusted_proxies:
        try:
            if "/" in entry:
                ipaddress.ip_network(entry)
            else:
                ipaddress.ip_address(entry)
        except ValueError:
            raise ConfigurationError(
                f"HERALD_TRUSTED_PROXIES: {entry!r} is not an IP address or a network "
                "(such as 10.0.0.5 or 10.0.0.0/8; a network has no host bits set)"
            ) from None
    return list(settings.trusted_proxies)


def uvicorn_proxy_options(settings: Settings) -> dict[str, Any]:
    """``proxy_headers`` and ``forwarded_allow_ips`` for ``uvicorn.run``."""
    proxies = trusted_proxies(settings)
    if not proxies:
        # Not even uvicorn's default (127.0.0.1) or its FORWARDED_ALLOW_IPS variable.
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": proxies}
