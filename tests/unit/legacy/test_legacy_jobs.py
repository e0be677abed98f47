from __future__ import annotations

import legacy_testkit
from legacy_testkit import Stack

from chariot_migrate.legacy import asset, job, job_worker, search, store
from chariot_migrate.model.capabilities import open_ports

stack, _moto_stack = legacy_testkit.stack, legacy_testkit._moto_stack  # fixtures


def _asset(s: Stack, dns: str, name: str) -> str:
    s.call(asset.handler, "PUT", "/asset", {"group": dns, "identifier": name})
    return f"#asset#{dns}#{name}"


def test_capabilities_list_and_filters(stack: Stack):
    st, caps = stack.call(job.handler, "GET", "/capabilities")
    assert st == 200 and {c["name"] for c in caps} == {"subdomain", "portscan", "nuclei", "whois"}
    assert all({"name", "target", "executor", "parameters"} <= set(c) for c in caps)
    st, caps = stack.call(job.handler, "GET", "/capabilities", query={"target": "attribute"})
    assert [c["name"] for c in caps] == ["nuclei"]


def test_post_job_validates_and_queues(stack: Stack):
    key = _asset(stack, "e.com", "e.com")
    st, body = stack.call(job.handler, "POST", "/job", {"key": key, "capabilities": ["portscan", "nope"]})
    assert st == 400 and "unknown capability: nope" in body["message"]
    assert stack.call(job.handler, "POST", "/job", {"key": "#asset#x#x", "capabilities": ["portscan"]})[0] == 404
    assert stack.call(job.handler, "POST", "/job", {"capabilities": ["portscan"]})[0] == 400
    st, jobs = stack.call(job.handler, "POST", "/job", {"key": key, "capabilities": ["portscan"],
                                                       "config": {"source": "customer-retest"}})
    assert st == 200 and isinstance(jobs, list) and len(jobs) == 1
    j = jobs[0]
    assert j["key"] == "#job#e.com#e.com#portscan" and j["status"].startswith("JQ#")
    assert j["source"].startswith("portscan#") and j["config"] == {"source": "customer-retest"}
    assert j["target"] == {"type": "asset", "model": {"key": key, "dns": "e.com", "name": "e.com", "source": "self"}}
    # no worker configured → the job simply stays queued; exact GET works
    st, got = stack.call(search.handler, "GET", "/my", query={"key": j["key"], "exact": "true"})
    assert got["jobs"][0]["status"].startswith("JQ")


def test_invoke_failure_leaves_job_queued(stack: Stack, monkeypatch):
    monkeypatch.setenv("CHARIOT_JOB_WORKER", "no-such-function")
    key = _asset(stack, "f.com", "f.com")
    st, jobs = stack.call(job.handler, "POST", "/job", {"key": key, "capabilities": ["whois"]})
    assert st == 200 and jobs[0]["status"].startswith("JQ")


def test_worker_is_called_with_queued_keys(stack: Stack, monkeypatch):
    calls = []

    class FakeLambda:
        def invoke(self, **kw):
            calls.append(kw)
            return {"StatusCode": 202}

    monkeypatch.setenv("CHARIOT_JOB_WORKER", "chariot-job-worker")
    monkeypatch.setattr(job.aws, "lambda_client", lambda: FakeLambda())
    key = _asset(stack, "g.com", "g.com")
    stack.call(job.handler, "POST", "/job", {"key": key, "capabilities": ["whois"]})
    assert calls and calls[0]["InvocationType"] == "Event" and calls[0]["FunctionName"] == "chariot-job-worker"
    import json
    assert json.loads(calls[0]["Payload"]) == {"username": stack.user, "keys": ["#job#g.com#g.com#whois"]}


def _run(stack: Stack, key: str, cap: str) -> dict:
    st, jobs = stack.call(job.handler, "POST", "/job", {"key": key, "capabilities": [cap]})
    assert st == 200
    out = job_worker.handler({"username": stack.user, "keys": [jobs[0]["key"]]}, None)
    return out["jobs"][0]


def test_worker_results_are_deterministic(stack: Stack):
    key = _asset(stack, "acme.com", "acme.com")
    assert _run(stack, key, "subdomain")["status"].startswith("JP")
    assets = store.query_all(stack.user, "#asset#acme.com#")
    assert sorted(a["name"] for a in assets) == ["acme.com", "api.acme.com", "mail.acme.com", "www.acme.com"]
    assert _run(stack, key, "portscan")["status"].startswith("JP")
    ports = sorted(int(a["value"]) for a in store.query_all(stack.user, "#attribute#port#"))
    assert ports == open_ports("acme.com") and ports == open_ports("acme.com")
    assert _run(stack, key, "nuclei")["status"].startswith("JP")
    risks = store.query_all(stack.user, "#risk#acme.com#")
    assert len(risks) == len(ports) and all(r["source"] == "nuclei" for r in risks)
    assert _run(stack, key, "whois")["status"].startswith("JP")
    assert [p["title"] for p in store.query_all(stack.user, "#preseed#")] == ["Acme Inc"]
    # seed DISCOVERED assets via dns
    from chariot_migrate.legacy import seed
    stack.call(seed.handler, "PUT", "/seed", {"type": "asset", "model": {"dns": "acme.com", "status": "A"}})
    st, res = stack.call(search.handler, "POST", "/my", {"node": {"labels": ["Asset"], "relationships": [
        {"label": "DISCOVERED", "source": {"labels": ["Seed"]}}]}})
    assert sorted(a["name"] for a in res["assets"]) == ["api.acme.com", "mail.acme.com", "www.acme.com"]


def test_worker_marks_failed_when_target_vanishes(stack: Stack):
    key = _asset(stack, "h.com", "h.com")
    st, jobs = stack.call(job.handler, "POST", "/job", {"key": key, "capabilities": ["portscan"]})
    store.delete(stack.user, key)
    out = job_worker.handler({"username": stack.user, "keys": [jobs[0]["key"]]}, None)
    assert out["jobs"][0]["status"].startswith("JF")
