"""Data migration of the graph services: legacy rows backfilled into the service tables verify
clean, and the services then answer queries over the backfilled data exactly like legacy."""

from __future__ import annotations

import boto3
import graph_svc_testkit as kit
from graph_svc_testkit import Stack, call_service, normalize

from chariot_migrate.dual_write import data
from chariot_migrate.legacy import asset, attribute, aws, preseed, risk, search, seed
from chariot_migrate.services.asset_discovery.migration import AssetDiscoveryMigration
from chariot_migrate.services.risk_assessment.migration import RiskAssessmentMigration

stack, _moto_stack = kit.stack, kit._moto_stack  # fixtures
PREFIX = "mig-"


def _legacy_estate(s: Stack) -> None:
    s.call(seed.handler, "PUT", "/seed", {"type": "asset", "model": {"dns": "m.com", "status": "A"}})
    s.call(asset.handler, "PUT", "/asset", {"group": "m.com", "identifier": "10.1.1.1"})
    s.call(asset.handler, "PUT", "/asset", {"group": "m.com", "identifier": "AD", "type": "addomain"})
    s.call(asset.handler, "POST", "/bulk/asset", {"items": [{"group": "m.com", "identifier": "b.m.com"}]})
    s.call(attribute.handler, "PUT", "/attribute", {"key": "#asset#m.com#10.1.1.1", "name": "port", "value": "22"})
    s.call(preseed.handler, "POST", "/preseed", {"type": "csp", "title": "t", "value": "v"})
    s.call(risk.handler, "PUT", "/risk", {"key": "#asset#m.com#10.1.1.1", "name": "weak ssh", "status": "TM"})
    s.call(risk.handler, "PUT", "/risk", {"key": "#risk#m.com#weak-ssh", "status": "OH", "comment": "real"})
    s.call(risk.handler, "POST", "/bulk/risk", {"items": [{"key": "#asset#m.com#m.com", "name": "x", "status": "TL"}]})


def test_backfill_verify_then_services_answer_like_legacy(_moto_stack: None, stack: Stack):
    _legacy_estate(stack)
    with kit.graph_services(PREFIX) as svc:
        r = svc.risks
        ddb = boto3.resource("dynamodb", region_name="us-east-1")
        legacy = aws.table()
        migrations = [AssetDiscoveryMigration(PREFIX), RiskAssessmentMigration(PREFIX)]
        for m in migrations:
            tables = {t.name: ddb.Table(t.name) for t in m.new_tables}
            result = data.backfill(m, legacy, tables)
            assert result.written > 0
            check = data.verify(m, legacy, tables)
            assert check.ok, check
        counts = {m.service: data.verify(m, legacy, {t.name: ddb.Table(t.name) for t in m.new_tables}).new_items
                  for m in migrations}
        assert counts["asset-discovery"][f"{PREFIX}asset-discovery-assets"] == 4  # seed, ip, addomain, bulk one
        assert counts["asset-discovery"][f"{PREFIX}asset-discovery-jobs"] == 1
        assert counts["risk-assessment"][f"{PREFIX}risk-assessment-risks"] == 2
        assert counts["risk-assessment"][f"{PREFIX}risk-assessment-jobs"] == 1
        # the services read the backfilled rows exactly as legacy does
        for q in ({"node": {"labels": ["Asset"]}}, {"node": {"labels": ["Seed"]}}, {"node": {"labels": ["Attribute"]}},
                  {"node": {"labels": ["Preseed"]}}, {"node": {"labels": ["Addomain"]}}, {"node": {"labels": ["Risk"]}},
                  {"node": {"labels": ["Asset"], "relationships": [{"label": "HAS_VULNERABILITY", "target": {}}]}}):
            legacy_answer = stack.call(search.handler, "POST", "/my", q)
            new_answer = call_service(svc.client_for("POST", "/my", q), stack, "POST", "/my", q)
            assert legacy_answer == new_answer, q
        # and continue writing on top of them as legacy would
        body = {"key": "#risk#m.com#weak-ssh", "status": "RH"}
        (ls, lb), (ns, nb) = stack.call(risk.handler, "PUT", "/risk", body), call_service(r, stack, "PUT", "/risk", body)
        assert (ls, normalize(lb)) == (ns, normalize(nb))
        assert [h.get("to") for h in nb["risks"][0]["history"]] == ["TM", "OH", "RH"]


def test_mapping_routes_each_kind_to_one_owner():
    ad, ra = AssetDiscoveryMigration(""), RiskAssessmentMigration("")
    rows = {
        "#asset#a.com#a.com": ("asset-discovery-assets", None),
        "#attribute#port#22#asset#a.com#a.com": ("asset-discovery-attributes", None),
        "#preseed#csp#t#v": ("asset-discovery-preseeds", None),
        "#risk#a.com#x": (None, "risk-assessment-risks"),
        "#job#bulk#1#asset": ("asset-discovery-jobs", None),
        "#job#bulk#1#risk": (None, "risk-assessment-jobs"),
        "#job#a.com#a.com#portscan": (None, None),
        "#setting#x": (None, None),
    }
    for key, (want_ad, want_ra) in rows.items():
        item = {"username": "u", "key": key}
        assert (ad.to_new(item) or (None,))[0] == want_ad, key
        assert (ra.to_new(item) or (None,))[0] == want_ra, key
    stat = {"username": "u", "key": "#statistic#my#status:A#total", "_count": 2}
    assert ad.to_new(stat | {"type": "asset"})[0] == "asset-discovery-statistics"
    assert ra.to_new(stat | {"type": "asset"}) is None
    assert ra.to_new(stat | {"type": "risk"})[0] == "risk-assessment-statistics"
    assert ad.to_legacy("asset-discovery-assets", {"key": "k", "_version": 3, "_count": 1}) == {"key": "k", "_count": 1}


def test_read_models_can_be_seeded_by_backfill(_moto_stack: None, stack: Stack):
    """Without the internal APIs, backfilled read models answer cross-service questions."""
    from chariot_migrate.services.asset_discovery.migration import RiskViewMigration
    from chariot_migrate.services.risk_assessment.migration import AssetViewMigration

    _legacy_estate(stack)
    prefix = "view-"
    with kit.graph_services(prefix, wired=False) as svc:
        ddb = boto3.resource("dynamodb", region_name="us-east-1")
        for m in (AssetDiscoveryMigration(prefix), RiskAssessmentMigration(prefix), RiskViewMigration(prefix),
                  AssetViewMigration(prefix)):
            tables = {t.name: ddb.Table(t.name) for t in m.new_tables}
            data.backfill(m, aws.table(), tables)
            assert data.verify(m, aws.table(), tables).ok
        q = {"node": {"labels": ["Asset"], "relationships": [{"label": "HAS_VULNERABILITY", "target": {}}]}}
        assert stack.call(search.handler, "POST", "/my", q) == call_service(svc.assets, stack, "POST", "/my", q)
        body = {"key": "#asset#m.com#10.1.1.1", "name": "new one", "status": "TL"}
        (ls, lb), (ns, nb) = stack.call(risk.handler, "PUT", "/risk", body), call_service(svc.risks, stack, "PUT",
                                                                                          "/risk", body)
        assert ls == ns == 200 and normalize(lb) == normalize(nb)
