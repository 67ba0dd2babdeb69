"""Which endpoint base URLs Ranklab will call: http(s) only, no credentials in the URL, and
never a link-local or cloud-metadata address (169.254.0.0/16 with 169.254.169.254, fe80::/10,
fd00:ec2::254, and the metadata host names) unless `LLM_ALLOW_LINK_LOCAL` is on — a lead
could otherwise make the workers fetch the cloud's instance credentials. Private and
loopback hosts stay allowed: self-hosted vLLM, Ollama and TGI live on private networks.

Host names are resolved when the endpoint is saved and again when a process first calls it
(`llm.client`), so a name pointing at a metadata address is refused too; a name that does
not resolve yet is accepted (it may resolve only where the workers run).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

LINK_LOCAL_NETWORKS = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("fd00:ec2::254/128"),
)
METADATA_HOSTS = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data",
     "instance-data.ec2.internal"}
)  # fmt: skip


def base_url_refusal(url: str, *, resolve: bool = True) -> str | None:
    """Why Ranklab will not call `url`, or None when it may."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return "must be an http or https URL"
    if parts.username or parts.password or "@" in parts.netloc:
        return "put credentials in api_key, not in the URL"
    if link_local_allowed():
        return None
    host = parts.hostname.rstrip(".").lower()
    if host in METADATA_HOSTS:
        return f"{host} is a cloud metadata address"
    for address in _addresses(host, resolve=resolve):
        if _is_link_local(address):
            return (
                f"{host} is a link-local or cloud metadata address ({address}); "
                "set LLM_ALLOW_LINK_LOCAL to allow it"
            )
    return None


def link_local_allowed() -> bool:
    return bool(getattr(settings, "LLM_ALLOW_LINK_LOCAL", False))


def _is_link_local(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in LINK_LOCAL_NETWORKS)


def _addresses(host: str, *, resolve: bool) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    if not resolve:
        return []
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    found = []
    for info in infos:
        try:
            found.append(ipaddress.ip_address(str(info[4][0]).split("%")[0]))
        except ValueError:
            continue
    return found
