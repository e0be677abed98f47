"""Asset class derivation (ipv4/ipv6/cidr/tld/domain/aws/s3/...)."""

from __future__ import annotations

import ipaddress
import re

_AWS_ACCOUNT = re.compile(r"^\d{12}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}$")


def _is_ip(v: str) -> int:
    try:
        return ipaddress.ip_address(v).version
    except ValueError:
        return 0


def asset_class(dns: str, name: str, source: str = "self", integration: str = "") -> str:
    if source == "account" and integration:
        return integration
    n = (name or "").lower()
    version = _is_ip(n)
    if version:
        return f"ipv{version}"
    if "/" in n:
        try:
            ipaddress.ip_network(n, strict=False)
            return "cidr"
        except ValueError:
            pass
    if n.startswith("s3://") or n.endswith(".s3.amazonaws.com"):
        return "s3"
    if _AWS_ACCOUNT.match(n) or n.startswith("arn:aws:"):
        return "aws"
    if _DOMAIN.match(n):
        # A registrable name (one dot, e.g. example.com) is a tld in Chariot's terms.
        return "tld" if n.count(".") == 1 else "domain"
    return "domain" if "." in n else "other"


def is_private(name: str) -> bool:
    try:
        return ipaddress.ip_address(name).is_private
    except ValueError:
        return False
