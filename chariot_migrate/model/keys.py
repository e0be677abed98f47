"""Chariot key formats: format and parse every entity key (pure functions, no I/O).

Keys are the sort key of the single legacy table and the identity of graph nodes, so the
legacy functions and the new services must agree on them byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CVE = re.compile(r"^cve-\d{4}-\d{4,}$", re.IGNORECASE)


class KeyError_(ValueError):
    """A key that does not have the shape its entity needs (message says why)."""


# DynamoDB's limits on key attributes (UTF-8 bytes): a longer value is a ValidationException
# from the store, so it is refused up front with the same 400 on both sides.
MAX_PARTITION_KEY_BYTES = 2048
MAX_SORT_KEY_BYTES = 1024


def check_key_size(value: str, what: str = "key", limit: int = MAX_SORT_KEY_BYTES) -> str:
    """``value`` unchanged, or :class:`KeyError_` when it is longer than the store allows."""
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise KeyError_(f"{what} is too long: {size} bytes in UTF-8, at most {limit} are allowed")
    return value


def check_item_keys(username: str, key: str) -> None:
    """Both parts of a primary key (``username`` partition key, ``key`` sort key)."""
    check_key_size(username, "username", MAX_PARTITION_KEY_BYTES)
    check_key_size(key, "key", MAX_SORT_KEY_BYTES)


def kind_of(key: str) -> str:
    """``#asset#a#b`` → ``asset``; '' when the key has no kind segment."""
    if not key.startswith("#"):
        return ""
    return key.split("#", 2)[1] if key.count("#") >= 2 else key[1:]


def plural(kind: str) -> str:
    """Bucket name of a kind in search results: lowercase plural without separators."""
    k = kind.lower().replace("_", "").replace("-", "")
    if k.endswith("y") and len(k) > 1 and k[-2] not in "aeiou":
        return k[:-1] + "ies"
    if k.endswith("s"):
        return k + "es"
    return k + "s"


def _no_hash(name: str, value: str) -> str:
    if not isinstance(value, str) or not value:
        raise KeyError_(f"{name} must be a non-empty string")
    if "#" in value:
        raise KeyError_(f"{name} must not contain '#'")
    return value


# --- assets and seeds -------------------------------------------------------------------

def asset_key(dns: str, name: str) -> str:
    # The whole asset key is lowercased (tabularium), dns and name keep no '#'.
    return check_key_size(f"#asset#{_no_hash('dns', dns)}#{_no_hash('name', name)}".lower())


def seed_key(dns: str) -> str:
    """Seeds are assets whose name is their dns (``#asset#{dns}#{dns}``)."""
    return asset_key(dns, dns)


def generic_key(kind: str, group: str, identifier: str) -> str:
    return check_key_size(f"#{_no_hash('type', kind).lower()}#{_no_hash('group', group)}#{_no_hash('identifier', identifier)}")


@dataclass(frozen=True, slots=True)
class AssetKey:
    dns: str
    name: str


def parse_asset_key(key: str) -> AssetKey:
    parts = key.split("#")
    if len(parts) != 4 or parts[0] != "" or parts[1] != "asset" or not parts[2] or not parts[3]:
        raise KeyError_(f"not an asset key (want #asset#<dns>#<name>): {key!r}")
    return AssetKey(parts[2], parts[3])


# --- risks ------------------------------------------------------------------------------

def normalize_risk_name(name: str) -> str:
    """CVE names are uppercased; any other name is lowercased with spaces turned into '-'."""
    name = (name or "").strip()
    if not name:
        raise KeyError_("risk name must be a non-empty string")
    if "#" in name:
        raise KeyError_("risk name must not contain '#'")
    if _CVE.match(name):
        return name.upper()
    return re.sub(r"\s+", "-", name.lower())


def risk_key(dns: str, name: str) -> str:
    return check_key_size(f"#risk#{_no_hash('dns', dns)}#{normalize_risk_name(name)}")


@dataclass(frozen=True, slots=True)
class RiskKey:
    dns: str
    name: str


def parse_risk_key(key: str) -> RiskKey:
    parts = key.split("#")
    if len(parts) != 4 or parts[0] != "" or parts[1] != "risk" or not parts[2] or not parts[3]:
        raise KeyError_(f"not a risk key (want #risk#<dns>#<name>): {key!r}")
    return RiskKey(parts[2], parts[3])


# --- attributes -------------------------------------------------------------------------

def attribute_key(name: str, value: str, source_key: str) -> str:
    if not source_key.startswith("#"):
        raise KeyError_("attribute source must be an entity key starting with '#'")
    return check_key_size(f"#attribute#{_no_hash('name', name)}#{_no_hash('value', value)}{source_key}")


@dataclass(frozen=True, slots=True)
class AttributeKey:
    name: str
    value: str
    source: str


def parse_attribute_key(key: str) -> AttributeKey:
    parts = key.split("#", 4)
    if len(parts) != 5 or parts[0] != "" or parts[1] != "attribute" or not parts[2] or not parts[3] or not parts[4]:
        raise KeyError_(f"not an attribute key (want #attribute#<name>#<value>#<source key>): {key!r}")
    return AttributeKey(parts[2], parts[3], "#" + parts[4])


# --- the rest ---------------------------------------------------------------------------

def preseed_key(type_: str, title: str, value: str) -> str:
    return check_key_size(f"#preseed#{_no_hash('type', type_)}#{_no_hash('title', title)}#{_no_hash('value', value)}")


def job_key(dns: str, identifier: str, capability: str) -> str:
    return check_key_size(f"#job#{dns}#{identifier}#{_no_hash('capability', capability)}")


def account_key(owner: str, member: str, value: str = "") -> str:
    return check_key_size(f"#account#{_no_hash('owner', owner)}#{_no_hash('member', member)}#{value}")


def file_key(path: str) -> str:
    return check_key_size(f"#file#{path}")


def api_key_key(key_id: str) -> str:
    return check_key_size(f"#key#{key_id}")


def setting_key(name: str) -> str:
    return check_key_size(f"#setting#{_no_hash('name', name)}")


def configuration_key(name: str) -> str:
    return check_key_size(f"#configuration#{_no_hash('name', name)}")


def statistic_key(name: str, created: str, value: str | None = None) -> str:
    return check_key_size(f"#statistic#{name}#{created}" + (f"#{value}" if value is not None else ""))


def dns_and_name(key: str) -> tuple[str, str]:
    """The (group, identifier) a job key uses for a target: assets and risks use dns/name,
    attributes use their source's dns and ``name:value``, everything else kind/last segment."""
    k = kind_of(key)
    if k == "asset":
        a = parse_asset_key(key)
        return a.dns, a.name
    if k == "risk":
        r = parse_risk_key(key)
        return r.dns, r.name
    if k == "attribute":
        at = parse_attribute_key(key)
        dns, _ = dns_and_name(at.source)
        return dns, f"{at.name}:{at.value}"
    parts = [p for p in key.split("#") if p]
    if len(parts) < 2:
        raise KeyError_(f"not an entity key: {key!r}")
    return parts[1], parts[-1]
