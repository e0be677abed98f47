"""asset-discovery's and risk-assessment's POST /my through app.state.cache: a cached kind spares
the store, every write path (routes, bulk, replays, the read-model event handlers) invalidates what
it changed, accounts never see each other's entities, and a failed load is not cached. Every
answer is also checked against the same query over the tables, uncached."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import graph_svc_testkit as kit
import pytest
from fastapi.testclient import TestClient
from graph_svc_testkit import Services, Stack, call_service
from hypothesis import given
from hypothesis import strategies as st

from chariot_migrate.model import query as gq
from chariot_migrate.services.kit import Event
from chariot_migrate.services.kit.graph import search as graph_search
from chariot_migrate.services.kit.graph.entity_table import EntityTable
from chariot_migrate.services.kit.graph.kind_cache import (
    CACHED_KINDS,
    KindLists,
    keys_to_invalidate,
    kind_key,
)

stack, _moto_stack = kit.stack, kit._moto_stack  # fixtures
ASSET = "#asset#c.com#10.0.0.1"


@pytest.fixture(scope="module")
def wired(_moto_stack: None) -> Iterator[Services]:
    with kit.graph_services("rc-") as svc:
        yield svc


@pytest.fixture(scope="module")
def unwired(_moto_stack: None) -> Iterator[Services]:
    """Each service reads the other's entities from its read model (fed by events): cached too."""
    with kit.graph_services("rcu-", wired=False) as svc:
        yield svc


def service_of(client: TestClient) -> Any:
    state = client.app.state
    return getattr(state, "asset_discovery", None) or state.risk_assessment


def search(client: TestClient, s: Stack, labels: list[str], **node: Any) -> dict[str, Any]:
    """POST /my, checked against the same query evaluated over the tables with no cache."""
    body = {"node": {"labels": labels, **node}}
    status, answer = call_service(client, s, "POST", "/my", body)
    assert status == 200, answer
    uncached = graph_search.run_query(gq.parse_query(body), service_of(client).kind_source(s.user))
    assert answer == uncached, "the cached answer differs from the tables"
    return answer


def keys(answer: dict[str, Any], bucket: str) -> list[str]:
    return [e["key"] for e in answer.get(bucket, [])]


def statuses(answer: dict[str, Any], bucket: str) -> dict[str, str]:
    return {e["key"]: e.get("status") for e in answer.get(bucket, [])}


def write(client: TestClient, s: Stack, method: str, path: str, body: Any, **kw: Any) -> Any:
    status, out = call_service(client, s, method, path, body, **kw)
    assert status == 200, (method, path, out)
    return out


def test_a_cached_kind_is_served_without_the_store(wired, stack, monkeypatch):
    write(wired.assets, stack, "PUT", "/asset", {"group": "c.com", "identifier": "10.0.0.1"})
    table = service_of(wired.assets).store.assets
    reads: list[str] = []
    real = table.query_all
    monkeypatch.setattr(table, "query_all", lambda user, prefix: reads.append(prefix) or real(user, prefix))
    for _ in range(3):
        assert keys(search(wired.assets, stack, ["Asset"]), "assets") == [ASSET]
    assert reads.count("#asset#") == 1 + 3  # one load; the other three are the uncached checks in search()


def test_asset_and_seed_writes_invalidate(wired, stack):
    a = wired.assets
    assert search(a, stack, ["Asset"]) == {}
    write(a, stack, "PUT", "/asset", {"group": "c.com", "identifier": "10.0.0.1"})
    assert keys(search(a, stack, ["Asset"]), "assets") == [ASSET]
    write(a, stack, "PUT", "/asset", {"key": ASSET, "status": "F"})
    assert statuses(search(a, stack, ["Asset"]), "assets") == {ASSET: "F"}
    write(a, stack, "DELETE", "/asset", {"key": ASSET})
    assert statuses(search(a, stack, ["Asset"]), "assets") == {ASSET: "D"}
    write(a, stack, "POST", "/bulk/asset", {"items": [{"group": "c.com", "identifier": "b.c.com"}]})
    assert "#asset#c.com#b.c.com" in keys(search(a, stack, ["Asset"]), "assets")
    assert search(a, stack, ["Seed"]) == {}
    write(a, stack, "PUT", "/seed", {"type": "asset", "model": {"dns": "seed.com"}})
    assert keys(search(a, stack, ["Seed"]), "seeds") == ["#asset#seed.com#seed.com"]
    write(a, stack, "PUT", "/seed", {"key": "#asset#seed.com#seed.com", "status": "A"})
    assert statuses(search(a, stack, ["Seed"]), "seeds") == {"#asset#seed.com#seed.com": "A"}


def test_preseed_and_attribute_writes_invalidate(wired, stack):
    a = wired.assets
    write(a, stack, "PUT", "/asset", {"group": "c.com", "identifier": "10.0.0.1"})
    assert search(a, stack, ["Preseed"]) == {} and search(a, stack, ["Attribute"]) == {}
    [pre] = write(a, stack, "POST", "/preseed", {"type": "whois", "title": "t", "value": "v"})
    assert keys(search(a, stack, ["Preseed"]), "preseeds") == [pre["key"]]
    write(a, stack, "PUT", "/preseed", {"key": pre["key"], "status": "F"})
    assert statuses(search(a, stack, ["Preseed"]), "preseeds") == {pre["key"]: "F"}
    write(a, stack, "DELETE", "/preseed", {"key": pre["key"]})
    assert search(a, stack, ["Preseed"]) == {}
    attr = write(a, stack, "PUT", "/attribute", {"key": ASSET, "name": "port", "value": "22"})["attributes"][0]
    assert keys(search(a, stack, ["Attribute"]), "attributes") == [attr["key"]]
    write(a, stack, "DELETE", "/attribute", {"key": attr["key"]})
    assert search(a, stack, ["Attribute"]) == {}
    write(a, stack, "POST", "/bulk/attribute", {"items": [{"key": ASSET, "name": "port", "value": "443"}]})
    assert len(keys(search(a, stack, ["Attribute"]), "attributes")) == 1


def test_risk_writes_replays_and_peer_reads_invalidate(wired, stack):
    a, r = wired.assets, wired.risks
    write(a, stack, "PUT", "/asset", {"group": "c.com", "identifier": "10.0.0.1"})
    assert search(r, stack, ["Risk"]) == {}
    [risk] = write(r, stack, "PUT", "/risk", {"key": ASSET, "name": "weak ssh", "status": "TH"})["risks"]
    assert statuses(search(r, stack, ["Risk"]), "risks") == {risk["key"]: "TH"}
    write(r, stack, "PUT", "/risk", {"key": risk["key"], "status": "OH"})
    assert statuses(search(r, stack, ["Risk"]), "risks") == {risk["key"]: "OH"}
    write(r, stack, "DELETE", "/risk", {"key": risk["key"], "status": "DEF"})
    assert statuses(search(r, stack, ["Risk"]), "risks")[risk["key"]].startswith("D")
    write(r, stack, "POST", "/bulk/risk", {"items": [{"key": ASSET, "name": "other", "status": "TL"}]})
    assert len(search(r, stack, ["Risk"])["risks"]) == 2
    # the peer's relationship query reads risk-assessment's internal API, answered from its cache
    q = {"relationships": [{"label": "HAS_VULNERABILITY", "target": {"labels": ["Risk"]}}]}
    write(a, stack, "PUT", "/asset", {"group": "d.com", "identifier": "d.com"})
    assert keys(search(a, stack, ["Asset"], **q), "assets") == [ASSET]
    write(r, stack, "PUT", "/risk", {"key": "#asset#d.com#d.com", "name": "new", "status": "TL"})
    assert keys(search(a, stack, ["Asset"], **q), "assets") == [ASSET, "#asset#d.com#d.com"]
    # a dual-write replay (trusted identity acting for the account) is a route like any other
    replay = {"authorization": f"Bearer {stack.token('replay@chariot-migrate.local')}", "account": stack.user,
              "x-migrate-replay": "1"}
    status, _ = call_service(a, stack, "PUT", "/asset", {"group": "e.com", "identifier": "e.com"},
                             token=None, headers=replay)
    assert status == 200 and "#asset#e.com#e.com" in keys(search(a, stack, ["Asset"]), "assets")


def _deliver(client: TestClient, event: Event) -> None:
    async def go() -> None:
        await client.app.state.bus.publish(event)
        await client.app.state.bus.drain()

    client.portal.call(go)


def test_read_models_fed_by_events_invalidate(unwired, stack):
    a, r = unwired.assets, unwired.risks
    risk = {"username": stack.user, "key": "#risk#c.com#weak", "dns": "c.com", "name": "weak", "status": "TH",
            "updated": "2026-01-01T00:00:00Z", "history": []}
    assert search(a, stack, ["Risk"]) == {}  # asset-discovery's risk read model, cached (empty)
    _deliver(a, Event.new("risk.assessed", stack.user, {k: risk[k] for k in ("key", "dns", "name", "status")}
                          | {"entity": risk}))
    assert keys(search(a, stack, ["Risk"]), "risks") == [risk["key"]]
    assert search(r, stack, ["Asset"]) == {}  # risk-assessment's asset read model, cached (empty)
    write(a, stack, "PUT", "/asset", {"group": "c.com", "identifier": "10.0.0.1"})
    entity = service_of(a).store.assets.get(stack.user, ASSET)
    _deliver(r, Event.new("asset.discovered", stack.user, {"key": ASSET, "dns": "c.com", "name": "10.0.0.1",
                                                           "entity": entity}))
    assert keys(search(r, stack, ["Asset"]), "assets") == [ASSET]


def test_accounts_never_see_each_others_entities(wired, stack):
    alice, bob = stack, Stack(user=stack.other("bob"))
    write(wired.assets, alice, "PUT", "/asset", {"group": "c.com", "identifier": "10.0.0.1"})
    assert keys(search(wired.assets, alice, ["Asset"]), "assets") == [ASSET]
    assert search(wired.assets, bob, ["Asset"]) == {}  # right after alice's kind was cached
    write(wired.assets, bob, "PUT", "/asset", {"group": "b.com", "identifier": "b.com"})
    assert keys(search(wired.assets, bob, ["Asset"]), "assets") == ["#asset#b.com#b.com"]
    assert keys(search(wired.assets, alice, ["Asset"]), "assets") == [ASSET]


def test_a_failed_load_is_not_cached(wired, stack, monkeypatch):
    write(wired.assets, stack, "PUT", "/asset", {"group": "c.com", "identifier": "10.0.0.1"})
    table = service_of(wired.assets).store.assets
    real, calls = table.query_all, []

    def flaky(user: str, prefix: str) -> Any:
        calls.append(prefix)
        if len(calls) == 1:
            raise RuntimeError("DynamoDB throttled")
        return real(user, prefix)

    monkeypatch.setattr(table, "query_all", flaky)
    status, body = call_service(wired.assets, stack, "POST", "/my", {"node": {"labels": ["Asset"]}})
    assert (status, body) == (500, {"message": "internal error"})
    assert keys(search(wired.assets, stack, ["Asset"]), "assets") == [ASSET]


def test_every_write_method_of_a_table_reports_the_row(wired, stack):
    table = service_of(wired.assets).store.assets
    mine = EntityTable(table.client, table.spec)
    seen: list[tuple[str, str]] = []
    mine.after_write = lambda user, key: seen.append((user, key))
    row = {"username": stack.user, "key": "#asset#w.com#w.com", "dns": "w.com", "name": "w.com"}
    mine.put(row)
    mine.put_raw([row | {"key": "#asset#w.com#x"}])
    mine.add_counter(stack.user, "#statistic#my#status:A#total", 1, {})
    mine.delete(stack.user, row["key"])
    assert seen == [(stack.user, row["key"]), (stack.user, "#asset#w.com#x"),
                    (stack.user, "#statistic#my#status:A#total"), (stack.user, row["key"])]


@given(st.sampled_from(sorted(CACHED_KINDS)), st.text(), st.text(min_size=1))
def test_a_row_in_a_cached_load_invalidates_exactly_that_load(kind, rest, user):
    """A load (kind, partition) reads the rows keyed #kind#… of that partition; writing any such
    row must invalidate that load's entry (and only entries of that partition)."""
    key = f"#{kind}#{rest}"
    assert keys_to_invalidate(user, key) == [kind_key(user, kind)]
    assert all(k != kind_key(user, kind) for other in CACHED_KINDS - {kind}
               for k in keys_to_invalidate(user, f"#{other}#{rest}"))


def test_only_invalidated_kinds_may_be_cached():
    with pytest.raises(ValueError):
        KindLists(object(), {"statistic": lambda partition: []})  # type: ignore[arg-type]
    assert keys_to_invalidate("u", "#statistic#my#status:A#total") == []
