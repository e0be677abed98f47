"""The built-in capability registry and its deterministic offline implementations.

Real capabilities scan the internet; these derive their results from the target's name so the
legacy stack and the capabilities service produce the same results, reproducibly, offline.
Each implementation returns plain entity *specs* (dicts) that the caller stores.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .keys import asset_key, attribute_key, kind_of, parse_asset_key, parse_attribute_key, preseed_key

REGISTRY: dict[str, dict[str, Any]] = {
    "subdomain": {"name": "subdomain", "title": "Subdomain enumeration", "target": "asset",
                  "description": "Finds subdomains of a domain (deterministic offline implementation).",
                  "category": ["recon"], "surface": "external"},
    "portscan": {"name": "portscan", "title": "Port scan", "target": "asset",
                 "description": "Finds open ports of an asset (deterministic offline implementation).",
                 "category": ["recon"], "surface": "external"},
    "nuclei": {"name": "nuclei", "title": "Nuclei", "target": "attribute",
               "description": "Checks open ports for known vulnerabilities (deterministic offline implementation).",
               "category": ["web"], "surface": "external"},
    "whois": {"name": "whois", "title": "Whois", "target": "asset",
              "description": "Finds the registrant of a domain (deterministic offline implementation).",
              "category": ["recon"], "surface": "external"},
}
_COMMON = {"runs_on": "linux", "version": "1.0.0", "executor": "chariot", "integration": False,
           "parameters": [], "async": False, "largeArtifact": False, "hasGlobalConfig": False}

SUBDOMAIN_PREFIXES = ("www", "api", "mail")
CANDIDATE_PORTS = (22, 80, 443, 3306, 3389, 5432, 8080, 8443)
PORT_FINDINGS: dict[str, tuple[str, str]] = {
    "22": ("ssh-password-authentication", "TL"),
    "80": ("http-missing-security-headers", "TI"),
    "443": ("tls-weak-cipher-suites", "TM"),
    "3306": ("exposed-mysql", "TH"),
    "3389": ("exposed-rdp", "TH"),
    "5432": ("exposed-postgres", "TH"),
    "8080": ("exposed-admin-panel", "TM"),
    "8443": ("CVE-2024-0001", "TC"),
}


def capability_list(name: str = "", target: str = "", executor: str = "") -> list[dict[str, Any]]:
    out = []
    for cap in REGISTRY.values():
        full = {**_COMMON, **cap}
        if (name and full["name"] != name) or (target and full["target"] != target):
            continue
        if executor and full["executor"] != executor:
            continue
        out.append(full)
    return out


def unknown(names: list[str]) -> list[str]:
    return [n for n in names if n not in REGISTRY]


def default_for(target_kind: str) -> list[str]:
    return [n for n, c in REGISTRY.items() if c["target"] == target_kind]


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def open_ports(name: str) -> list[int]:
    """2–4 ports chosen from a hash of the name (stable across runs and processes)."""
    d = _digest(name)
    count = 2 + d[0] % 3
    ports = sorted({CANDIDATE_PORTS[b % len(CANDIDATE_PORTS)] for b in d[1 : 1 + count]})
    return ports


def run(capability: str, target: dict[str, Any], related_attributes: list[dict[str, Any]] | None = None
        ) -> dict[str, list[dict[str, Any]]]:
    """Results of one capability on one target entity: {assets, attributes, risks, preseeds}."""
    out: dict[str, list[dict[str, Any]]] = {"assets": [], "attributes": [], "risks": [], "preseeds": []}
    key = target["key"]
    if capability == "subdomain":
        a = parse_asset_key(key)
        base = a.dns
        for p in SUBDOMAIN_PREFIXES:
            out["assets"].append({"key": asset_key(base, f"{p}.{base}"), "dns": base, "name": f"{p}.{base}"})
    elif capability == "portscan":
        a = parse_asset_key(key)
        for port in open_ports(a.name):
            out["attributes"].append({"key": attribute_key("port", str(port), key), "name": "port",
                                      "value": str(port), "source": key})
    elif capability == "nuclei":
        attrs = [target] if kind_of(key) == "attribute" else list(related_attributes or [])
        for attr in attrs:
            at = parse_attribute_key(attr["key"])
            if at.name != "port" or at.value not in PORT_FINDINGS or kind_of(at.source) != "asset":
                continue
            finding, status = PORT_FINDINGS[at.value]
            asset = parse_asset_key(at.source)
            out["risks"].append({"dns": asset.dns, "name": finding, "status": status,
                                 "target": attr["key"], "asset": at.source})
    elif capability == "whois":
        a = parse_asset_key(key)
        label = a.dns.split(".")[0] or a.dns
        title = f"{label.capitalize()} Inc"
        out["preseeds"].append({"key": preseed_key("whois+company", title, title.lower()),
                                "type": "whois+company", "title": title, "value": title.lower()})
    else:
        raise ValueError(f"unknown capability: {capability}")
    return out
