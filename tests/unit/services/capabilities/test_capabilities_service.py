from __future__ import annotations

from typing import Any

import pytest
import svc_c_testkit as kit
from svc_c_testkit import Stack, assert_same, call_service, parity

from chariot_migrate.legacy import asset, attribute, job, job_worker, search
from chariot_migrate.legacy import store as legacy_store
from chariot_migrate.model.capabilities import PORT_FINDINGS, open_ports
from chariot_migrate.services.capabilities.app import CapabilitiesSettings, create_app
from chariot_migrate.services.capabilities.peers import PeerError

stack, _moto_stack = kit.stack, kit._moto_stack


class LegacyStorePeers:
    """Targets read from the legacy table (so both sides see the same entities); results recorded."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.written: list[tuple[str, str]] = []
        self.undone: list[tuple[str, str]] = []
        self.fail_on = fail_on

    async def get(self, account: str, key: str) -> dict[str, Any] | None:
        return legacy_store.get(account, key)

    async def attributes_of(self, account: str, source_key: str, name: str) -> list[dict[str, Any]]:
        return [a for a in legacy_store.query_all(account, f"#attribute#{name}#") if a.get("source") == source_key]

    def _write(self, kind: str, key: str) -> dict[str, Any]:
        if self.fail_on == kind:
            raise PeerError(f"{kind} service answered 503")
        self.written.append((kind, key))
        return {"key": key}

    async def asset(self, account, dns, name, capability):
        return self._write("asset", f"#asset#{dns}#{name}")

    async def attribute(self, account, source, name, value, capability):
        return self._write("attribute", f"#attribute#{name}#{value}{source}")

    async def risk(self, account, target, name, status, capability):
        return self._write("risk", f"#risk#{target}#{name}")

    async def preseed(self, account, type_, title, value, capability):
        return self._write("preseed", f"#preseed#{type_}#{title}#{value}")

    async def undo(self, account, kind, key):
        self.undone.append((kind, key))


def _settings(resume: bool = False) -> CapabilitiesSettings:
    # the module shares one moto: other tests' queued jobs must not be resumed by every new app
    return CapabilitiesSettings.from_env("capabilities", schedule_interval_s=0, resume_queued_jobs=resume)


@pytest.fixture
def peers() -> LegacyStorePeers:
    return LegacyStorePeers()


@pytest.fixture
def svc(stack: Stack, peers: LegacyStorePeers):
    with kit.service(create_app, settings=_settings(), peers=peers) as client:
        yield client


def _asset(s: Stack, dns: str, name: str) -> str:
    s.call(asset.handler, "PUT", "/asset", {"group": dns, "identifier": name})
    return f"#asset#{dns}#{name}"


def _drain(client) -> None:
    client.portal.call(client.app.state.jobs.drain)


def test_post_job_parity_and_errors(stack: Stack, svc):
    svc.app.state.jobs.start = lambda *a, **k: None  # legacy's worker does not run in tests either
    key = _asset(stack, "e.com", "e.com")
    for body in ({"key": key, "capabilities": ["portscan", "nope"]},   # unknown capability
                 {"key": "#asset#x.com#x.com", "capabilities": ["portscan"]},  # 404 target
                 {"capabilities": ["portscan"]},                    # key missing
                 {"key": "#preseed#a#b#c"},                         # nothing targets preseeds
                 {"key": key, "capabilities": ["portscan"], "config": {"a": 1}}):
        assert_same(parity(svc, stack, job.handler, "POST", "/job", body))
    (ls, lb), (ns, nb) = parity(svc, stack, job.handler, "POST", "/job", "not json")
    assert ls == ns == 400 and lb == nb
    # no capabilities → every capability that targets the kind (assets: subdomain, portscan, whois)
    out = assert_same(parity(svc, stack, job.handler, "POST", "/job", {"key": key}))
    assert sorted(j["capabilities"][0] for j in out) == ["portscan", "subdomain", "whois"]


def test_unknown_capability_message_for_cli(stack: Stack, svc):
    st, body = call_service(svc, stack, "POST", "/job", {"key": "#asset#a.com#a.com", "capabilities": ["zap"]})
    assert st == 400 and "unknown capability: zap" in body["message"]


def test_capabilities_list_parity(stack: Stack, svc):
    for q in (None, {"target": "attribute"}, {"name": "whois"}, {"executor": "aegis"}):
        assert_same(parity(svc, stack, job.handler, "GET", "/capabilities", query=q))


def test_auth_parity(stack: Stack, svc):
    assert_same(parity(svc, stack, job.handler, "POST", "/job", {"key": "#asset#a#a"}, token=None))
    assert_same(parity(svc, stack, job.handler, "POST", "/job", {"key": "#asset#a#a"}, token="garbage"))
    other = stack.other("mallory")
    assert_same(parity(svc, stack, job.handler, "GET", "/capabilities", principal=other, account=stack.user))


def test_job_runs_as_saga_and_publishes(stack: Stack, svc, peers: LegacyStorePeers):
    key = _asset(stack, "run.com", "run.com")
    events: list = []
    bus = svc.app.state.bus
    original = bus.publish

    async def spy(event):
        events.append(event)
        return await original(event)

    bus.publish = spy
    svc.app.state.jobs.runner.publish = spy
    st, jobs = call_service(svc, stack, "POST", "/job", {"key": key, "capabilities": ["portscan"]})
    assert st == 200 and jobs[0]["status"].startswith("JQ#")
    _drain(svc)
    st, found = call_service(svc, stack, "GET", "/my", query={"key": jobs[0]["key"], "exact": "true"})
    assert st == 200 and found["jobs"][0]["status"].startswith("JP#") and found["jobs"][0]["finished"]
    ports = open_ports("run.com")
    assert sorted(k for kind, k in peers.written) == sorted(f"#attribute#port#{p}{key}" for p in ports)
    [done] = [e for e in events if e.type == "job.completed"]
    assert done.data["status"].startswith("JP") and done.data["results"] == len(ports)
    # the saga log is kept (its own partition, invisible to GET /my)
    saga = svc.app.state.tables["capabilities-jobs"].get("#saga#" + stack.user, jobs[0]["key"])
    assert saga["state"] == "completed" and [s["state"] for s in saga["steps"]] == ["done"] * 4


def test_failed_apply_compensates_and_marks_jf(stack: Stack):
    peers = LegacyStorePeers(fail_on="risk")
    key = _asset(stack, "f.com", "f.com")
    p443 = next((p for p in open_ports("f.com") if str(p) in PORT_FINDINGS), None)
    assert p443 is not None
    stack.call(attribute.handler, "PUT", "/attribute", {"key": key, "name": "port", "value": str(p443)})
    with kit.service(create_app, settings=_settings(), peers=peers) as client:
        st, jobs = call_service(client, stack, "POST", "/job", {"key": key, "capabilities": ["nuclei"]})
        assert st == 200
        _drain(client)
        st, found = call_service(client, stack, "GET", "/my", query={"key": "#job#f.com#", "label": "job"})
        [j] = found["jobs"]
        assert j["status"].startswith("JF#") and "503" in j["error"]
        saga = client.app.state.tables["capabilities-jobs"].get("#saga#" + stack.user, j["key"])
        assert saga["state"] == "compensated"


def test_failed_apply_undoes_partial_writes(stack: Stack):
    peers = LegacyStorePeers()
    key = _asset(stack, "g.com", "g.com")
    calls = {"n": 0}

    async def flaky(account, source, name, value, capability):  # second attribute write fails
        calls["n"] += 1
        if calls["n"] == 2:
            raise PeerError("asset-discovery answered 500")
        return peers._write("attribute", f"#attribute#{name}#{value}{source}")

    peers.attribute = flaky  # type: ignore[method-assign]
    with kit.service(create_app, settings=_settings(), peers=peers) as client:
        call_service(client, stack, "POST", "/job", {"key": key, "capabilities": ["portscan"]})
        _drain(client)
    assert len(peers.written) == 1 and peers.undone == peers.written


def test_active_job_is_not_queued_twice_and_get_my_parity(stack: Stack, svc):
    key = _asset(stack, "d.com", "d.com")
    # legacy side: the worker is not started in tests, so its job stays JQ; same for the service
    # when its peers are missing the run is irrelevant: compare the queued answers and GET /my.
    svc.app.state.jobs.start = lambda *a, **k: None
    first = assert_same(parity(svc, stack, job.handler, "POST", "/job", {"key": key, "capabilities": ["whois"]}))
    again = assert_same(parity(svc, stack, job.handler, "POST", "/job", {"key": key, "capabilities": ["whois"]}))
    assert first == again
    for q in ({"key": "#job#"}, {"key": "#job#d.com#", "exact": "true"}, {"key": first[0]["key"], "exact": "true"},
              {"key": "status:JQ", "label": "job"}, {"key": "source:whois", "label": "job"},
              {"key": "dns:d.com", "label": "job"}, {"key": "nope:x", "label": "job"}, {"key": "#job#", "desc": "true"},
              {"key": "bad"}, {"key": "#job#", "offset": "{not json"}, {"key": "#job#", "offset": '{"username":"x"}'}):
        assert_same(parity(svc, stack, search.handler, "GET", "/my", query=q))
    assert_same(parity(svc, stack, search.handler, "GET", "/my"))


def test_get_my_offsets_round_trip(stack: Stack, peers, monkeypatch):
    monkeypatch.setenv("CHARIOT_PAGE_SIZE", "2")
    keys = [_asset(stack, f"p{i}.com", f"p{i}.com") for i in range(3)]
    with kit.service(create_app, settings=_settings(), peers=peers) as client:
        client.app.state.jobs.start = lambda *a, **k: None
        for k in keys:
            assert_same(parity(client, stack, job.handler, "POST", "/job", {"key": k, "capabilities": ["whois"]}))
        first = assert_same(parity(client, stack, search.handler, "GET", "/my", query={"key": "#job#"}))
        assert len(first["jobs"]) == 2 and first["offset"]["username"] == stack.user
        import json

        second = assert_same(parity(client, stack, search.handler, "GET", "/my",
                                    query={"key": "#job#", "offset": json.dumps(first["offset"])}))
        assert len(second["jobs"]) == 1 and "offset" not in second


def test_legacy_worker_and_saga_produce_the_same_results(stack: Stack, svc, peers: LegacyStorePeers):
    key = _asset(stack, "same.com", "same.com")
    st, [legacy_job] = stack.call(job.handler, "POST", "/job", {"key": key, "capabilities": ["subdomain"]})
    job_worker.run_job(stack.user, legacy_job["key"])
    legacy_assets = sorted(k for k in (a["key"] for a in legacy_store.query_all(stack.user, "#asset#")) if k != key)
    call_service(svc, stack, "POST", "/job", {"key": key, "capabilities": ["subdomain"]})
    _drain(svc)
    assert sorted(k for kind, k in peers.written if kind == "asset") == legacy_assets


def test_replay_adopts_the_primarys_timestamps_like_legacy(stack: Stack, svc):
    svc.app.state.jobs.start = lambda *a, **k: None
    key = _asset(stack, "rp.com", "rp.com")
    replay = "replay@chariot-migrate.local"
    body = {"key": key, "capabilities": ["whois"], "created": "2020-01-02T03:04:05Z", "updated": "2020-01-02T03:04:06Z"}
    pair = parity(svc, stack, job.handler, "POST", "/job", body, principal=replay, account=stack.user,
                  headers={"X-Migrate-Replay": "1"})
    (ls, lb), (ns, nb) = pair
    assert ls == ns == 200 and lb == nb  # identical, timestamps included
    assert nb[0]["created"] == "2020-01-02T03:04:05Z" and nb[0]["status"] == "JQ#2020-01-02T03:04:06Z"
    # without the header (or from anyone else) the values are minted, never adopted
    other = stack.other("o")
    st, out = call_service(svc, stack, "POST", "/job", {**body, "capabilities": ["portscan"]},
                           headers={"X-Migrate-Replay": "1"}, principal=other)
    assert st == 404  # the other user has no such target in their own account
    st, out = call_service(svc, stack, "POST", "/job", {**body, "capabilities": ["portscan"]},
                           headers={"X-Migrate-Replay": "1"})
    assert st == 200 and out[0]["created"] != "2020-01-02T03:04:05Z"


def test_queued_jobs_are_resumed_at_startup(stack: Stack, peers: LegacyStorePeers):
    key = _asset(stack, "resume.com", "resume.com")
    with kit.service(create_app, settings=_settings(), peers=peers) as client:
        client.app.state.jobs.start = lambda *a, **k: None  # "crash" before the job runs
        st, [queued] = call_service(client, stack, "POST", "/job", {"key": key, "capabilities": ["portscan"]})
    with kit.service(create_app, settings=_settings(resume=True), peers=peers) as client:
        _drain(client)
        st, found = call_service(client, stack, "GET", "/my", query={"key": queued["key"], "exact": "true"})
        assert found["jobs"][0]["status"].startswith("JP#")


def test_without_peers_jobs_are_a_clear_503(stack: Stack):
    with kit.service(create_app, settings=_settings()) as client:
        st, body = call_service(client, stack, "POST", "/job", {"key": "#asset#a.com#a.com", "capabilities": ["whois"]})
        assert st == 503 and "ASSET_URL" in body["message"]
        # validation still comes first, exactly like legacy
        st, body = call_service(client, stack, "POST", "/job", {"key": "#asset#a.com#a.com", "capabilities": ["x"]})
        assert st == 400 and body["message"] == "unknown capability: x"
