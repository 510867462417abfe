"""Pure: which server names the local CA may sign, and which leaf serves a given SNI name.

The root is name-constrained (RFC 5280 §4.2.1.10) to ``localhost`` and its subdomains and to
the loopback ranges, so a leaked key cannot sign for the real web. Every name the gateway
serves is ``NAME.localhost`` (routes, ``--wildcard`` subdomains, ``homeport.localhost``), and
IP literals send no SNI (RFC 6066 §3), so nothing else needs signing.

One leaf covers a route and its wildcard subdomains: the SNI name ``api.localhost`` and
``v1.api.localhost`` both get the leaf for ``api.localhost`` + ``*.api.localhost``. A wildcard
matches exactly one label (RFC 6125 §6.4.3), so ``a.b.api.localhost`` gets the leaf for
``b.api.localhost`` + ``*.b.api.localhost``. ``*.localhost`` itself is never issued: browsers
refuse a wildcard directly under a top-level name.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

#: DNS subtrees the root may sign for (RFC 5280: "localhost" already covers every subdomain;
#: the leading-dot form is what OpenSSL and NSS read as "subdomains only", kept for verifiers
#: that read it that way).
PERMITTED_DNS: tuple[str, ...] = ("localhost", ".localhost")
#: IP subtrees: all of IPv4 loopback, and ::1.
PERMITTED_IPS: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)
DEFAULT_NAME = "localhost"
#: The SANs of the default leaf: what a client without SNI (an IP literal) or with a name the
#: CA may not sign is given.
DEFAULT_SANS: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


@dataclass(frozen=True, slots=True)
class LeafSpec:
    """The leaf that serves a name: its cache key and its subject alternative names."""

    key: str
    sans: tuple[str, ...]


DEFAULT_LEAF = LeafSpec(DEFAULT_NAME, DEFAULT_SANS)


def normalize(server_name: str) -> str | None:
    """The lowercase, dot-trimmed name if it is a valid DNS host name under ``localhost``,
    else None. SNI carries A-labels (RFC 6066 §3), so no IDNA step is needed here."""
    name = server_name.strip().rstrip(".").lower()
    if not name or len(name) > 253:
        return None
    labels = name.split(".")
    if labels[-1] != "localhost" or not all(_LABEL.match(x) for x in labels):
        return None
    return name


def signable(name: str) -> bool:
    """True when the CA's name constraints permit ``name`` (a DNS name or an IP literal)."""
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return normalize(name) is not None
    return any(ip.version == net.version and ip in net for net in PERMITTED_IPS)


def leaf_for(server_name: str | None) -> LeafSpec:
    """The leaf to present for an SNI name (None: the client sent none)."""
    name = normalize(server_name) if server_name else None
    if name is None or name == DEFAULT_NAME:
        return DEFAULT_LEAF
    labels = name.split(".")
    base = name if len(labels) == 2 else ".".join(labels[1:])
    return LeafSpec(base, (base, f"*.{base}"))
