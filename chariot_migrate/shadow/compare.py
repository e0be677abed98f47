"""``compare_pair``: two responses of one route → differences grouped by signature. Pure.

Used by the shadow engine, the dual-write replay comparison and ``replay``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chariot_migrate.transport import HttpResponse

from .diff import Difference, diff, difference_class, signature_id
from .normalise import NormalisedResponse, NormaliseRules, from_error, from_http

Side = HttpResponse | NormalisedResponse | BaseException


@dataclass(frozen=True, slots=True)
class SignatureHit:
    signature: str
    path: str  # collapsed
    kind: str
    value_class: str
    first: Difference  # one concrete difference (unredacted: redact before storing)
    count: int = 1  # differences of this signature in the pair (e.g. many array items)


@dataclass(frozen=True, slots=True)
class Comparison:
    route_id: str
    differences: list[Difference]
    hits: list[SignatureHit] = field(default_factory=list)

    @property
    def match(self) -> bool:
        return not self.differences

    @property
    def signatures(self) -> frozenset[str]:
        return frozenset(h.signature for h in self.hits)

    @property
    def paths(self) -> frozenset[str]:
        return frozenset(h.path for h in self.hits)


def to_normalised(side: Side, rules: NormaliseRules) -> NormalisedResponse:
    if isinstance(side, NormalisedResponse):
        return side
    if isinstance(side, BaseException):
        return from_error(getattr(side, "kind", type(side).__name__))
    return from_http(side.status, side.headers, side.body, rules)


def group(route_id: str, differences: list[Difference]) -> list[SignatureHit]:
    by_sig: dict[str, SignatureHit] = {}
    for d in differences:
        path = d.collapsed
        sig = signature_id(route_id, path, d.kind)
        hit = by_sig.get(sig)
        if hit is None:
            by_sig[sig] = SignatureHit(sig, path, d.kind, difference_class(d), d)
        else:
            by_sig[sig] = SignatureHit(sig, path, d.kind, hit.value_class, hit.first, hit.count + 1)
    return list(by_sig.values())


def compare_pair(route_id: str, left: Side, right: Side, rules: NormaliseRules | None = None) -> Comparison:
    """Compare legacy (``left``) with new (``right``); a raised error counts as a response."""
    rules = rules or NormaliseRules()
    diffs = diff(to_normalised(left, rules), to_normalised(right, rules), rules)
    return Comparison(route_id, diffs, group(route_id, diffs))
