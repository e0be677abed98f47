from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
import svc_c_testkit as kit
from svc_c_testkit import Stack, assert_same, call_service, normalize, parity

from chariot_migrate.legacy import asset, file, risk, search
from chariot_migrate.legacy import store as legacy_store
from chariot_migrate.model import report
from chariot_migrate.services.kit.events import Event
from chariot_migrate.services.reporting import readmodel
from chariot_migrate.services.reporting.app import ReportingSettings, create_app
from chariot_migrate.services.reporting.migration import ReportingMigration

stack, _moto_stack = kit.stack, kit._moto_stack


@pytest.fixture
def svc(stack: Stack):
    with kit.service(create_app, settings=ReportingSettings.from_env("reporting")) as client:
        yield client


def _cut(b):
    return {"url": b["url"].split("?")[0]} if isinstance(b, dict) and "url" in b else b


def _strip_query(pair):
    (ls, lb), (ns, nb) = pair
    cut = _cut
    return (ls, cut(lb)), (ns, cut(nb))


def test_files_parity(stack: Stack, svc):
    seq = [("PUT", {"name": "home/a.txt"}), ("PUT", {"name": "home/b.txt"}), ("GET", {"name": "home/a.txt"}),
           ("GET", {"name": "home/missing.txt"}), ("GET", {"name": "../etc/passwd"}), ("PUT", None),
           ("GET", {"name": "home/a.txt", "global": "true"}), ("DELETE", {"name": "home/b.txt"}),
           ("DELETE", {"name": "home/b.txt"})]
    for method, q in seq:
        assert_same(_strip_query(parity(svc, stack, file.handler, method, "/file", {} if method == "DELETE" else None,
                                        query=q)))
    for q in ({"key": "#file#"}, {"key": "#file#home/a.txt", "exact": "true"}, {"key": "name:home/", "label": "file"},
              {"key": "#file#", "desc": "true"}):
        assert_same(parity(svc, stack, search.handler, "GET", "/my", query=q))


def test_presigned_urls_work_and_encrypted_files_round_trip(stack: Stack, svc):
    st, out = call_service(svc, stack, "PUT", "/file", query={"name": "home/x.bin"})
    assert st == 200 and "X-Amz-Signature" in out["url"] and f"/{stack.user}/home/x.bin" in out["url"].replace("%40", "@")
    secret = b"\x00\x01 top secret \xff"
    st, row = call_service(svc, stack, "PUT", "/encrypted-file", raw=secret, query={"name": "_encrypted/k"})
    assert st == 200 and row["bytes"] == len(secret) and row["key"] == "#file#_encrypted/k"
    st, data = call_service(svc, stack, "GET", "/encrypted-file", query={"name": "_encrypted/k"})
    assert st == 200 and data == secret
    # legacy reads the same blob (shared bucket): what the service wrote, legacy serves
    legacy_store.put({"username": stack.user, "key": "#file#_encrypted/k", "name": "_encrypted/k"})
    assert stack.call(file.handler, "GET", "/encrypted-file", query={"name": "_encrypted/k"}) == (200, secret)
    assert call_service(svc, stack, "GET", "/encrypted-file", query={"name": "_encrypted/none"})[0] == 404


def _feed(client, event: Event) -> None:
    client.portal.call(client.app.state.apply_event, event)


def test_statistics_and_counts_from_events_match_legacy(stack: Stack, svc):
    a1 = stack.call(asset.handler, "PUT", "/asset", {"group": "s.com", "identifier": "s.com"})[1][0]
    a2 = stack.call(asset.handler, "PUT", "/asset", {"group": "s.com", "identifier": "www.s.com"})[1][0]
    stack.call(asset.handler, "PUT", "/asset", {"key": a2["key"], "status": "F"})
    r = stack.call(risk.handler, "PUT", "/risk", {"key": a1["key"], "name": "weak-tls", "status": "TM"})[1]["risks"][0]
    stack.call(risk.handler, "PUT", "/risk", {"key": r["key"], "status": "OM"})
    # the same history as the owning services would publish it
    evs = [Event.new("asset.discovered", stack.user, {"key": a1["key"], "dns": "s.com", "name": "s.com", "status": "A",
                                                      "source": "self", "class": "tld"}),
           Event.new("asset.discovered", stack.user, {"key": a2["key"], "dns": "s.com", "name": "www.s.com",
                                                      "status": "A", "source": "self"}),
           Event.new("asset.discovered", stack.user, {"key": a2["key"], "dns": "s.com", "name": "www.s.com",
                                                      "status": "F", "source": "self"}),
           Event.new("risk.assessed", stack.user, {"key": r["key"], "dns": "s.com", "name": "weak-tls", "status": "TM",
                                                   "previous_status": None, "source": ""}),
           Event.new("risk.assessed", stack.user, {"key": r["key"], "dns": "s.com", "name": "weak-tls", "status": "OM",
                                                   "previous_status": "TM", "source": ""})]
    for e in evs:
        _feed(svc, e)
    _feed(svc, evs[-1])  # a redelivered event changes nothing
    sizes = []
    for q in ({"key": "#statistic#"}, {"key": "#statistic#my#status:A#", "to": "#statistic#my#status:A#~"},
              {"key": "#statistic#my#status:OM#total", "exact": "true"}):
        sizes.append(len(assert_same(parity(svc, stack, search.handler, "GET", "/my", query=q))["statistics"]))
    assert sizes == [8, 2, 1]  # A, F, TM, OM: a total and a day row each
    counts = []
    for q in ({"key": "#asset#"}, {"key": "#risk#"}, {"key": "#asset#s.com#www"}):
        counts.append(assert_same(parity(svc, stack, search.handler, "GET", "/my/count", query=q,
                                         resource="/my/count")))
    assert counts[0]["status"] == {"A": 1, "F": 1} and counts[1]["status"] == {"OM": 1}
    for q in ({"key": "risk"}, {"key": "status:O", "label": "risk"}, {"key": "status:A", "exact": "true"},
              {"key": "dns:s.com", "label": "asset"}):
        assert_same(parity(svc, stack, search.handler, "GET", "/my/count", query=q, resource="/my/count"))


def test_export_report_job_produces_a_file(stack: Stack, svc):
    for name, status in (("a", "OH"), ("b", "TL"), ("c", "RM")):
        _feed(svc, Event.new("risk.assessed", stack.user, {"key": f"#risk#e.com#{name}", "dns": "e.com", "name": name,
                                                           "status": status}))
    assert call_service(svc, stack, "POST", "/export/report", {"export_format": "md"})[1]["message"].startswith(
        "export_format: Input should be 'pdf' or 'zip'")
    assert call_service(svc, stack, "POST", "/export/report", {"status_filter": ["X"]})[0] == 400
    st, out = call_service(svc, stack, "POST", "/export/report",
                           {"status_filter": ["O", "T"], "export_format": "zip", "config": {"title": "Q3"}})
    # answered like legacy: the job is already passed and the file already written
    assert st == 200 and report.is_job_key(out["key"]) and out["job"]["status"].startswith("JP#")
    st, found = call_service(svc, stack, "GET", "/my", query={"key": out["key"], "exact": "true"})
    [job] = found["jobs"]
    assert job["status"].startswith("JP#") and job["config"]["output"].endswith(".zip")
    st, url = call_service(svc, stack, "GET", "/file", query={"name": job["config"]["output"]})
    assert st == 200
    blob = svc.app.state.blobs.read(stack.user, job["config"]["output"])
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        md = z.read("report.md").decode()
        risks = json.loads(z.read("risks.json"))  # the risk rows, as legacy writes them
    assert "# Q3" in md and "- key: #risk#e.com#a" in md and [r["name"] for r in risks] == ["a", "b"]


def test_pure_rules():
    assert readmodel.stat_changes("risk", "TM", "OM") == [("risk", "TM", -1), ("risk", "OM", 1)]
    assert readmodel.stat_changes("risk", "OM", "OM") == []
    assert report.select_risks([{"key": "#risk#a#x", "status": "OH"}, {"key": "#risk#a#y", "status": "OH"}],
                               ["O"], ["#risk#a#x"]) == [{"key": "#risk#a#x", "status": "OH"}]
    m = ReportingMigration(table_prefix="")
    assert m.to_new({"username": "u", "key": "#file#home/a"})[0] == "reporting-files"
    assert m.to_new({"username": "u", "key": "#statistic#my#status:A#total", "_count": 3})[1]["_count"] == 3
    assert m.to_new({"username": "u", "key": "#asset#a#b"}) is None
    assert m.to_new({"username": "u", "key": "#job#1234#system#report"})[0] == "reporting-exports"
    assert m.to_new({"username": "u", "key": "#job#a.com#a.com#nuclei"}) is None
    assert normalize("2024-01-01T00:00:00Z") == "<ts>"


def test_an_event_is_applied_all_or_nothing(stack: Stack, svc):
    """A failure inside the apply (a consumer killed mid-event) leaves neither the row nor its count
    nor the processed mark: the redelivered event is then applied once, in full."""
    model = svc.app.state.readmodel
    a = stack.call(asset.handler, "PUT", "/asset", {"group": "atomic.com", "identifier": "atomic.com"})[1][0]
    ev = Event.new("asset.discovered", stack.user, {"key": a["key"], "dns": "atomic.com", "name": "atomic.com",
                                                    "status": "A", "source": "self"})
    real = model.statistics.repo.table
    model.statistics.repo.table = "no-such-table"  # the counter update fails: the whole transaction must
    try:
        with pytest.raises(Exception):  # noqa: B017 — whatever boto3 raises, nothing may be written
            model.apply(ev)
    finally:
        model.statistics.repo.table = real
    assert model.entities.get(stack.user, a["key"]) is None
    assert model.entities.repo.get("#processed#reporting", f"#event#{ev.id}") is None
    assert model.apply(ev) is True and model.apply(ev) is False  # redelivered after the retry: skipped
    total = model.statistics.get(stack.user, "#statistic#my#status:A#total")
    assert total["data"]["count"] == 1 and model.entities.get(stack.user, a["key"])["status"] == "A"


def test_a_backfill_of_the_owners_rebuilds_the_count_read_model(stack: Stack, svc):
    """Legacy rows no event will ever describe (they predate the migration) are counted once the
    owners' backfill has run the read-model mapper it feeds (``fed_by``)."""
    import boto3

    from chariot_migrate.dual_write import data
    from chariot_migrate.dual_write.mapping import read_models_fed_by
    from chariot_migrate.legacy import aws
    from chariot_migrate.routes.loader import load_table
    from chariot_migrate.services.reporting.migration import EntityIndexMigration

    for i in range(12):
        stack.call(asset.handler, "PUT", "/asset", {"group": "r.com", "identifier": f"h{i}.r.com"})
    a = stack.call(asset.handler, "PUT", "/asset", {"group": "r.com", "identifier": "r.com"})[1][0]
    stack.call(risk.handler, "PUT", "/risk", {"key": a["key"], "name": "weak-tls", "status": "TM"})
    q = {"key": "#asset#"}
    legacy_count = stack.call(search.handler, "GET", "/my/count", query=q)[1]["count"]
    assert call_service(svc, stack, "GET", "/my/count", query=q)[1]["count"] < legacy_count  # no events flowed
    config = load_table(Path(__file__).resolve().parents[4] / "routes.yaml").config
    [view] = read_models_fed_by(config, "asset-discovery")
    assert isinstance(view, EntityIndexMigration) and read_models_fed_by(config, "account") == []
    ddb = boto3.resource("dynamodb", region_name="us-east-1")
    tables = {t.name: ddb.Table(t.name) for t in view.new_tables}
    res = data.backfill(view, aws.table(), tables)
    assert res.written >= 14  # 13 assets and a risk (and rows of earlier tests no event described)
    assert data.verify(view, aws.table(), tables).missing_in_new == []
    for q in ({"key": "#asset#"}, {"key": "#risk#"}, {"key": "status:A", "exact": "true"}):
        assert_same(parity(svc, stack, search.handler, "GET", "/my/count", query=q, resource="/my/count"))
    assert call_service(svc, stack, "GET", "/my/count", query={"key": "#asset#"})[1]["count"] == legacy_count
