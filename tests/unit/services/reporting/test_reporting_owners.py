"""reporting's view of the owners' entities (owners.py): which owners are asked, the rows merged,
and a failing owner is an error naming it — never a silently smaller count. The real path (three
owner processes behind the proxy) is tests/e2e/test_e2e_contract.py::…count-after-writes."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from chariot_migrate.services.kit.client import RetryPolicy, ServiceClient
from chariot_migrate.services.reporting.owners import OwnerRows, OwnerUnavailable, owners_needed


def _client(peer: str, handler) -> ServiceClient:
    return ServiceClient("http://owner", peer=peer, token=lambda: "t", transport=httpx.MockTransport(handler),
                         retry=RetryPolicy(attempts=1))


def _rows(peer: str, seen: list[tuple[str, str, str]]):
    def handler(request: httpx.Request) -> httpx.Response:
        prefix = request.url.params["prefix"]
        seen.append((peer, request.headers.get("account", ""), prefix))
        return httpx.Response(200, json={"items": [{"key": f"{prefix}{peer}"}]})
    return handler


def test_rows_merge_every_owner_for_the_account():
    seen: list[tuple[str, str, str]] = []
    owners = OwnerRows({p: _client(p, _rows(p, seen)) for p in ("asset-discovery", "risk-assessment")})
    rows = asyncio.run(owners.rows("a@example.com", "#asset#x"))
    assert sorted(r["key"] for r in rows) == ["#asset#xasset-discovery", "#asset#xrisk-assessment"]
    assert sorted(seen) == [("asset-discovery", "a@example.com", "#asset#x"),
                            ("risk-assessment", "a@example.com", "#asset#x")]


def test_reportings_own_kinds_ask_no_owner():
    assert not owners_needed("#statistic#my#status:A") and not owners_needed("#file#home/")
    assert owners_needed("#") and owners_needed("#a") and owners_needed("#job#") and owners_needed("#risk#")


@pytest.mark.parametrize("answer", [lambda r: httpx.Response(500, json={"message": "boom"}),
                                    lambda r: (_ for _ in ()).throw(httpx.ConnectError("refused"))])
def test_a_failing_owner_is_an_error_naming_it(answer):
    ok = _client("asset-discovery", _rows("asset-discovery", []))
    owners = OwnerRows({"asset-discovery": ok, "risk-assessment": _client("risk-assessment", answer)})
    with pytest.raises(OwnerUnavailable, match="risk-assessment"):
        asyncio.run(owners.rows("a@example.com", "#"))


def test_connect_needs_every_owner():
    assert OwnerRows.connect({"asset-discovery": "http://a", "risk-assessment": None}, lambda: "t") is None
    assert OwnerRows.connect({"asset-discovery": "http://a"}, lambda: "t") is not None
